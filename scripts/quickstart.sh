#!/bin/sh
# scripts/quickstart.sh: install what is missing, build, and run.
#
#   scripts/quickstart.sh example   build (release) and run the word-count
#                                   example on the processes backend
#   scripts/quickstart.sh test      build and run the whole test suite:
#                                   release build, ASan+UBSan build, TSan
#                                   build of the threaded suites, a bounded
#                                   fuzzing run, valgrind on the examples
#
# Works on a fresh Debian 12 as root (or with sudo). Re-running is fast:
# packages are only installed when missing and builds are incremental.
set -eu
cd "$(dirname "$0")/.."

mode=${1:-example}
case "$mode" in
  example|test) ;;
  *) echo "usage: $0 example|test" >&2; exit 2 ;;
esac

pkgs="meson ninja-build pkg-config gcc libc6-dev libxxhash-dev liblmdb-dev
      libjansson-dev libzstd-dev libzmq3-dev libcriterion-dev help2man
      libmicrohttpd-dev"
if [ "$mode" = test ]; then
  # tmux drives Ctrl-C in a real terminal; setpriv (util-linux) runs a
  # second local user; ps and pkill (procps) look for leftover processes.
  pkgs="$pkgs clang libclang-rt-14-dev valgrind tmux util-linux procps"
  # dot renders the --dot legend in the trace suite.
  pkgs="$pkgs graphviz"
  # The Python reader's test: numpy, zstd-compressed files, checksums.
  pkgs="$pkgs python3-numpy python3-zstandard python3-xxhash"
  # The install test builds C++ against the headers and renders man pages.
  pkgs="$pkgs g++ man-db"
  # python3-jsonschema checks graph.json samples against the schema.
  pkgs="$pkgs python3-jsonschema"
  # chromium renders the run report, zlib reads its screenshots.
  pkgs="$pkgs chromium zlib1g-dev"
  # A single-machine Slurm cluster (scripts/slurm-cluster.sh) for the slurm suite.
  pkgs="$pkgs slurm-wlm munge"
  pkgs="$pkgs openmpi-bin libpmix2" # mpirun and the PMIx client tgraph loads (suite mpi)
  # MPICH's mpiexec.hydra, whose ranks meet through its PMI-1 server (suite
  # mpi); Open MPI's mpirun stays the default mpirun (higher priority).
  pkgs="$pkgs mpich"
fi

install_missing() {
  missing=""
  for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
      missing="$missing $p"
    fi
  done
  [ -z "$missing" ] && return 0
  echo "quickstart: installing$missing" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# setup DIR [meson options...]: configure once, reconfigure never.
setup() {
  dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
}

install_missing
jobs=$(nproc 2>/dev/null || echo 2)

if [ "$mode" = example ]; then
  setup build --buildtype=release
  # A word count over the system's licence texts, on forked worker processes.
  exec ./build/cli/tgraph run examples/wordcount.json --scheduler=processes
fi

exec ./scripts/run-tests.sh
