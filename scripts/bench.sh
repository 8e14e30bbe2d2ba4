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
#   scripts/bench.sh fill [--rows N (default 10000)] [--queries N (default 1000)] [--share S (default 0.2)]
#                         [--ef-search E]   (search p50/p99 at 40% and 80% of a node's capacity)
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

# bench_env KNOWN OTHERS ARGS...: each "--name V" among ARGS whose name is in
# KNOWN (a space-separated list) is exported as MURI_BENCH_<NAME> (upper case,
# dashes to underscores); any other argument goes to the array extra when
# OTHERS is "pass", and is refused otherwise.
bench_env() {
  local known=" $1 " others=$2 name
  shift 2
  extra=()
  while [ $# -gt 0 ]; do
    name=${1#--}
    if [ "$name" != "$1" ] && [[ $known == *" $name "* ]] && [ $# -ge 2 ]; then
      name=${name//-/_}
      export "MURI_BENCH_${name^^}=$2"
      shift 2
    elif [ "$others" = pass ]; then
      extra+=("$1")
      shift
    else
      echo "unknown $what option: $1" >&2
      exit 2
    fi
  done
}
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
    bench_env "rounds lease-ms suspect-ms" refuse "$@"
    export MURI_SOURCE_ROOT="$root"
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_failover.py" ;;
  gateway)
    bench_env "rows queries ef-search dataset" pass "$@"
    export MURI_BENCH_ARGS="${extra[*]:-}" MURI_SOURCE_ROOT="$root"
    export MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_gateway.py" ;;
  fill)
    # search latency on a node filled to 40% then 80% of its registered capacity (the chain's fill)
    bench_env "rows queries share ef-search" refuse "$@"
    export MURI_SOURCE_ROOT="$root" MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    # a folder of its own: other pytest runs on the machine prune the shared /tmp/pytest-of-$USER
    run=${MURI_BENCH_RUN_DIR:-$HOME/.cache/muri/fill-run}
    cd "$root/build"
    rc=0
    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider --basetemp "$run" "$root/tests/python/bench_fill.py" || rc=$?
    rm -rf "$run"
    exit $rc ;;
  writes)
    # the write path at QUORUM: 10k-vector inserts, then single-record updates and deletes
    bench_env "rows rounds writers seconds dataset indexer-args" refuse "$@"
    export MURI_SOURCE_ROOT="$root" MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_writes.py" ;;
  fairness)
    # a well-behaved account's latency while another floods the gateway (per-account quotas)
    bench_env "searches rate flood-threads quota-rps" refuse "$@"
    export MURI_SOURCE_ROOT="$root"
    cd "$root/build"
    exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_fairness.py" ;;
  binary)
    bench_env "rows queries bits" refuse "$@"
    export MURI_SOURCE_ROOT="$root" MURI_DATASETS=${MURI_DATASETS:-$root/../shared/datasets}
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    cd "$root/build"
    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider "$root/tests/python/bench_binary.py"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" ;;
  scale)
    # Fashion-MNIST grown to N rows by deformations (tests/bench/fashion_mnist_1m.py,
    # Debian's dataset-fashion-mnist), generated once and cached outside the clone
    export MURI_BENCH_ROWS=1000000 MURI_BENCH_QUERIES=1000 MURI_BENCH_MIN_FREE_MB=4096
    bench_env "rows queries replication fragments min-free-mb indexer-args" pass "$@"
    rows=$MURI_BENCH_ROWS queries=$MURI_BENCH_QUERIES min_free=$MURI_BENCH_MIN_FREE_MB
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
  *) echo "unknown benchmark: $what (known: rpc, indexer, filter, ledger, dims, failover, gateway, fill, writes, fairness, binary, scale)" >&2; exit 2 ;;
esac
