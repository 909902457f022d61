#!/bin/bash
# tests/install/test_subproject.sh: tgraph built as a meson subproject of
# a small project (app/, with subprojects/tgraph linking to this source
# tree). dependency('tgraph') must build and run the project's program,
# configure no tests, benchmarks or stress programs and no Criterion, and
# give the public headers only. Ends with "subproject: N passed, M failed".
#
# Environment (set by tests/install/meson.build): TG_SOURCE_ROOT, TG_WORK,
# TG_MESON.
set -u
# shellcheck source=../checks.sh
. "$(dirname "$0")/../checks.sh"
# The project and its build stay for a look when something failed.
finish() {
  echo "subproject: $pass passed, $fail failed"
  [ "$fail" -eq 0 ] && rm -rf "$work"
  [ "$fail" -eq 0 ]
  exit
}

src=$TG_SOURCE_ROOT
work=$TG_WORK
rm -rf "$work"
mkdir -p "$work/app/subprojects"
cp "$src/tests/install/app/meson.build" "$src/tests/install/app/internal.c" \
  "$src/examples/graph_basic.c" "$work/app/"
ln -s "$src" "$work/app/subprojects/tgraph"

# The subproject even when a tgraph is installed on the system.
if ! "$TG_MESON" setup "$work/build" "$work/app" --buildtype=plain \
    --force-fallback-for=tgraph >"$work/setup.log" 2>&1; then
  bad "meson setup of a project using dependency('tgraph')"
  tail -30 "$work/setup.log"
  finish
fi
ok "meson setup of a project using dependency('tgraph')"

same "criterion is not looked for" "" \
  "$(grep -i criterion "$work/build/meson-logs/meson-log.txt" | head -3)"
same "no tests or benchmarks configured" "[] []" \
  "$("$TG_MESON" introspect "$work/build" --tests | tr -d ' \n') $("$TG_MESON" introspect "$work/build" --benchmarks | tr -d ' \n')"
same "no test, benchmark, stress or fuzz programs among the targets" "" \
  "$("$TG_MESON" introspect "$work/build" --targets | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["name"].startswith(("test_", "bench_", "stress_", "fuzz_")):
        print(t["name"])')"

if ninja -C "$work/build" basic >"$work/build.log" 2>&1; then
  ok "the project's program builds"
  same "the project's program runs" "$(cat "$src/examples/graph_basic.expected")" \
    "$("$work/build/basic" 2>&1)"
else
  bad "the project's program builds"
  tail -30 "$work/build.log"
fi

# Internal headers stay out of reach.
if ninja -C "$work/build" internal >"$work/internal.log" 2>&1; then
  bad "#include \"memo/key.h\" does not compile"
else
  same "#include \"memo/key.h\" does not compile" "memo/key.h: No such file or directory" \
    "$(grep -o 'memo/key.h: No such file or directory' "$work/internal.log" | head -1)"
fi

finish
