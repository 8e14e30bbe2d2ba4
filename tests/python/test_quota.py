"""Per-account quotas at the gateway, end to end over a ChainNet (4 ledger
replicas, 3 indexers): with auth on, an account over its requests per
second gets RESOURCE_EXHAUSTED naming it, the limit and the wait (also in a
retry-after-ms trailer) while another account is served; a write over the
vectors-per-second limit writes nothing; a second account is not held up by
the first's calls in flight; the request-size and queries x top_k caps name
their fields; every limit here is set by rewriting the gateway's config
file and sending SIGHUP to the running gateway (an invalid file keeps the
limits it had). With auth off every caller shares the anonymous account."""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from chain_util import CHAIN, ChainNet
from gateway_util import Gateway
from ledger_util import Account, signed_tx
from muri_util import wait_until
from test_auth import bearer, chain_height, key_hash, new_key

D = 4
LOOSE = {"quota_requests_per_second": 1000, "quota_requests_burst": 1000, "quota_vectors_per_second": 100000,
         "quota_vectors_burst": 100000, "quota_concurrent_calls": 1000, "quota_request_bytes": 0,
         "quota_top_k_batch": 0}


def vec(tpb, x):
    return tpb.Vector(values=[float(x)] * D)


def refusal(fn):
    """(code, details, trailing metadata as a dict) of a call that fails."""
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details(), dict(e.value.trailing_metadata() or ())


def until_refused(fn, most=60):
    """Calls fn until it fails (at most `most` times): (calls served, seconds taken, code, details,
    trailing metadata). A loaded machine may refill a bucket between calls, so a test asserts
    that a refusal came, and no more calls were served than the bucket and its refill allow."""
    t0 = time.monotonic()
    for served in range(most):
        try:
            fn()
        except grpc.RpcError as e:
            return (served, time.monotonic() - t0, e.code(), e.details(),
                    dict(e.trailing_metadata() or ()))
    pytest.fail(f"{most} calls in a row were served")


class Quotas:
    """The gateway's config file: writes quota keys and sends SIGHUP."""

    def __init__(self, path):
        self.path = path
        self.write(LOOSE)

    def write(self, keys):
        with open(self.path, "w") as f:
            f.write("# quotas of the test gateway\n")
            for k, v in keys.items():
                f.write(f"{k} = {v}\n")

    def reload(self, gw, keys, expect_log=True):
        n = gw.server.read_log().count("gw_quota_reload")
        self.write(keys)
        gw.server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: gw.server.read_log().count("gw_quota_reload") > n, timeout=10), \
            gw.server.read_log()[-2000:]


