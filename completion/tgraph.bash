# bash completion for tgraph.
#
# Nothing here lists a command or an option: they are read, at completion
# time, from the help of the very program being completed (`tgraph --help`
# for the commands, `tgraph SUB --help` for SUB's options and actions), so
# completion follows the program's option parser as it changes.

# Commands: the first word of each indented line under "commands:".
# (Help text on stdout or stderr alike.)
_tgraph_commands() {
  "$1" --help 2>&1 | awk '
    tolower($0) ~ /^[a-z ]*commands:/ { in_list = 1; next }
    in_list && /^[ \t]*$/ { in_list = 0 }
    in_list && /^[ \t]+[a-z]/ { print $1 }'
}

# Options of SUB: the long (and short) options an indented help line
# starts with ("  --scheduler NAME  ...", "  -v, --verbose  ..."), those
# an action's line names ("  check [--repair]  ...") and those of the
# usage line ("usage: tgraph cache [--cache-dir DIR] ...").
_tgraph_options() {
  "$1" "$2" --help 2>&1 | awk '
    tolower($1) == "usage:" {
      for (i = 2; i <= NF; i++)
        if ($i ~ /^\[?--[A-Za-z0-9]/) { w = $i; gsub(/[][]/, "", w); sub(/=.*/, "", w); print w }
      next
    }
    /^[ \t]+-/ || /^[ \t]+[a-z][a-z-]*[ \t]+\[?--/ {
      for (i = 1; i <= NF; i++) {
        w = $i
        gsub(/[][,]/, "", w)
        sub(/=.*/, "", w)
        if (w ~ /^--?[A-Za-z0-9][A-Za-z0-9-]*$/) print w
        else if (i > 1 && w !~ /^[a-z]/) break
      }
    }'
}

# Actions of SUB: the lowercase words of its usage line after "tgraph SUB"
# ("usage: tgraph cache [--cache-dir DIR] info|list|check ...").
_tgraph_actions() {
  "$1" "$2" --help 2>&1 | awk -v cmd="$2" '
    tolower($1) == "usage:" {
      for (i = 3; i <= NF; i++) {
        if ($i == cmd) { seen = 1; continue }
        if (!seen || $i ~ /^\[/ || $i ~ /\]$/) continue
        if ($i ~ /^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$/) {
          n = split($i, a, "|")
          for (j = 1; j <= n; j++) print a[j]
        }
      }
      exit
    }'
}

_tgraph() {
  local cur prog sub action i
  cur=${COMP_WORDS[COMP_CWORD]}
  prog=${COMP_WORDS[0]}
  prog=${prog/#\~/$HOME}
  COMPREPLY=()

  sub=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -*) ;;
      *) sub=${COMP_WORDS[i]}; break ;;
    esac
  done

  if [[ -z $sub ]]; then
    if [[ $cur == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "--help" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "$(_tgraph_commands "$prog")" -- "$cur")
    fi
    return 0
  fi

  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_tgraph_options "$prog" "$sub" | sort -u)" -- "$cur")
    return 0
  fi

  # An action ("cache list") once, as the first plain word after SUB;
  # otherwise file names (complete -o default).
  local actions
  actions=$(_tgraph_actions "$prog" "$sub")
  [[ -n $actions ]] || return 0
  for ((i = i + 1; i < COMP_CWORD; i++)); do
    action=${COMP_WORDS[i]}
    [[ $action == -* ]] && continue
    [[ $'\n'$actions$'\n' == *$'\n'$action$'\n'* ]] && return 0
  done
  mapfile -t COMPREPLY < <(compgen -W "$actions" -- "$cur")
  return 0
}

complete -o default -F _tgraph tgraph
