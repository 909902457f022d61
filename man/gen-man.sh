#!/bin/sh
# man/gen-man.sh TGRAPH VERSION OUT.1 [SUBCOMMAND...]: write a man page
# from the program's own help, with help2man, so that pages follow the
# option parser. Without a SUBCOMMAND argument it writes tgraph(1) from
# `tgraph --help`, with the listed subcommands under SEE ALSO; with one,
# tgraph-SUB(1) from `tgraph SUB --help`, its one-line name taken from
# the command list of `tgraph --help`.
set -eu
tgraph=$1 version=$2 out=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $tgraph in /*) ;; *) tgraph=$(pwd)/$tgraph ;; esac

if [ $# -eq 0 ] || [ "${1:-}" = "--see-also" ]; then
  [ $# -gt 0 ] && shift
  {
    echo "[SEE ALSO]"
    sep=""
    for sub in "$@"; do
      printf '%s\\fBtgraph-%s\\fR(1)' "$sep" "$sub"
      sep=", "
    done
    echo
  } >"$tmp/include"
  help2man --no-info --no-discard-stderr --version-string="$version" \
    --name="lazy task-graph engine" --include="$tmp/include" \
    --output="$out" "$tgraph"
  exit 0
fi

sub=$1
# "  run GRAPH.json     compute a graph's outputs (...)": the text after
# the first run of two or more spaces on the command's line.
summary=$("$tgraph" --help 2>&1 | awk -v cmd="$sub" '
  $1 == cmd && /^[ \t]/ {
    line = $0; sub(/^[ \t]+/, "", line)
    if (match(line, /[ \t][ \t]+/)) { print substr(line, RSTART + RLENGTH); exit }
  }' | sed 's/ *(tgraph [a-z]* --help)$//')
[ -n "$summary" ] || summary="the tgraph $sub command"
# The page is named after the program help2man runs: tgraph-SUB, which
# runs `tgraph SUB`.
printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$tgraph" "$sub" >"$tmp/tgraph-$sub"
chmod +x "$tmp/tgraph-$sub"
printf '[SEE ALSO]\n\\fBtgraph\\fR(1)\n' >"$tmp/include"
help2man --no-info --no-discard-stderr --version-string="$version" \
  --name="$summary" --include="$tmp/include" --output="$out" "$tmp/tgraph-$sub"
