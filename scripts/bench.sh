#!/usr/bin/env bash
# Installs what is missing, builds muri and runs a benchmark; prints its
# figures next to the baseline measured in the same run.
#   scripts/bench.sh rpc [rpc-bench options]
#   scripts/bench.sh indexer [indexer-bench options]
#   scripts/bench.sh ledger [ledger-bench options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-rpc}
shift || true
bash "$root/scripts/setup.sh" "$root/build" >/dev/null 2>&1
export OMP_WAIT_POLICY=passive MURI_BUILD_ROOT="$root/build"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
case "$what" in
  rpc) exec "$root/build/tests/bench/rpc-bench" "$@" ;;
  indexer)
    export MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    exec "$root/build/tests/bench/indexer-bench" "$@" ;;
  ledger) exec "$root/build/tests/bench/ledger-bench" "$@" ;;
  *) echo "unknown benchmark: $what (known: rpc, indexer, ledger)" >&2; exit 2 ;;
esac
