"""Search receipts end to end: a gateway over a ChainNet (4 ledger replicas, 3
indexers) with the owner account as its payer. Searches through the gateway
leave receipts that the gateway settles on the ledger in batches (Settle,
signed by its node key, against the payer's Approve): the payer pays exactly
search_fee per query vector, the nodes that answered are paid in the
ledger's rank split (rank j weighs 1/(j+1), rounding to rank 0), GetReceipts
lists the receipts with the gateway as sender, and the gateway's /metrics
show each node's rank and receipts. A payer that cannot pay leaves searches
answering and receipts counted unsettled; a lying indexer earns less than
the honest ones."""
import os
import subprocess
import urllib.request

import numpy as np
import pytest

from chain_util import CHAIN, ChainNet
from gateway_util import Gateway
from ledger_util import signed_tx
from muri_util import wait_until
from sodium_keys import key_file_public

FEE = 7          # search_fee
D = 8
SPLIT_SCALE = 720720


def metrics(gw):
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.server.metrics_port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metric(gw, name, **labels):
    key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    return metrics(gw).get(key, 0.0)


def split(fee, n):
    """The ledger's split of a receipt's fee over n ranked nodes (lg_st_settle.c)."""
    w = [SPLIT_SCALE // (j + 1) for j in range(n)]
    total = sum(w)
    share = [0] + [(fee // total) * w[j] + (fee % total) * w[j] // total for j in range(1, n)]
    share[0] = fee - sum(share[1:])
    return share


def all_receipts(net, **who):
    pb = net.pb
    out, token = [], b""
    while True:
        r = net.lstubs[0].GetReceipts(pb.ReceiptsRequest(limit=1000, page_token=token, **who), timeout=10)
        out.extend(r.receipts)
        token = r.next_page_token
        if not token:
            return out


def account(net, pk):
    return net.lstubs[0].GetAccount(net.pb.AccountRequest(address=pk), timeout=10)


def earned(net, pk):
    return net.lstubs[0].GetEarnings(net.pb.EarningsRequest(node=pk), timeout=10).total_earned


def setup_collection(gw, stubs, name, fragments, replication, n=200, seed=1):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    gw.stub.CreateCollection(vpb.CreateCollectionRequest(
        name=name, dimension=D, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=fragments,
        replication=replication), timeout=90)
    base = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)
    r = gw.stub.Insert(vpb.InsertRequest(collection=name, vectors=[tpb.Vector(values=list(map(float, v)))
                                                                   for v in base],
                                         consistency_level=tpb.ALL), timeout=60)
    assert len(r.vector_ids) == n
    return base


def queries(n, seed):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def test_receipts_settle_and_pay_ranked_nodes(servers, stubs, tmp_path):
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path, params={"search_fee": FEE})
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--default-timeout-ms", "20000", "--spot-permille", "0", "--receipt-batch", "4",
        "--receipt-flush-ms", "300", "--receipt-allowance", "100000", "--receipt-fee-float", "500"))
    try:
        gw_pk = key_file_public(str(tmp_path / "gateway.key"))
        setup_collection(gw, stubs, "paid", fragments=2, replication=2)
        members = set(net.lstubs[0].GetMagu(lpb.MaguRequest(name="paid"), timeout=10).members)
        # at start the payer approved the gateway's key and funded its account for Settle fees
        assert wait_until(lambda: metric(gw, "muri_gateway_receipt_approves_total") >= 1 and
                          metric(gw, "muri_gateway_receipt_topups_total") >= 1, timeout=30), metrics(gw)
        assert account(net, gw_pk).balance >= 500
        payer0 = account(net, net.owner.pk)
        earned0 = {a.pk: earned(net, a.pk) for a in net.ixacc}

        # 5 Searches and 2 SearchBatches of 3 queries: 7 receipts, 11 query vectors
        for i, q in enumerate(queries(5, 2)):
            r = gw.stub.Search(vpb.SearchRequest(collection="paid", query_vector=tpb.Vector(values=list(map(float, q))),
                                                 top_k=5, consistency_level=tpb.ALL), timeout=30)
            assert len(r.results) == 5
        for s in (3, 4):
            r = gw.stub.SearchBatch(vpb.SearchBatchRequest(
                collection="paid", query_vectors=[tpb.Vector(values=list(map(float, q))) for q in queries(3, s)],
                top_k=5, consistency_level=tpb.ALL), timeout=30)
            assert len(r.results) == 3

        assert wait_until(lambda: len(all_receipts(net, gateway=gw_pk)) >= 7, timeout=60), metrics(gw)
        got = all_receipts(net, gateway=gw_pk)
        assert len(got) == 7
        assert sorted(x.fee for x in got) == [FEE] * 5 + [3 * FEE] * 2
        paid = {}
        for x in got:
            assert x.searcher == net.owner.pk and x.gateway == gw_pk and x.magu == "paid"
            nodes = [p.node for p in x.payouts]
            assert nodes and len(set(nodes)) == len(nodes) and set(nodes) <= members, nodes
            # the ledger's split over the ranks the gateway gave (every node is paid here: fee >= 7)
            assert [p.amount for p in x.payouts] == split(x.fee, len(nodes))
            for p in x.payouts:
                paid[p.node] = paid.get(p.node, 0) + p.amount
        assert sum(paid.values()) == FEE * 11
        # the same receipts by searcher; each node's earnings rose by what it was paid
        assert {x.id for x in all_receipts(net, searcher=net.owner.pk)} == {x.id for x in got}
        for a in net.ixacc:
            assert earned(net, a.pk) - earned0[a.pk] == paid.get(a.pk, 0), a.pk.hex()
        # the payer paid exactly the fees: no transaction of its own in between
        payer1 = account(net, net.owner.pk)
        assert payer1.nonce == payer0.nonce
        assert payer0.balance - payer1.balance == FEE * 11

        # metrics: settled receipts, Settles in batches of at most 4, each node's rank and receipts
        # (the gateway counts a Settle once its own replica reported the commit)
        assert wait_until(lambda: metric(gw, "muri_gateway_receipts_settled_total") == 7, timeout=30), metrics(gw)
        m = metrics(gw)
        assert m["muri_gateway_receipts_settled_total"] == 7
        assert m["muri_gateway_receipt_fees_total"] == FEE * 11
        assert m["muri_gateway_settles_total"] >= 2
        # every node a receipt paid has its standing in the rank table shown (set at most once a second)
        assert wait_until(lambda: all(f'muri_gateway_node_rank_score{{node="{pk.hex()}"}}' in metrics(gw)
                                      for pk in paid), timeout=30), (list(paid), metrics(gw))
        m = metrics(gw)
        for pk in paid:
            node = pk.hex()
            assert 0 < m[f'muri_gateway_node_rank_share{{node="{node}"}}'] <= 1
            assert m[f'muri_gateway_node_rank_latency_ms{{node="{node}"}}'] >= 0
            assert f'muri_gateway_node_rank_score{{node="{node}"}}' in m
        assert sum(v for k, v in m.items() if k.startswith("muri_gateway_node_receipts_total{")) == \
            sum(len(x.payouts) for x in got)
        assert sum(v for k, v in m.items() if k.startswith("muri_gateway_node_receipts_first_total{")) == 7

        # the payer cannot pay any more: searches still answer, receipts are counted unsettled
        net.owner.nonce = payer1.nonce
        left = 3  # below one receipt's fee
        net.submit(signed_tx(lpb, CHAIN, net.owner, fee=1,
                             transfer=lpb.Transfer(to=net.ixacc[0].pk, amount=payer1.balance - 1 - left)))
        for q in queries(2, 9):
            r = gw.stub.Search(vpb.SearchRequest(collection="paid", query_vector=tpb.Vector(values=list(map(float, q))),
                                                 top_k=5, consistency_level=tpb.ALL), timeout=30)
            assert len(r.results) == 5
        assert wait_until(lambda: metric(gw, "muri_gateway_receipts_unsettled_total", reason="balance") == 2,
                          timeout=60), metrics(gw)
        assert account(net, net.owner.pk).balance == left
        assert len(all_receipts(net, gateway=gw_pk)) == 7
        assert "settle.receipts[0].fee: searcher" in gw.server.read_log()
    finally:
        gw.close()
        net.close()


