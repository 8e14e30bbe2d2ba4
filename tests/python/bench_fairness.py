"""Fairness under a flood, with per-account quotas: one gateway (auth on,
receipts off) over a network of 4 ledger replicas and 3 indexers, a
collection of 1 fragment with 1,000 vectors of dimension 32. A well-behaved
account searches sequentially at MURI_BENCH_RATE searches a second
(default 25) for MURI_BENCH_SEARCHES searches (default 200, top 10 at ONE),
three times: on the idle gateway; while a second account floods it from
MURI_BENCH_FLOOD_THREADS threads (default 16, in a process of its own, each
searching back to back and ignoring every refusal) with the quotas on
(quota_requests_per_second MURI_BENCH_QUOTA_RPS, default 50, and
quota_concurrent_calls 4 per account); and the same flood with the quotas
lifted by SIGHUP, for comparison. Prints the well-behaved account's p50 /
p99 in each phase, their ratio to the idle ones, the flooder's served and
refused rates, and the load average.

Not part of the test suite (the file name does not match test_*.py); run it
with scripts/bench.sh fairness, or /usr/bin/python3 -m pytest -q -s
tests/python/bench_fairness.py
"""
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np

D = 32


def flood_main(argv):
    """The flooder: threads searching back to back until stdin closes; prints its counts."""
    target, key, threads, stubs_dir = argv[0], argv[1], int(argv[2]), argv[3]
    sys.path.insert(0, stubs_dir)
    import types_pb2 as tpb
    import vectorstore_pb2 as vpb
    import vectorstore_pb2_grpc as vgrpc
    ch = grpc.insecure_channel(target)
    stub = vgrpc.VectorStoreStub(ch)
    stop = threading.Event()
    counts = {"served": 0, "refused": 0, "other": 0}
    mu = threading.Lock()
    rng = np.random.default_rng(7)
    qs = [vpb.SearchRequest(collection="f", query_vector=tpb.Vector(values=list(map(float, q))), top_k=10,
                            consistency_level=tpb.ONE) for q in rng.normal(size=(64, D)).astype(np.float32)]
    md = (("authorization", f"Bearer {key}"),)

    def worker(i):
        n = i
        while not stop.is_set():
            try:
                stub.Search(qs[n % len(qs)], timeout=30, metadata=md)
                k = "served"
            except grpc.RpcError as e:
                k = "refused" if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "other"
            n += 1
            with mu:
                counts[k] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    print("started", flush=True)
    sys.stdin.read()
    stop.set()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    print(f"{counts['served']} {counts['refused']} {counts['other']} {wall:.3f}", flush=True)


def good_round(stub, vpb, tpb, key, qs, rate):
    lat = []
    md = (("authorization", f"Bearer {key}"),)
    refused = 0
    t0 = time.perf_counter()
    for i, q in enumerate(qs):
        due = t0 + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        req = vpb.SearchRequest(collection="f", query_vector=tpb.Vector(values=list(map(float, q))), top_k=10,
                                consistency_level=tpb.ONE)
        s = time.perf_counter()
        try:
            stub.Search(req, timeout=30, metadata=md)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            refused += 1
        lat.append(time.perf_counter() - s)
    lat.sort()
    return lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000, refused