def test_quotas(servers, stubs, tmp_path):
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path)
    alice, bob = Account(), Account()
    ka, kb = new_key(), new_key()
    for who, k in ((alice, ka), (bob, kb)):
        net.submit(signed_tx(lpb, CHAIN, net.owner, transfer=lpb.Transfer(to=who.pk, amount=100_000)))
        r = net.submit(signed_tx(lpb, CHAIN, who, create_api_key=lpb.CreateApiKey(
            key_hash=key_hash(k), scope=lpb.SCOPE_ADMIN)))
    q = Quotas(str(tmp_path / "gateway.conf"))
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--config", q.path, "--auth", "true", "--spot-permille", "0", "--receipt-allowance", "0"))
    A, B = bearer(ka), bearer(kb)
    try:
        assert wait_until(lambda: chain_height(gw, stubs) >= r.height, timeout=30)  # the gateway knows the keys
        for name, md in (("qa", A), ("qb", B)):
            gw.stub.CreateCollection(vpb.CreateCollectionRequest(name=name, dimension=D, metric=tpb.L2,
                                                                 fragments=1, replication=1),
                                     timeout=90, metadata=md)
            gw.stub.Insert(vpb.InsertRequest(collection=name, vectors=[vec(tpb, i) for i in range(10)],
                                             consistency_level=tpb.ALL), timeout=30, metadata=md)

        def count(name, md):
            return gw.stub.DescribeCollection(vpb.DescribeCollectionRequest(name=name), timeout=10,
                                              metadata=md).vector_count

        # requests per second: alice's burst of 3 passes, the 4th is refused with the wait; bob is served
        q.reload(gw, {**LOOSE, "quota_requests_per_second": 3, "quota_requests_burst": 3})
        served, took, code, msg, trail = until_refused(lambda: count("qa", A))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, msg
        assert 3 <= served <= 3 + 3 * took + 1, (served, took)
        assert f"account {alice.pk.hex()} over quota_requests_per_second=3: retry in " in msg, msg
        wait = int(msg.rsplit("retry in ", 1)[1].split(" ms")[0])
        assert 1 <= wait <= 334, msg
        assert trail.get("retry-after-ms") == str(wait), trail
        assert count("qb", B) == 10  # another account, its own bucket
        time.sleep(wait / 1000 + 0.01)
        assert count("qa", A) == 10  # after the wait it names, alice is served again

        # an invalid config file on SIGHUP keeps the limits in force, and says why
        n = gw.server.read_log().count("result=kept")
        q.write({"quota_requests_per_second": "lots"})
        gw.server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: gw.server.read_log().count("result=kept") > n, timeout=10)
        assert "quota_requests_per_second" in gw.server.read_log().split("result=kept")[-1][:300]
        time.sleep(1.1)
        served, took, code, msg, _ = until_refused(lambda: count("qa", A))
        assert "quota_requests_per_second=3:" in msg and 3 <= served <= 3 + 3 * took + 1, (msg, served, took)

        # vectors per second: a write past the bucket writes nothing and names the wait
        q.reload(gw, {**LOOSE, "quota_vectors_per_second": 1, "quota_vectors_burst": 10})  # refill: 3 s for 3
        gw.stub.Insert(vpb.InsertRequest(collection="qa", vectors=[vec(tpb, 20 + i) for i in range(8)],
                                         consistency_level=tpb.ALL), timeout=30, metadata=A)
        code, msg, trail = refusal(lambda: gw.stub.Insert(vpb.InsertRequest(
            collection="qa", vectors=[vec(tpb, 30 + i) for i in range(5)], consistency_level=tpb.ALL),
            timeout=30, metadata=A))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, msg
        assert f"account {alice.pk.hex()} over quota_vectors_per_second=1 (" in msg and "nothing was written" in msg
        assert "vectors: 5" in msg and int(trail["retry-after-ms"]) >= 1, (msg, trail)
        code, msg, trail = refusal(lambda: gw.stub.Insert(vpb.InsertRequest(
            collection="qa", vectors=[vec(tpb, 40 + i) for i in range(11)], consistency_level=tpb.ALL),
            timeout=30, metadata=A))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "vectors: 11 in one write" in msg, msg
        assert "quota_vectors_burst=10" in msg and "retry-after-ms" not in trail, msg
        assert count("qa", A) == 18
        gw.stub.Insert(vpb.InsertRequest(collection="qb", vectors=[vec(tpb, 50 + i) for i in range(10)],
                                         consistency_level=tpb.ALL), timeout=30, metadata=B)
        assert count("qb", B) == 20

        # calls in flight: alice's parallel searches past 2 are refused; bob's still pass
        q.reload(gw, {**LOOSE, "quota_concurrent_calls": 2})
        big = vpb.SearchBatchRequest(collection="qa", query_vectors=[vec(tpb, i % 7) for i in range(1000)],
                                     top_k=10)
        refused = served = 0
        with ThreadPoolExecutor(12) as pool:
            for _ in range(5):
                futs = [gw.stub.SearchBatch.future(big, timeout=60, metadata=A) for _ in range(12)]
                bob_res = pool.submit(lambda: gw.stub.Search(vpb.SearchRequest(
                    collection="qb", query_vector=vec(tpb, 1), top_k=2), timeout=30, metadata=B))
                for f in futs:
                    try:
                        f.result()
                        served += 1
                    except grpc.RpcError as e:
                        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.details()
                        assert f"account {alice.pk.hex()} over quota_concurrent_calls=2" in e.details(), e.details()
                        refused += 1
                assert len(bob_res.result().results) == 2
                if refused:
                    break
        assert refused > 0 and served >= 2, (refused, served)

        # per-request caps name the fields
        q.reload(gw, {**LOOSE, "quota_top_k_batch": 50, "quota_request_bytes": 2000})
        code, msg, trail = refusal(lambda: gw.stub.SearchBatch(vpb.SearchBatchRequest(
            collection="qa", query_vectors=[vec(tpb, i) for i in range(6)], top_k=10), timeout=30, metadata=A))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, msg
        assert "query_vectors x top_k is 60, over quota_top_k_batch=50" in msg and not trail.get("retry-after-ms")
        assert len(gw.stub.SearchBatch(vpb.SearchBatchRequest(
            collection="qa", query_vectors=[vec(tpb, i) for i in range(5)], top_k=10), timeout=30,
            metadata=A).results) == 5
        code, msg, _ = refusal(lambda: gw.stub.Insert(vpb.InsertRequest(
            collection="qa", vectors=[vec(tpb, 60 + i) for i in range(200)], consistency_level=tpb.ALL),
            timeout=30, metadata=A))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "over quota_request_bytes=2000" in msg, msg
        assert count("qa", A) == 18

        # lifted again by SIGHUP: the same insert passes
        q.reload(gw, LOOSE)
        gw.stub.Insert(vpb.InsertRequest(collection="qa", vectors=[vec(tpb, 60 + i) for i in range(200)],
                                         consistency_level=tpb.ALL), timeout=30, metadata=A)
        assert count("qa", A) == 218
    finally:
        gw.close()


def test_quota_anonymous_shared(servers, stubs, tmp_path):
    """With auth off every caller is the anonymous account: two clients share one bucket."""
    vpb = stubs.vectorstore_pb2
    net = ChainNet(servers, stubs, tmp_path, n_ledger=1, n_indexers=1)
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--spot-permille", "0", "--quota-requests-per-second", "2", "--quota-requests-burst", "3"))
    other = grpc.insecure_channel(gw.server.target)
    stub2 = stubs.vectorstore_pb2_grpc.VectorStoreStub(other)
    try:
        t0 = time.monotonic()
        for _ in range(3):
            gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10)
        served, took, code, msg, trail = until_refused(
            lambda: stub2.ListCollections(vpb.ListCollectionsRequest(), timeout=10))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, msg
        assert served <= 2 * (time.monotonic() - t0) + 1, (served, took)  # only what refilled
        assert "account anonymous over quota_requests_per_second=2: retry in " in msg, msg
        assert 1 <= int(trail["retry-after-ms"]) <= 500, trail
        # the refusal is counted by limit
        from conftest import scrape_metrics
        assert 'muri_gateway_quota_refused_total{limit="requests_per_second"} 1' in scrape_metrics(gw.server)
    finally:
        other.close()
        gw.close()