def test_receipts_pay_a_liar_less(servers, stubs, tmp_path):
    """One indexer of a fragment's three lies in its answers (test_lie =
    fabricate): searched at ALL, it is caught and earns less than each
    honest replica, and its rank share in the metrics is the lowest."""
    from test_indexer import EXE
    if "--test-lie" not in subprocess.run([os.path.join(os.environ["MURI_BUILD_ROOT"], EXE), "--help"],
                                          capture_output=True, text=True).stdout:
        pytest.skip("the indexer's test_lie needs a build with -Dtest_faults=true")
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path, params={"search_fee": FEE})
    liar = net.indexers[2]
    liar.server.stop()
    liar.server = servers("ix2-liar", liar.server.cmd[0], *liar.server.cmd[7:], "--test-lie", "fabricate")
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--default-timeout-ms", "20000", "--spot-permille", "0", "--receipt-batch", "10",
        "--receipt-flush-ms", "300"))
    try:
        gw_pk = key_file_public(str(tmp_path / "gateway.key"))
        setup_collection(gw, stubs, "byz", fragments=1, replication=3)
        n = 20
        for q in queries(n, 5):
            r = gw.stub.Search(vpb.SearchRequest(collection="byz", query_vector=tpb.Vector(values=list(map(float, q))),
                                                 top_k=5, consistency_level=tpb.ALL), timeout=30)
            assert len(r.results) == 5
        assert wait_until(lambda: len(all_receipts(net, gateway=gw_pk)) >= n, timeout=60), metrics(gw)
        got = all_receipts(net, gateway=gw_pk)
        assert len(got) == n
        liar_pk, honest = net.ixacc[2].pk, [a.pk for a in net.ixacc[:2]]
        e = {pk: earned(net, pk) for pk in [liar_pk] + honest}
        print(f"\nearned over {n} receipts of {FEE}: liar {e[liar_pk]}, honest {[e[h] for h in honest]}")
        assert all(e[liar_pk] < e[h] for h in honest), e
        assert sum(e.values()) == FEE * n
        first = [x.payouts[0].node for x in got]
        assert liar_pk not in first
        # the rank gauges are set at most once a second (by a search or the receipts thread)
        share = {}

        def ranked_lowest():
            m = metrics(gw)
            share.update({pk: m.get(f'muri_gateway_node_rank_share{{node="{pk.hex()}"}}', -1)
                          for pk in [liar_pk] + honest})
            return all(0 <= share[liar_pk] < share[h] for h in honest)
        assert wait_until(ranked_lowest, timeout=30), share
        assert metric(gw, "muri_gateway_node_lies_total", node=liar_pk.hex()) > 0
    finally:
        gw.close()
        net.close()


