#!/bin/sh
# scripts/valgrind-examples.sh BUILDDIR: run every example program under
# valgrind's memcheck with full leak checking, on small inputs; fails on
# any error or leak.
set -eu
dir=${1:-build}
fail=0
check() { # program [args...]
  if valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
      --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
      "$@" >/dev/null 2>"$dir/valgrind-$(basename "$1").log"; then
    echo "valgrind: $(basename "$1"): clean"
  else
    echo "valgrind: $(basename "$1"): FAILED"; cat "$dir/valgrind-$(basename "$1").log"
    fail=1
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check "$dir/examples/dump_load" "$tmp/record.tgv" 4
[ -x "$dir/examples/graph_basic" ] && check "$dir/examples/graph_basic"
# A program of tgraph/cluster.h as a job of one rank: it computes locally.
if [ -x "$dir/examples/cluster_collatz" ]; then
  export OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1
  check "$dir/examples/cluster_collatz"
  unset OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE
fi
# The command on graph.json examples: plugins, builtins, and the cache
# (cold, then warm) on the threads backend. Forked backends are checked by
# their own suites under ASan.
if [ -x "$dir/cli/tgraph" ]; then
  check "$dir/cli/tgraph" run -q --no-cache --scheduler=threads examples/wordcount.json
  check "$dir/cli/tgraph" run -q --no-cache --scheduler=threads examples/pi.json
  check "$dir/cli/tgraph" run -q --cache-dir "$tmp/cache" --scheduler=threads examples/cached.json
  check "$dir/cli/tgraph" run -q --cache-dir "$tmp/cache" --scheduler=threads examples/cached.json
fi
exit $fail
