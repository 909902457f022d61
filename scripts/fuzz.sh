#!/bin/sh
# scripts/fuzz.sh: build the libFuzzer targets with clang and run each one
# for a bounded time, from a scratch copy of the checked-in seed corpus.
#
#   scripts/fuzz.sh SECONDS     total time, split evenly between targets
#
# Exits non-zero when a target finds a crash, leak, timeout or memory
# blow-up, and prints the reproducer's path (kept under build-fuzz/).
# Replay one with: build-fuzz/tests/fuzz/fuzz_<target> <file>
set -eu
cd "$(dirname "$0")/.."

secs=${1:?usage: scripts/fuzz.sh SECONDS}
targets="decode json graphjson pmi1"
ntargets=4
dir=build-fuzz

if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true -Dtests=false -Dbench=false \
    --buildtype=debugoptimized >/dev/null
fi
# Only the targets: the rest of the tree is not needed to fuzz.
# shellcheck disable=SC2046
ninja -C "$dir" $(for t in $targets; do echo "tests/fuzz/fuzz_$t"; done) >/dev/null

per=$((secs / ntargets))
[ "$per" -ge 1 ] || per=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts="$dir/fuzz-artifacts"
mkdir -p "$artifacts"

status=0
for t in $targets; do
  exe="$dir/tests/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz.sh: $exe was not built (is CC clang?)"; exit 1; }
  mkdir -p "$work/$t"
  cp tests/fuzz/corpus/"$t"/* "$work/$t"/
  echo "== fuzz_$t for ${per}s"
  before=$(ls "$artifacts" | wc -l)
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$exe" -max_total_time="$per" -rss_limit_mb=2048 -max_len=65536 \
      -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
      "$work/$t" >"$work/$t.log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|new_units_added):" "$work/$t.log" \
      | tr '\n' ' '; echo
  else
    status=1
    tail -60 "$work/$t.log"
    if [ "$(ls "$artifacts" | wc -l)" -gt "$before" ]; then
      ls -t "$artifacts"/"$t"-* | head -1 | sed 's/^/reproducer: /'
    fi
  fi
done
[ "$status" -eq 0 ] && echo "fuzz: no crashes in ${secs}s"
exit "$status"
