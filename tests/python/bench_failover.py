"""Failover benchmark (scripts/bench.sh failover): a network started from a
genesis file (4 ledger replicas, 3 indexers), one fragment replicated 3
ways, a client writing one record at a time at QUORUM to the primary the
ledger names. Each round SIGKILLs the primary and measures the time from the
kill to the first write acknowledged at QUORUM by the next epoch's primary,
then restarts the killed indexer and lets it rejoin. Prints every round, the
p50 and the max, and the indexer settings that shape the figure.

Not part of the test suite (the file name does not match test_*.py); run it
with scripts/bench.sh failover [--rounds N] [--lease-ms MS] [--suspect-ms MS].
"""
import os
import threading
import time

import grpc
import numpy as np

from chain_util import CHAIN, DIM, ChainNet
from ledger_util import signed_tx
from muri_util import wait_until
from test_indexer import records, write

MAGU = "failover-bench"


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def test_failover_bench(servers, stubs, tmp_path):
    rounds = env_int("MURI_BENCH_ROUNDS", 10)
    lease_ms = os.environ.get("MURI_BENCH_LEASE_MS")
    suspect_ms = os.environ.get("MURI_BENCH_SUSPECT_MS")
    timing = []  # the indexer's defaults unless given
    if lease_ms:
        timing += ["--lease-ms", lease_ms]
    if suspect_ms:
        timing += ["--suspect-ms", suspect_ms]
    net = ChainNet(servers, stubs, tmp_path, n_indexers=3, timing=tuple(timing))
    pb, t, ipb = net.pb, net.stubs.types_pb2, net.stubs.indexer_pb2
    spec = t.IndexSpec(kind=t.FLAT)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=DIM, metric=t.L2, index=spec,
                                                   fragments=1, replication=3, deposit=1000)))
    sch = ipb.FragmentSchema(dimension=DIM, metric=t.L2, index=spec)

    def config():
        return net.lstubs[0].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10).config

    state = {"cfg": None}
    wait_until(lambda: state.update(cfg=config()) or True, timeout=30)
    acks, lock, stop = [], threading.Lock(), threading.Event()
    rng = np.random.default_rng(7)

    def load():
        cfg = state["cfg"]
        while not stop.is_set():
            ix = net.by_pk(cfg.primary)
            if ix.server.proc.poll() is not None:
                time.sleep(0.01)
                try:
                    cfg = config()
                except grpc.RpcError:
                    pass
                continue
            recs = records(ipb, rng.normal(size=(1, DIM)).astype(np.float32))
            try:
                r = write(ix, MAGU, 0, cfg.epoch, recs, sch, t.QUORUM, timeout_ms=1000)
                if r.level_achieved >= t.QUORUM:
                    with lock:
                        acks.append((time.monotonic(), cfg.epoch))
            except grpc.RpcError:
                time.sleep(0.01)
                try:
                    cfg = config()
                except grpc.RpcError:
                    pass
    th = threading.Thread(target=load)
    th.start()
    samples = []
    try:
        assert wait_until(lambda: len(acks) >= 20, timeout=60), "no QUORUM writes before the first kill"
        for rnd in range(rounds):
            cur = config()
            victim = net.by_pk(cur.primary)
            time.sleep(1.0)  # steady state: the rejoined replica acknowledges again
            t0 = time.monotonic()
            victim.server.kill9()

            def resumed():
                with lock:
                    return next((ts for ts, e in acks if ts > t0 and e > cur.epoch), None)
            t1 = wait_until(resumed, timeout=60, interval=0.005)
            assert t1, f"round {rnd}: no QUORUM write acknowledged after the kill"
            new = config()
            samples.append((t1 - t0) * 1000.0)
            print(f"round {rnd + 1}: epoch {cur.epoch} -> {new.epoch}: first QUORUM write "
                  f"{samples[-1]:.0f} ms after SIGKILL of the primary", flush=True)
            victim.restart()
    finally:
        stop.set()
        th.join(timeout=30)
    s = sorted(samples)
    p50 = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    print(f"failover: {len(s)} kills, SIGKILL -> first QUORUM write: p50 {p50:.0f} ms, max {s[-1]:.0f} ms "
          f"(indexer lease_ms={lease_ms or 'default'}, suspect_ms={suspect_ms or 'default'}; "
          f"target 2000 ms, goal 1000 ms)")
    net.close()