def test_receipts_off_or_unpaid(servers, stubs, tmp_path):
    """receipt_allowance 0 turns receipts off: searches answer, nothing is
    approved or settled, and the log says why. A second gateway whose node
    account has no money for a Settle's fee (receipt_fee_float 0: the payer
    does not fund it) answers its searches too and counts the receipts
    unsettled (reason gas)."""
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path, n_indexers=2)
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "20000", "--receipt-allowance", "0"))
    gw2 = Gateway(servers, stubs, net, tmp_path, name="gw2", args=(
        "--default-timeout-ms", "20000", "--receipt-fee-float", "0", "--receipt-flush-ms", "200"))
    try:
        setup_collection(gw, stubs, "free", fragments=1, replication=2, n=50)
        for q in queries(3, 1):
            r = gw.stub.Search(vpb.SearchRequest(collection="free", query_vector=tpb.Vector(values=list(map(float, q))),
                                                 top_k=3), timeout=30)
            assert len(r.results) == 3
        m = metrics(gw)
        assert "muri_gateway_receipts_queued_total" not in m
        assert any(k.startswith("muri_gateway_node_rank_share{") for k in m)  # ranks are shown regardless
        assert 'enabled=no reason="receipt_allowance is 0"' in gw.server.read_log()

        assert wait_until(lambda: metric(gw2, "muri_gateway_receipt_approves_total") == 1, timeout=30)
        assert wait_until(lambda: gw2.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10).collections,
                          timeout=30)
        for q in queries(2, 2):
            r = gw2.stub.Search(vpb.SearchRequest(collection="free", query_vector=tpb.Vector(values=list(map(float, q))),
                                                  top_k=3), timeout=30)
            assert len(r.results) == 3
        assert wait_until(lambda: metric(gw2, "muri_gateway_receipts_unsettled_total", reason="gas") == 2,
                          timeout=30), metrics(gw2)
        assert metric(gw2, "muri_gateway_receipts_settled_total") == 0
        assert "receipt_fee_float is 0" in gw2.server.read_log()
        assert all_receipts(net, searcher=net.owner.pk) == []
    finally:
        gw.close()
        gw2.close()
        net.close()