class Flood:
    def __init__(self, target, key, threads, stubs_dir):
        self.p = subprocess.Popen([sys.executable, __file__, "--flood", target, key, str(threads), stubs_dir],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "started"
        time.sleep(1.0)  # let it reach its pace

    def stop(self):
        out, _ = self.p.communicate("", timeout=120)
        served, refused, other, wall = out.split()
        return int(served) / float(wall), int(refused) / float(wall), int(other)


def test_bench_fairness(servers, stubs, tmp_path):
    from chain_util import CHAIN, ChainNet
    from gateway_util import Gateway
    from ledger_util import Account, signed_tx
    from muri_util import wait_until
    from test_auth import bearer, chain_height, key_hash, new_key

    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    n = int(os.environ.get("MURI_BENCH_SEARCHES", "200"))
    rate = float(os.environ.get("MURI_BENCH_RATE", "25"))
    threads = int(os.environ.get("MURI_BENCH_FLOOD_THREADS", "16"))
    rps = float(os.environ.get("MURI_BENCH_QUOTA_RPS", "50"))
    net = ChainNet(servers, stubs, tmp_path)
    good, bad = Account(), Account()
    kg, kb = new_key(), new_key()
    for who, k in ((good, kg), (bad, kb)):
        net.submit(signed_tx(lpb, CHAIN, net.owner, transfer=lpb.Transfer(to=who.pk, amount=100_000)))
        r = net.submit(signed_tx(lpb, CHAIN, who, create_api_key=lpb.CreateApiKey(key_hash=key_hash(k),
                                                                                  scope=lpb.SCOPE_ADMIN)))
    conf = tmp_path / "gateway.conf"
    on = f"quota_requests_per_second = {rps}\nquota_requests_burst = {rps}\nquota_concurrent_calls = 4\n"
    conf.write_text(on)
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--config", str(conf), "--auth", "true", "--spot-permille", "0", "--receipt-allowance", "0"))
    stubs_dir = os.path.dirname(vpb.__file__)
    try:
        assert wait_until(lambda: chain_height(gw, stubs) >= r.height, timeout=30)
        gw.stub.CreateCollection(vpb.CreateCollectionRequest(name="f", dimension=D, metric=tpb.L2, fragments=1,
                                                             replication=1), timeout=90, metadata=bearer(kg))
        base = np.random.default_rng(1).normal(size=(1000, D)).astype(np.float32)
        gw.stub.Insert(vpb.InsertRequest(collection="f", vectors=[tpb.Vector(values=list(map(float, v)))
                                                                  for v in base], consistency_level=tpb.ALL),
                       timeout=60, metadata=bearer(kg))
        # the flooder may read the collection (SetAccess by its owner)
        r = net.submit(signed_tx(lpb, CHAIN, good, set_access=lpb.SetAccess(magu="f", readers=[bad.pk])))
        assert wait_until(lambda: chain_height(gw, stubs) >= r.height, timeout=30)
        qs = np.random.default_rng(2).normal(size=(n, D)).astype(np.float32)
        load0 = open("/proc/loadavg").read().split()[:3]
        idle = good_round(gw.stub, vpb, tpb, kg, qs, rate)

        fl = Flood(gw.server.target, kb, threads, stubs_dir)
        quota = good_round(gw.stub, vpb, tpb, kg, qs, rate)
        f_quota = fl.stop()

        conf.write_text("quota_requests_per_second = 0\nquota_concurrent_calls = 0\n")
        k = gw.server.read_log().count("gw_quota_reload")
        gw.server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: gw.server.read_log().count("gw_quota_reload") > k, timeout=10)
        fl = Flood(gw.server.target, kb, threads, stubs_dir)
        noquota = good_round(gw.stub, vpb, tpb, kg, qs, rate)
        f_noquota = fl.stop()
        load1 = open("/proc/loadavg").read().split()[:3]

        print(f"\nwell-behaved account: {n} sequential searches at {rate:g}/s, top 10 of 1,000 x {D}-d at ONE")
        print(f"flooder: {threads} threads back to back; quotas: {rps:g} requests/s (burst {rps:g}), "
              f"4 calls in flight, per account")
        print(f"{'phase':28s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 x':>6s} {'p99 x':>6s}  flooder served/s refused/s")
        print(f"{'idle gateway':28s} {idle[0]:8.2f} {idle[1]:8.2f} {1:6.2f} {1:6.2f}")
        for name, (p50, p99, ref), (sv, rf, other) in (("flood, quotas on", quota, f_quota),
                                                         ("flood, quotas lifted", noquota, f_noquota)):
            print(f"{name:28s} {p50:8.2f} {p99:8.2f} {p50 / idle[0]:6.2f} {p99 / idle[1]:6.2f}  "
                  f"{sv:9.1f} {rf:9.1f}" + (f"  (other errors {other})" if other else "") +
                  (f"  (well-behaved refused {ref})" if ref else ""))
        print(f"load average before: {' '.join(load0)}  after: {' '.join(load1)}  ({os.cpu_count()} cores)")
        assert idle[2] == 0 and quota[2] == 0, "the well-behaved account was refused"
        assert f_quota[0] <= rps * 1.5 + 10, f"the flooder was served {f_quota[0]:.1f}/s over a quota of {rps:g}"
    finally:
        gw.close()
        net.close()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--flood":
    flood_main(sys.argv[2:])
