# tests/checks.sh: the checks of the test scripts, sourced by
# cluster/test_mpi.sh, cluster/test_slurm.sh and install/test_subproject.sh.
# ok/bad count into pass and fail, which each script reports at its end.
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# same NAME EXPECTED ACTUAL: exact equality.
same() {
  if [ "$2" = "$3" ]; then ok "$1"
  else bad "$1"; printf 'expected: %s\n  actual: %s\n' "$2" "$3"; fi
}
