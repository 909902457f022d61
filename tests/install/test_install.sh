#!/bin/bash
# tests/install/test_install.sh: tgraph as it is installed and consumed.
# Installs this build (meson install --destdir) into a directory under the
# build tree, then checks the installed program, headers, libraries,
# pkg-config file, man pages, completion and documents as a user meets
# them. Ends with "install: N passed, M failed".
#
# Environment (set by tests/install/meson.build): TG_BUILD_ROOT,
# TG_SOURCE_ROOT, TG_WORK (a directory for the staged install), TG_PREFIX,
# TG_BINDIR, TG_LIBDIR, TG_INCLUDEDIR, TG_DATADIR, TG_MANDIR, TG_VERSION,
# TG_MAN_PAGES (1 when the build writes man pages), TG_SANITIZE (the
# build's b_sanitize: user programs link the same runtime), TG_MESON,
# CC, CXX.
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# check NAME CMD...: CMD must succeed; its output is shown when it fails.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; printf '%s\n' "$out" | tail -25; fi
}
# same NAME EXPECTED ACTUAL: exact equality.
same() {
  if [ "$2" = "$3" ]; then ok "$1"
  else bad "$1"; printf 'expected: %s\n  actual: %s\n' "$2" "$3"; fi
}
# The staged tree stays for a look when something failed.
finish() {
  echo "install: $pass passed, $fail failed"
  [ "$fail" -eq 0 ] && rm -rf "$work"
  [ "$fail" -eq 0 ]
  exit
}

