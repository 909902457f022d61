#!/bin/sh
# scripts/run-tests.sh: the whole test suite, in the order that fails
# fastest. Called by scripts/quickstart.sh test (which installs what is
# needed first) and so by CI.
#
#   1. release build with warnings as errors, every suite
#   2. ASan+UBSan debug build, every suite
#   3. TSan debug build, the stress programs of the threaded parts (suite
#      'stress': Criterion itself cannot start under TSan)
#   4. libFuzzer on the decoders for a bounded time (TG_FUZZ_SECONDS, 60)
#   5. valgrind --leak-check=full on the examples
# Ends with one line "tests: N passed, M failed" over every Criterion test
# and every stress program's cases.
set -eu
cd "$(dirname "$0")/.."

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
status=0

setup() {
  dir=$1; shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
  ninja -C "$dir" >/dev/null
}

# Collect what a finished meson run logged: sanitizer reports fail the run
# (LeakSanitizer reports at exit do not change a Criterion test's status);
# Criterion's "Synthesis" lines and the stress programs' "N passed, M
# failed" lines feed the closing count.
scan_log() { # name testlog [tests whose sections to leave out...]
  log_in=$2
  if [ $# -gt 2 ]; then # drop the sections of tests that will run again
    shift 2
    awk -v skip=" $* " '
      /^test: / { n = split($0, w, " / "); drop = index(skip, " " w[n] " ") > 0 }
      !drop' "$log_in" >"$log/scan.tmp"
    log_in=$log/scan.tmp
    set -- "$name" "$log_in"
  fi
  if grep -qE "ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$log_in"; then
    echo "$1: sanitizer report in the test log:"
    grep -E -A12 "ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|WARNING: ThreadSanitizer" \
      "$log_in" | head -60
    status=1
  fi
  grep -hE "Synthesis:|^[A-Za-z_]+: [0-9]+ passed, [0-9]+ failed$" "$log_in" \
    >>"$log/synthesis" || true
}

# Each suite gets 150 s (a quarter of its meson timeout); they take seconds.
# A suite that times out is run once more, alone: this toolchain's sanitizer
# runtimes (GCC 12's libsanitizer) can deadlock in a process forked while
# another thread holds their allocator lock. The library keeps its threads'
# start-up out of that window (lib/util/thread.h), but not threads that
# are busy allocating (its own running tasks, Criterion's runner, libzmq's).
# Failures other than timeouts are never retried.
run_suites() { # name dir [suites...]
  name=$1; dir=$2; shift 2
  echo "== $name"
  if meson test -C "$dir" --print-errorlogs --num-processes 2 \
      --timeout-multiplier 0.25 "$@" >"$log/$name.out" 2>&1; then
    grep -E "^(Ok|Fail|Timeout|Expected Fail|Unexpected Pass|Skipped):" \
      "$log/$name.out" | tr '\n' ' '; echo
    scan_log "$name" "$dir/meson-logs/testlog.txt"
    return
  fi
  cp "$dir/meson-logs/testlog.txt" "$log/$name.testlog"
  timedout=$(sed -n 's#^ *[0-9]*/[0-9]* [^ ]* / \([^ ]*\) *TIMEOUT .*#\1#p' "$log/$name.out" | sort -u)
  # shellcheck disable=SC2086
  scan_log "$name" "$log/$name.testlog" $timedout
  failed=$(grep -cE "^ *[0-9]+/[0-9]+ .* (FAIL|ERROR|UNEXPECTEDPASS) " "$log/$name.out" || true)
  if [ -z "$timedout" ] || [ "$failed" -ne 0 ]; then
    cat "$log/$name.out"
    status=1
    return
  fi
  grep -E "^(Ok|Fail|Timeout):" "$log/$name.out" | tr '\n' ' '; echo
  for t in $timedout; do
    if meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 0.25 \
        "$t" >"$log/$name.$t.out" 2>&1; then
      echo "$name: $t timed out, then passed when run again alone"
    else
      cat "$log/$name.$t.out"
      status=1
    fi
    scan_log "$name" "$dir/meson-logs/testlog.txt"
  done
}

setup build --buildtype=release -Dwerror=true
run_suites release build

setup build-asan --buildtype=debug -Db_sanitize=address,undefined \
  -Db_lundef=false -Dwerror=true -Dbench=false
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
ASAN_OPTIONS=detect_leaks=1 \
LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0" \
  run_suites asan+ubsan build-asan

setup build-tsan --buildtype=debug -Db_sanitize=thread -Db_lundef=false \
  -Dbench=false
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$(pwd)/tests/tsan.supp" \
  run_suites tsan build-tsan --suite stress

if command -v clang >/dev/null 2>&1 && [ -x scripts/fuzz.sh ]; then
  echo "== fuzz (${TG_FUZZ_SECONDS:-60} s)"
  if ! ./scripts/fuzz.sh "${TG_FUZZ_SECONDS:-60}" >"$log/fuzz.out" 2>&1; then
    tail -40 "$log/fuzz.out"
    status=1
  else
    tail -3 "$log/fuzz.out"
  fi
fi

if command -v valgrind >/dev/null 2>&1 && [ -x scripts/valgrind-examples.sh ]; then
  echo "== valgrind on the examples"
  if ! ./scripts/valgrind-examples.sh build >"$log/valgrind.out" 2>&1; then
    cat "$log/valgrind.out"
    status=1
  else
    tail -3 "$log/valgrind.out"
  fi
fi

# Sum Criterion's per-suite synthesis lines,
# "[====] Synthesis: Tested: 27 | Passing: 27 | Failing: 0 | Crashing: 0",
# and the stress programs' "stress_cache: 3 passed, 0 failed".
awk -F'|' '
  / passed, [0-9]+ failed$/ { split($0, w, " "); p += w[2]; f += w[4]; next }
  { for (i = 1; i <= NF; i++) {
      if ($i ~ /Passing:/) { sub(/.*Passing: */, "", $i); p += $i }
      if ($i ~ /Failing:/) { sub(/.*Failing: */, "", $i); f += $i }
      if ($i ~ /Crashing:/) { sub(/.*Crashing: */, "", $i); f += $i } } }
  END { printf "tests: %d passed, %d failed\n", p, f + 0 }' \
  "$log/synthesis" 2>/dev/null || echo "tests: 0 passed, 0 failed"
exit "$status"