def test_receipts_leave_out_a_node_that_left(servers, stubs, tmp_path):
    """Receipts wait in the queue (a batch of 6, no timed flush) while a
    backup replica unstakes and so leaves the Magu (a spare takes its seat):
    the Settle that follows pays the remaining members only, so every
    receipt settles and the departed node earns nothing for them."""
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path, params={"search_fee": FEE})
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--default-timeout-ms", "20000", "--spot-permille", "0", "--receipt-batch", "6",
        "--receipt-flush-ms", "600000"))
    try:
        gw_pk = key_file_public(str(tmp_path / "gateway.key"))
        setup_collection(gw, stubs, "moving", fragments=1, replication=2)
        d = gw.stub.DescribeCollection(vpb.DescribeCollectionRequest(name="moving"), timeout=30)
        fs = d.fragment_states[0]
        backup_hex = next(k for k, a in zip(fs.replica_keys, fs.replicas) if a != fs.primary)
        leaver = next(a for a in net.ixacc if a.pk.hex() == backup_hex)
        for q in queries(5, 11):  # at ALL: both replicas answer and are ranked
            gw.stub.Search(vpb.SearchRequest(collection="moving", query_vector=tpb.Vector(values=list(map(float, q))),
                                             top_k=5, consistency_level=tpb.ALL), timeout=30)
        assert metric(gw, "muri_gateway_node_receipts_total", node=backup_hex) == 5
        assert metric(gw, "muri_gateway_receipts_waiting") == 5
        earned0 = earned(net, leaver.pk)

        leaver.nonce = account(net, leaver.pk).nonce
        net.submit(signed_tx(lpb, CHAIN, leaver, fee=1, unstake=lpb.Unstake(amount=5000)))

        def gone():
            s = gw.stub.DescribeCollection(vpb.DescribeCollectionRequest(name="moving"), timeout=30).fragment_states[0]
            return backup_hex not in s.replica_keys
        # the spare fetches the log and votes its first root before the
        # leaver is removed (lg_st_handover.c): seconds, several times that
        # in the sanitizer build on a busy machine
        assert wait_until(gone, timeout=120), "the gateway never saw the node leave"
        assert leaver.pk not in net.lstubs[0].GetMagu(lpb.MaguRequest(name="moving"), timeout=10).members
        # the sixth search fills the batch: the Settle goes out now
        gw.stub.Search(vpb.SearchRequest(collection="moving", query_vector=tpb.Vector(values=[0.5] * D),
                                         top_k=5, consistency_level=tpb.ONE), timeout=30)
        assert wait_until(lambda: len(all_receipts(net, gateway=gw_pk)) >= 6, timeout=60), metrics(gw)
        got = all_receipts(net, gateway=gw_pk)
        assert len(got) == 6 and sum(x.fee for x in got) == 6 * FEE
        assert all(leaver.pk not in [p.node for p in x.payouts] for x in got)
        assert earned(net, leaver.pk) == earned0
        assert metric(gw, "muri_gateway_receipts_unsettled_total", reason="no_members") == 0
        assert "event=gw_receipt_nodes_left dropped=5 " in gw.server.read_log()
    finally:
        gw.close()
        net.close()


def pid_of(data_dir):
    """The pid of the process started with data_dir on its command line (this test's own)."""
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if str(data_dir).encode() in f.read().split(b"\0"):
                        return int(p)
            except OSError:
                pass
    raise AssertionError(f"no process for {data_dir}")


def test_receipts_wait_out_a_ledger_outage(servers, stubs, tmp_path):
    """Two of the four ledger replicas stop (SIGSTOP: no quorum, nothing
    commits) while searches go on: every search answers, the receipts wait,
    and once the replicas run again every receipt settles exactly once."""
    import signal
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path, params={"search_fee": FEE})
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--default-timeout-ms", "20000", "--spot-permille", "0", "--receipt-batch", "2",
        "--receipt-flush-ms", "300"))
    stopped = []
    try:
        gw_pk = key_file_public(str(tmp_path / "gateway.key"))
        setup_collection(gw, stubs, "outage", fragments=1, replication=2, n=100)
        assert wait_until(lambda: metric(gw, "muri_gateway_receipt_topups_total") >= 1, timeout=30)
        payer0 = account(net, net.owner.pk).balance
        stopped = [pid_of(tmp_path / f"ledger{i}-data") for i in (2, 3)]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        for q in queries(6, 21):
            r = gw.stub.Search(vpb.SearchRequest(collection="outage", query_vector=tpb.Vector(values=list(map(float, q))),
                                                 top_k=5, consistency_level=tpb.ONE), timeout=30)
            assert len(r.results) == 5
        # nothing can commit: the receipts wait in the gateway
        assert metric(gw, "muri_gateway_receipts_settled_total") == 0
        assert metric(gw, "muri_gateway_receipts_queued_total") == 6
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        stopped = []
        assert wait_until(lambda: len(all_receipts(net, gateway=gw_pk)) >= 6, timeout=120), metrics(gw)
        assert wait_until(lambda: metric(gw, "muri_gateway_receipts_settled_total") == 6, timeout=60), metrics(gw)
        got = all_receipts(net, gateway=gw_pk)
        assert len(got) == 6 and len({x.id for x in got}) == 6
        assert payer0 - account(net, net.owner.pk).balance == 6 * FEE
        assert sum(v for k, v in metrics(gw).items() if k.startswith("muri_gateway_receipts_unsettled_total")) == 0
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        gw.close()
        net.close()