unset LD_LIBRARY_PATH LD_PRELOAD PKG_CONFIG_LIBDIR
src=$TG_SOURCE_ROOT
here=$src/tests/install
work=$TG_WORK
rm -rf "$work"
mkdir -p "$work"
stage=$work/stage
# An install path: DESTDIR + prefix + dir (dir may be absolute).
at() { case $1 in /*) echo "$stage$1" ;; *) echo "$stage$TG_PREFIX/$1" ;; esac; }
P=$stage$TG_PREFIX
bin=$(at "$TG_BINDIR")
lib=$(at "$TG_LIBDIR")
inc=$(at "$TG_INCLUDEDIR")
share=$(at "$TG_DATADIR")
man1=$(at "$TG_MANDIR")/man1

san=()
case ${TG_SANITIZE:-none} in none | '') ;; *) san=(-fsanitize="$TG_SANITIZE") ;; esac

if ! "$TG_MESON" install -C "$TG_BUILD_ROOT" --no-rebuild --quiet --destdir "$stage" >"$work/install.log" 2>&1; then
  bad "meson install"
  tail -25 "$work/install.log"
  finish
fi
ok "meson install"

# ---- the program, from its prefix, with no library path set ---------------
same "tgraph version runs from the prefix" "tgraph $TG_VERSION" \
  "$("$bin/tgraph" version 2>&1 | head -1)"
same "tgraph run of examples/builtins.json" \
  '{"report":{"count":2,"total":55,"product":165.0,"first":[1,2],"joined":["alpha","beta","delta"],"literal":{"ref":"not a ref"}}}' \
  "$(cd "$work" && "$bin/tgraph" run --no-cache --no-progress "$src/examples/builtins.json" 2>"$work/run.err")"

# ---- pkg-config ----------------------------------------------------------
# The .pc file names the configured prefix; staged under DESTDIR, a copy
# names the staged one (as a user who moves an install tree would do).
mkdir -p "$work/pkgconfig"
sed "s|^prefix=.*|prefix=$P|" "$lib/pkgconfig/tgraph.pc" >"$work/pkgconfig/tgraph.pc"
export PKG_CONFIG_PATH=$work/pkgconfig
# pc ARGS...: pkg-config's answer on tgraph, without trailing blanks.
pc() { pkg-config "$@" tgraph | sed 's/[[:space:]]*$//'; }
# (--cflags also has the flags of the libraries tgraph uses.)
read -ra cflags <<<"$(pc --cflags)"
same "pkg-config --cflags: of the install, include/ alone" "-I$inc" \
  "$(for f in "${cflags[@]}"; do case $f in *"$stage"*) echo "$f" ;; esac; done)"
same "pkg-config --libs" "-L$lib -ltgraph" "$(pc --libs)"
plugindir=$(pc --variable=plugindir)
same "pkg-config plugindir" "$lib/tgraph/plugins" "$plugindir"
# A plugin from the installed directory, loaded by name by the installed
# program: it resolves tgraph's functions against the installed library.
same "tgraph run of examples/pi.json with the installed plugin" '{"pi":3.14134125}' \
  "$(cd "$work" && TGRAPH_PLUGIN_PATH=$plugindir "$bin/tgraph" run --no-cache --no-progress \
       "$src/examples/pi.json" 2>"$work/pi.err")"

# ---- a C program against the installed library, shared and static -------
expected=$(cat "$src/examples/graph_basic.expected")
read -ra flags <<<"$(pc --cflags --libs)"
if check "C program builds with pkg-config (libtgraph.so)" \
    "$CC" "${san[@]}" -std=c11 -Wall -Wextra -Werror -o "$work/basic_shared" \
    "$src/examples/graph_basic.c" "$here/user_names.c" "${flags[@]}" \
    -Wl,-rpath,"$lib"; then
  same "C program runs (libtgraph.so)" "$expected" "$("$work/basic_shared" 2>&1)"
fi
# libtgraph.a with what it needs, as the .pc file says (Requires.private,
# linked shared; Libs.private). pkg-config --static would also ask for the
# static archives of those libraries' own dependencies.
read -ra requires <<<"$(pkg-config --print-requires-private tgraph | awk '{ print $1 }' | tr '\n' ' ')"
read -ra static_libs <<<"$(pkg-config --libs "${requires[@]}") $(sed -n 's/^Libs.private: //p' "$work/pkgconfig/tgraph.pc")"
if check "C program links libtgraph.a beside its own names" \
    "$CC" "${san[@]}" -std=c11 -Wall -Wextra -Werror -o "$work/basic_static" \
    "$src/examples/graph_basic.c" "$here/user_names.c" "${cflags[@]}" \
    "$lib/libtgraph.a" "${static_libs[@]}"; then
  same "C program runs (libtgraph.a)" "$expected" "$("$work/basic_static" 2>&1)"
fi
same "libtgraph.a defines no global name outside tg_" "" \
  "$(nm -g --defined-only "$lib/libtgraph.a" 2>/dev/null |
     awk 'NF == 3 && $2 ~ /^[A-Z]$/ && $3 !~ /^(tg_|__)/ { print $3 }' | sort -u | tr '\n' ' ')"

# ---- C++ -----------------------------------------------------------------
if check "C++ program builds with pkg-config" \
    "$CXX" "${san[@]}" -std=c++11 -Wall -Wextra -Werror -o "$work/user_cxx" \
    "$here/user.cpp" "${flags[@]}" -Wl,-rpath,"$lib"; then
  same "C++ program runs" $'{"lang":"C++","n":[1,2.5]}\nmap' "$("$work/user_cxx" 2>&1)"
fi

# ---- headers -------------------------------------------------------------
headers=$(cd "$inc" && ls tgraph.h tgraph/*.h)
c99_bad="" cxx_bad=""
for h in $headers; do
  printf '#include <%s>\n' "$h" >"$work/one.c"
  "$CC" -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$work/one.c" \
    >>"$work/headers.log" 2>&1 || c99_bad="$c99_bad $h"
  "$CXX" -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$work/one.c" \
    >>"$work/headers.log" 2>&1 || cxx_bad="$cxx_bad $h"
done
same "each header alone under -std=c99 -pedantic -Werror" "" "$c99_bad"
same "each header alone as C++11 -pedantic -Werror" "" "$cxx_bad"
[ -z "$c99_bad$cxx_bad" ] || head -30 "$work/headers.log"
printf '#include <tgraph.h>\n' >"$work/all.c"
# (one file a line: blanks and the backslashes that continue lines go)
# shellcheck disable=SC1003
"$CC" -M -I"$inc" "$work/all.c" | tr -s ' \\' '\n' >"$work/all.deps"
same "tgraph.h includes every public header" "" \
  "$(for h in $headers; do
       [ "$h" = tgraph.h ] || grep -qx "$inc/$h" "$work/all.deps" || echo "$h"
     done | tr '\n' ' ')"

# ---- exactly the public API is exported -----------------------------------
# Functions declared extern in the installed headers (gcc -aux-info lists
# every declaration with its file), against libtgraph.so's dynamic symbols.
"$CC" -std=c11 -I"$inc" -fsyntax-only -aux-info "$work/aux.txt" "$work/all.c"
grep -F "/* $inc/" "$work/aux.txt" |
  sed -n 's/^[/][*] [^ ]* [*][/] extern [^(]*[^a-zA-Z0-9_]\(tg_[a-zA-Z0-9_]*\) *(.*/\1/p' |
  sort -u >"$work/declared"
nm -D --defined-only "$lib/libtgraph.so" | awk '{ print $NF }' | sort -u >"$work/exported"
same "libtgraph.so exports exactly the functions include/ declares" "" \
  "$(diff "$work/declared" "$work/exported" | grep '^[<>]' | tr '\n' ' ')"
# (and the comparison is not of two empty lists)
same "include/ declares over 100 public functions" "yes" \
  "$([ "$(wc -l <"$work/declared")" -gt 100 ] && echo yes)"

# ---- documents -------------------------------------------------------------
for f in LICENSE README.md docs/format.md; do
  check "share/doc/tgraph/${f#docs/}" cmp "$src/$f" "$share/doc/tgraph/${f#docs/}"
done
check "share/tgraph/graph.schema.json" cmp "$src/docs/graph.schema.json" "$share/tgraph/graph.schema.json"

# ---- man pages -------------------------------------------------------------
# render PAGE: the page as man shows it, or its source when man is missing.
render() {
  if command -v man >/dev/null 2>&1; then
    MANWIDTH=200 man -l "$1" 2>/dev/null | sed 's/.\x08//g'
  else
    sed 's/\\-/-/g; s/\\f[BIRP]//g' "$1"
  fi
}
if [ "${TG_MAN_PAGES:-0}" = 1 ]; then
  for page in tgraph tgraph-run tgraph-inspect tgraph-cache tgraph-worker tgraph-keys tgraph-version; do
    if [ ! -f "$man1/$page.1" ]; then bad "man page $page.1 installed"; continue; fi
    same "man page $page.1 names $page" "$page -" \
      "$(render "$man1/$page.1" | grep -o "^ *$page - " | head -1 | sed 's/^ *//; s/ $//')"
  done
  same "tgraph-run(1) lists --scheduler" "--scheduler" \
    "$(render "$man1/tgraph-run.1" | grep -o -- '--scheduler' | head -1)"
  same "tgraph(1) points to tgraph-run(1)" "tgraph-run(1)" \
    "$(render "$man1/tgraph.1" | grep -o 'tgraph-run(1)' | head -1)"
else
  echo "(no man pages in this build: -Dman=disabled, or help2man was not found)"
fi

# ---- bash completion -------------------------------------------------------
completion=$share/bash-completion/completions/tgraph
# complete WORD...: what the installed completion offers for the last word.
complete_words() {
  bash --norc --noprofile -c '
    . "$1"; shift
    fn=$(complete -p tgraph | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' complete "$completion" "$@"
}
same "completion: tgraph ru<TAB>" "run " "$(complete_words "$bin/tgraph" ru)"
same "completion: tgraph run --sch<TAB>" "--scheduler " "$(complete_words "$bin/tgraph" run --sch)"
same "completion: tgraph cache cl<TAB>" "clear " "$(complete_words "$bin/tgraph" cache cl)"

finish
