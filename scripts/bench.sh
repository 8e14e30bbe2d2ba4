#!/usr/bin/env bash
# Installs what is missing, builds muri and runs a benchmark; prints its
# figures next to the baseline measured in the same run.
#   scripts/bench.sh rpc [rpc-bench options]
#   scripts/bench.sh indexer [indexer-bench options]
#   scripts/bench.sh filter [filter-walk-bench options, e.g. --rows N --queries N --shares 50,15,5,1]
#   scripts/bench.sh ledger [ledger-bench options]
#   scripts/bench.sh failover [--rounds N] [--lease-ms MS] [--suspect-ms MS]
#   scripts/bench.sh dims [dims-bench options, e.g. --rows N --sample N --dims 100,384,768,1536]
#   scripts/bench.sh binary [--rows N] [--queries N] [--bits B]   (HAMMING codes through a gateway)
#   scripts/bench.sh gateway [--rows N (0: all)] [--queries N] [--ef-search E] [--dataset NAME]
#                            [gateway-bench options, e.g. --rpc-threads R --batch-queries N]
#   scripts/bench.sh writes [--rows N (10000)] [--rounds R (10)] [--writers W (2)] [--seconds S (10)]
#                           [--dataset NAME] [--indexer-args "ARGS"]   (the write path at QUORUM)
#   scripts/bench.sh fairness [--searches N] [--rate R] [--flood-threads T] [--quota-rps Q]
#   scripts/bench.sh scale [--rows N (default 1000000)] [--queries N (default 1000)] [--replication N]
#                          [--fragments N] [--min-free-mb MB] [--indexer-args "ARGS"]
#                          [scale-bench options, e.g. --m M
#                          --ef-construction E --efs E1,E2,.. --recall R --mixed-seconds S]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-rpc}
shift || true
bash "$root/scripts/setup.sh" "$root/build" -Dtest_faults=false >/dev/null 2>&1
export OMP_WAIT_POLICY=passive MURI_BUILD_ROOT="$root/build"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
case "$what" in
  rpc) exec "$root/build/tests/bench/rpc-bench" "$@" ;;
  indexer)
    export MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    # hnswlib (PyPI) as a baseline only, in a venv of its own; never a muri dependency
    hv=$HOME/.cache/muri/hnswlib-venv
    if ! "$hv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null; then
      (/usr/bin/python3 -m venv "$hv" && "$hv/bin/pip" install -q hnswlib==0.8.0 numpy) >/dev/null 2>&1 ||
        echo "== hnswlib could not be installed from PyPI: its baseline rows are skipped"
    fi
    if "$hv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null; then
      export MURI_HNSWLIB_PYTHON=$hv/bin/python MURI_SOURCE_ROOT=$root
    fi
    exec "$root/build/tests/bench/indexer-bench" "$@" ;;
  filter)
    export MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    exec "$root/build/tests/bench/filter-walk-bench" "$@" ;;
  ledger) exec "$root/build/tests/bench/ledger-bench" "$@" ;;
  dims)
    # glove lifted to each dimension, plus Fashion-MNIST (784-d, Debian's
    # dataset-fashion-mnist) as .fvecs cached outside the clone when installed
    export MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    real=()
    fm=$HOME/.cache/muri/datasets/fashion-mnist-784
    if [ -d /usr/share/datasets/fashion-mnist ] && /usr/bin/python3 "$root/tests/bench/fashion_mnist.py" "$fm" >/dev/null; then
      real=(--real "fashion-mnist-784=$fm,l2")
    else
      echo "== Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): its row is skipped"
    fi
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$root/build/tests/bench/dims-bench" "${real[@]}" "$@"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" ;;
  failover)
    while [ $# -gt 0 ]; do
      case "$1" in
        --rounds) export MURI_BENCH_ROUNDS=$2; shift 2 ;;
        --lease-ms) export MURI_BENCH_LEASE_MS=$2; shift 2 ;;
        --suspect-ms) export MURI_BENCH_SUSPECT_MS=$2; shift 2 ;;
        *) echo "unknown failover option: $1" >&2; exit 2 ;;
      esac
    done
    export MURI_SOURCE_ROOT="$root"
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_failover.py" ;;
  gateway)
    extra=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --rows) export MURI_BENCH_ROWS=$2; shift 2 ;;
        --queries) export MURI_BENCH_QUERIES=$2; shift 2 ;;
        --ef-search) export MURI_BENCH_EF_SEARCH=$2; shift 2 ;;
        --dataset) export MURI_BENCH_DATASET=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
      esac
    done
    export MURI_BENCH_ARGS="${extra[*]:-}" MURI_SOURCE_ROOT="$root"
    export MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_gateway.py" ;;
  writes)
    while [ $# -gt 0 ]; do
      case "$1" in
        --rows) export MURI_BENCH_ROWS=$2; shift 2 ;;
        --rounds) export MURI_BENCH_ROUNDS=$2; shift 2 ;;
        --writers) export MURI_BENCH_WRITERS=$2; shift 2 ;;
        --seconds) export MURI_BENCH_SECONDS=$2; shift 2 ;;
        --dataset) export MURI_BENCH_DATASET=$2; shift 2 ;;
        --indexer-args) export MURI_BENCH_IX_ARGS=$2; shift 2 ;;
        *) echo "unknown writes option: $1" >&2; exit 2 ;;
      esac
    done
    export MURI_SOURCE_ROOT="$root" MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_writes.py" ;;
  fairness)
    # a well-behaved account's latency while another floods the gateway (per-account quotas)
    while [ $# -gt 0 ]; do
      case "$1" in
        --searches) export MURI_BENCH_SEARCHES=$2; shift 2 ;;
        --rate) export MURI_BENCH_GOOD_RATE=$2; shift 2 ;;
        --flood-threads) export MURI_BENCH_FLOOD_THREADS=$2; shift 2 ;;
        --quota-rps) export MURI_BENCH_QUOTA_RPS=$2; shift 2 ;;
        *) echo "unknown fairness option: $1" >&2; exit 2 ;;
      esac
    done
    export MURI_SOURCE_ROOT="$root"
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_fairness.py" ;;
  binary)
    while [ $# -gt 0 ]; do
      case "$1" in
        --rows) export MURI_BENCH_ROWS=$2; shift 2 ;;
        --queries) export MURI_BENCH_QUERIES=$2; shift 2 ;;
        --bits) export MURI_BENCH_BITS=$2; shift 2 ;;
        *) echo "unknown binary option: $1" >&2; exit 2 ;;
      esac
    done
    export MURI_SOURCE_ROOT="$root" MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    cd "$root/build"
    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_binary.py"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" ;;
  scale)
    # Fashion-MNIST grown to N rows by deformations (tests/bench/fashion_mnist_1m.py,
    # Debian's dataset-fashion-mnist), generated once and cached outside the clone
    rows=1000000 queries=1000 min_free=4096
    extra=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --rows) rows=$2; shift 2 ;;
        --queries) queries=$2; shift 2 ;;
        --replication) export MURI_BENCH_REPLICATION=$2; shift 2 ;;
        --fragments) export MURI_BENCH_FRAGMENTS=$2; shift 2 ;;
        --min-free-mb) min_free=$2; shift 2 ;;
        --indexer-args) export MURI_BENCH_IX_ARGS=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
      esac
    done
    if [ ! -d /usr/share/datasets/fashion-mnist ]; then
      MURI_EXTRA_PACKAGES=dataset-fashion-mnist bash "$root/scripts/setup.sh" "$root/build" -Dtest_faults=false >/dev/null 2>&1 ||
        { echo "dataset-fashion-mnist could not be installed (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
    fi
    echo "generating (or reusing) Fashion-MNIST x $rows..."
    t0=$SECONDS
    data=$(/usr/bin/python3 "$root/tests/bench/fashion_mnist_1m.py" --rows "$rows" --queries "$queries" | tail -1)
    echo "dataset $data ready in $((SECONDS - t0)) s"
    export MURI_BENCH_DATA=$data MURI_BENCH_ROWS=0 MURI_BENCH_QUERIES=$queries
    export MURI_BENCH_ARGS="${extra[*]:-}" MURI_SOURCE_ROOT="$root"
    # the network's data (SQLite logs of every replica) in a folder emptied at each run
    run=${MURI_BENCH_RUN_DIR:-$HOME/.cache/muri/scale-run}
    echo "disk: $(df -h --output=avail "$(dirname "$run")" | tail -1 | tr -d ' ') free; memory: $(awk '/MemAvailable/{print int($2/1024)}' /proc/meminfo) MiB available"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    cd "$root/build"
    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider --basetemp "$run" "$root/tests/python/bench_scale.py" &
    bench=$!
    # stop the run (its process group) when the machine's available memory falls below min_free MiB
    (while kill -0 "$bench" 2>/dev/null; do
       avail=$(awk '/MemAvailable/{print int($2/1024)}' /proc/meminfo)
       if [ "$avail" -lt "$min_free" ]; then
         echo "== only $avail MiB available (below --min-free-mb $min_free): stopping the benchmark" >&2
         pkill -TERM -P "$bench"; kill -TERM "$bench"; break
       fi
       sleep 5
     done) &
    rc=0
    wait "$bench" || rc=$?
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    rm -rf "$run"
    exit $rc ;;
  *) echo "unknown benchmark: $what (known: rpc, indexer, filter, ledger, dims, failover, gateway, fairness, binary, scale)" >&2; exit 2 ;;
esac
