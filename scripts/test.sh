#!/usr/bin/env bash
# Installs what is missing, builds muri twice (optimized, and with ASan +
# UBSan) and runs the whole test suite in both builds. The last line is
# "N passed, N failed" over every test case of both runs; the exit status is
# non-zero when anything failed.
#
#   scripts/test.sh [meson test arguments, e.g. --suite unit]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# -Dtest_faults=true: the indexer's test-only lying mode (test_lie), which
# the Byzantine tests start an indexer in; never in a production build.
bash scripts/setup.sh "$root/build" -Dtest_faults=true || { echo "0 passed, 1 failed"; exit 1; }
bash scripts/setup.sh "$root/build-asan" -Db_sanitize=address,undefined -Db_lundef=false -Dtest_faults=true \
  || { echo "0 passed, 1 failed"; exit 1; }
# The fuzz targets (tests/fuzz/): clang with libFuzzer, ASan and UBSan; only
# the targets are built in this tree.
if [ ! -f "$root/build-fuzz/build.ninja" ]; then
  faiss_dir=$(bash scripts/setup.sh --deps) &&
    CC=clang CXX=clang++ meson setup "$root/build-fuzz" "$root" -Dfaiss_dir="$faiss_dir" -Dfuzz=true \
      -Db_sanitize=address,undefined -Db_lundef=false >/dev/null ||
    { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$root/build-fuzz" fuzz >/dev/null || { echo "0 passed, 1 failed"; exit 1; }

export OMP_WAIT_POLICY=passive
rc=0
# The deploy suite checks the Kubernetes manifests against the API schemas
# with kubernetes-validate (PyPI; it carries the schemas), in a venv kept
# outside the clone.
k8s_venv=$HOME/.cache/muri/k8s-venv
if [ ! -x "$k8s_venv/bin/kubernetes-validate" ]; then
  (/usr/bin/python3 -m venv "$k8s_venv" && "$k8s_venv/bin/pip" install -q kubernetes-validate) >/dev/null 2>&1 ||
    echo "== kubernetes-validate could not be installed from PyPI: the manifest check will be skipped"
fi
if ! docker info >/dev/null 2>&1; then
  echo "== tests/deploy: skipped (no Docker engine answers; the deploy suite runs only its checks of the rendered files)"
fi
echo "== tests: optimized build"
meson test -C build --print-errorlogs --num-processes 2 "$@" || rc=1
echo "== tests: ASan + UBSan build"
meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 "$@" || rc=1
# Each fuzz target replays its corpus, then fuzzes MURI_FUZZ_SECONDS (30).
fuzz_log=
if [ $# -eq 0 ] || [[ " $* " == *" --suite fuzz "* ]]; then
  echo "== tests: fuzz targets, ${MURI_FUZZ_SECONDS:-30} s each"
  meson test -C build-fuzz --no-rebuild --print-errorlogs --num-processes 2 --suite fuzz || rc=1
  fuzz_log=build-fuzz/meson-logs/testlog.json
fi

/usr/bin/python3 scripts/test_summary.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json $fuzz_log || rc=1
exit $rc
