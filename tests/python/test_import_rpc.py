"""The gateway's Import RPC from a grpcio client, against a devnet (`muri
devnet up`: every process over TLS, the client verifies with the devnet's
CA): glove-100-angular-10k read by the gateway from a local HTTP server in
Range requests, batch by batch, with progress on the stream and a summary;
the count and the recall of searches against the ground truth; an import
cancelled halfway and called again resumes with no duplicates and no loss,
under the ids `muri import` gives the same rows; jsonl rows with metadata;
bad requests answered with the field they got wrong; `muri import
--server-side` on the same RPC, and the command's own import of the same
file landing on the same ids."""
import json
import os
import subprocess

import grpc
import numpy as np
import pytest

from test_cli import GLOVE, MURI, RangeServer, muri, row_id


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("imp") / "devnet"
    try:  # stopped whatever happens, a failed `up` included
        muri("devnet", "up", "--dir", d, timeout=180)
        port = [ln.split("=")[1] for ln in (d / "gateway" / "ports").read_text().split()
                if ln.startswith("rpc_port=")][0]
        # the devnet's gateway runs with auth: its admin API key goes with every call
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials((d / "tls" / "ca.pem").read_bytes()),
            grpc.access_token_call_credentials((d / "admin.apikey").read_text().strip()))
        ch = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.max_receive_message_length", 64 << 20)])
        srv = RangeServer(GLOVE)
        yield d, ch, srv
        srv.close()
        ch.close()
    finally:
        subprocess.run([MURI, "devnet", "down", "--dir", str(d), "--grace", "20"], capture_output=True, timeout=120)


def stub(ch, stubs):
    return stubs.vectorstore_pb2_grpc.VectorStoreStub(ch)


def count(d, name):
    return json.loads(muri("collection", "describe", name, "--dir", d, "--json").stdout)["vectors"]


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:]


def test_import_over_http_count_and_recall(net, stubs):
    d, ch, srv = net
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    muri("collection", "create", "glove", "--dim", 100, "--metric", "cosine", "--fragments", 2, "--dir", d)
    msgs = list(stub(ch, stubs).Import(vpb.ImportRequest(collection="glove", source=srv.url("base.fvecs"),
                                                         batch_size=1000, consistency_level=tpb.QUORUM), timeout=300))
    # one progress message per batch, then the summary
    assert [m.imported for m in msgs[:-1]] == list(range(1000, 10001, 1000))
    assert all(m.total == 10000 for m in msgs)
    last = msgs[-1]
    assert last.imported == 10000 and last.HasField("summary") and last.summary.status == vpb.SUCCESS
    assert "imported 10000 rows into glove" in last.summary.message
    assert not any(m.HasField("summary") for m in msgs[:-1])
    assert len(srv.ranges) >= 2  # read in Range requests, not in one body
    assert count(d, "glove") == 10000
    # searches: recall@10 against the ground truth, the ids those `muri import` gives the rows
    q = fvecs(os.path.join(GLOVE, "query.fvecs")).view(np.float32)[:100]
    gt = fvecs(os.path.join(GLOVE, "groundtruth.ivecs"))[:100, :10]
    r = stub(ch, stubs).SearchBatch(vpb.SearchBatchRequest(
        collection="glove", query_vectors=[tpb.Vector(values=v.tolist()) for v in q], top_k=10,
        consistency_level=tpb.QUORUM, timeout_ms=100000), timeout=120)
    hits = 0
    for res, truth in zip(r.results, gt):
        want = {row_id("glove", "base.fvecs", int(t)) for t in truth}
        hits += len(want & {h.id for h in res.results})
    recall = hits / (100 * 10)
    print(f"Import RPC, glove-100-angular-10k: recall@10 {recall:.3f} over 100 queries")
    assert recall >= 0.9, recall


def test_import_cancelled_then_resumed(net, stubs):
    d, ch, srv = net
    vpb = stubs.vectorstore_pb2
    muri("collection", "create", "again", "--dim", 100, "--metric", "cosine", "--fragments", 2, "--dir", d)
    req = vpb.ImportRequest(collection="again", source=srv.url("base.fvecs"), format=vpb.FVECS, batch_size=250)
    srv.delay = 0.02
    call = stub(ch, stubs).Import(req, timeout=300)
    seen = 0
    for m in call:
        seen = m.imported
        if seen >= 3000:
            call.cancel()
            break
    assert 3000 <= seen < 10000
    srv.delay = 0.0
    msgs = list(stub(ch, stubs).Import(req, timeout=300))
    # resumed after a batch the first call finished (at or after the last it reported)
    first, last = msgs[0], msgs[-1]
    assert seen + 250 <= first.imported <= 10000 and first.imported % 250 == 0, (seen, first.imported)
    assert last.summary.status == vpb.SUCCESS and "resumed after row" in last.summary.message, last.summary.message
    resumed_at = int(last.summary.message.rsplit("resumed after row ", 1)[1].split()[0])
    assert resumed_at >= seen
    # no duplicates, no loss: exactly the file's rows, under their rows' ids
    assert count(d, "again") == 10000
    ids = [row_id("again", "base.fvecs", r) for r in (0, resumed_at - 1, resumed_at, 9999)]
    got = stub(ch, stubs).Get(vpb.GetRequest(collection="again", ids=ids, include_vectors=True), timeout=60)
    by_id = {r.id: r for r in got.records}
    assert set(by_id) == set(ids)
    base = fvecs(os.path.join(GLOVE, "base.fvecs")).view(np.float32)
    assert np.allclose(by_id[ids[-1]].vector.values, base[9999], atol=1e-6)
    # a third call starts over (the import completed) and rewrites the same ids: still 10000
    srv.delay = 0.0
    msgs = list(stub(ch, stubs).Import(req, timeout=300))
    assert msgs[0].imported == 250 and "resumed" not in msgs[-1].summary.message
    assert count(d, "again") == 10000


def test_import_jsonl_with_metadata(net, stubs, tmp_path):
    d, ch, srv = net
    vpb = stubs.vectorstore_pb2
    muri("collection", "create", "small", "--dim", 4, "--metric", "l2", "--fragments", 1, "--dir", d)
    rows = [{"vector": [float(i), 1.0, 2.0, 3.0], "metadata": {"n": i, "odd": i % 2 == 1}} for i in range(30)]
    rows[5] = [5.0, 1.0, 2.0, 3.0]  # a bare array: no metadata
    srv2 = RangeServer(str(tmp_path))
    try:
        (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        msgs = list(stub(ch, stubs).Import(vpb.ImportRequest(collection="small", source=srv2.url("rows.jsonl"),
                                                             batch_size=7), timeout=120))
    finally:
        srv2.close()
    assert [m.imported for m in msgs] == [7, 14, 21, 28, 30, 30] and all(m.total == 0 for m in msgs[:-1])
    assert count(d, "small") == 30
    got = stub(ch, stubs).Get(vpb.GetRequest(collection="small", ids=[row_id("small", "rows.jsonl", 7),
                                                                      row_id("small", "rows.jsonl", 5)]), timeout=60)
    meta = {r.id: dict(r.metadata.fields) for r in got.records}
    m7 = meta[row_id("small", "rows.jsonl", 7)]
    assert m7["n"].int_value == 7 and m7["odd"].bool_value is True
    assert meta[row_id("small", "rows.jsonl", 5)] == {}


def test_import_bad_requests(net, stubs):
    d, ch, srv = net
    vpb = stubs.vectorstore_pb2
    s = stub(ch, stubs)
    muri("collection", "create", "bad", "--dim", 8, "--metric", "l2", "--fragments", 1, "--dir", d)

    def fails(code, words, **kw):
        req = dict(collection="bad", source=srv.url("base.fvecs"))
        req.update(kw)
        with pytest.raises(grpc.RpcError) as e:
            list(s.Import(vpb.ImportRequest(**req), timeout=60))
        assert e.value.code() == code, (e.value.code(), e.value.details())
        for w in words:
            assert w in e.value.details(), (w, e.value.details())

    bad = grpc.StatusCode.INVALID_ARGUMENT
    fails(bad, ["format:", "FVECS, NPY or JSONL"], source=srv.url("base.bin"))
    fails(bad, ["format:", "unknown format 9"], format=9)
    fails(bad, ["source:", "not a URL"], source="base.fvecs")
    fails(bad, ["source:", "unsupported scheme gopher"], source="gopher://x/base.fvecs")
    fails(grpc.StatusCode.PERMISSION_DENIED, ["source:", "file://", "import_schemes"],
          source="file://" + os.path.join(GLOVE, "base.fvecs"))
    fails(bad, ["batch_size:", "20000"], batch_size=20000)
    fails(grpc.StatusCode.NOT_FOUND, ["collection:", "nosuch"], collection="nosuch")
    fails(bad, ["source:", "100-d rows", "8-d"])
    fails(bad, ["source:", "404"], source=srv.url("missing.fvecs"))
    fails(bad, ["collection:"], collection="no/slash")
    assert count(d, "bad") == 0


def test_muri_import_server_side(net, stubs, tmp_path):
    d, ch, srv = net
    muri("collection", "create", "cli", "--dim", 100, "--metric", "cosine", "--fragments", 2, "--dir", d)
    head = tmp_path / "head.fvecs"  # glove's first 2,000 rows
    head.write_bytes(open(os.path.join(GLOVE, "base.fvecs"), "rb").read(2000 * (4 + 4 * 100)))
    srv2 = RangeServer(str(tmp_path))
    try:
        p = muri("import", srv2.url("head.fvecs"), "--collection", "cli", "--server-side", "--batch", 500, "--dir", d,
                 timeout=300)
    finally:
        srv2.close()
    assert "imported 2000 rows into cli" in p.stdout and "(server-side)" in p.stdout, p.stdout
    assert count(d, "cli") == 2000
    # the command reading the file itself gives the rows the same ids: nothing added
    muri("import", head, "--collection", "cli", "--dir", d, "--batch", 500, timeout=300)
    assert count(d, "cli") == 2000
    # a local path becomes file://, which this gateway does not read (import_schemes)
    p = muri("import", head, "--collection", "cli", "--server-side", "--dir", d, check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "PERMISSION_DENIED" in p.stderr and "import_schemes" in p.stderr, p.stderr
    p = muri("import", srv.url("base.fvecs"), "--collection", "cli", "--server-side", "--limit", 5, "--dir", d,
             check=False)
    assert p.returncode == 2 and "--server-side takes" in p.stderr


class ScriptedImport:
    """A VectorStore whose Import answers each call from a script: a list of
    (rows reported, status code or None for success, message) per call."""

    def __init__(self, stubs, script):
        from concurrent import futures
        vpb, vgrpc = stubs.vectorstore_pb2, stubs.vectorstore_pb2_grpc
        self.requests, outer = [], self

        class Servicer(vgrpc.VectorStoreServicer):
            def Import(self, request, context):
                outer.requests.append(request)
                rows, code, msg = script[min(len(outer.requests), len(script)) - 1]
                for r in rows:
                    yield vpb.ImportProgress(imported=r, total=2000)
                if code is not None:
                    context.abort(code, msg)
                yield vpb.ImportProgress(imported=2000, total=2000,
                                         summary=vpb.WriteResponse(status=vpb.SUCCESS, message=msg))

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        vgrpc.add_VectorStoreServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def import_(self, *extra):
        return muri("import", "http://127.0.0.1:1/head.fvecs", "--collection", "c", "--server-side",
                    "--gateway", f"127.0.0.1:{self.port}", "--timeout", 20000, *extra, check=False, timeout=120)


def test_server_side_import_resumes_after_a_transient_failure(stubs):
    """muri import --server-side calls Import again (the gateway resumes after
    its last finished batch) when a call fails for a reason that may pass: a
    replica missing the batch's deadline, the gateway unreachable; not when
    the gateway refuses the request."""
    DE, UN, PD = grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED
    fake = ScriptedImport(stubs, [
        ([500, 1000], DE, "PARTIAL: 1 of 2 fragments acknowledged at QUORUM: fragment 0 (epoch 5): Deadline Exceeded"),
        ([], UN, "fragment 1: no primary before the deadline"),
        ([1500], None, "imported 2000 rows into c (resumed after row 1000)")])
    try:
        p = fake.import_()
        assert p.returncode == 0, p.stderr
        assert "imported 2000 rows into c (resumed after row 1000) (server-side)" in p.stdout, p.stdout
        assert "the import stopped after row 1000 (DEADLINE_EXCEEDED: PARTIAL: 1 of 2 fragments" in p.stderr, p.stderr
        assert "the import stopped after row 1000 (UNAVAILABLE: fragment 1: no primary" in p.stderr, p.stderr
        # the same request each time: the gateway keys its resume point by it
        assert len(fake.requests) == 3 and all(r == fake.requests[0] for r in fake.requests)
        assert fake.requests[0].collection == "c" and fake.requests[0].source == "http://127.0.0.1:1/head.fvecs"
    finally:
        fake.server.stop(None)

    fake = ScriptedImport(stubs, [([], PD, "source: this gateway does not import from http:// URLs")])
    try:
        p = fake.import_()
        assert p.returncode == 1 and len(fake.requests) == 1, (p.stderr, len(fake.requests))
        assert "PERMISSION_DENIED: source: this gateway does not import" in p.stderr, p.stderr
    finally:
        fake.server.stop(None)

    fake = ScriptedImport(stubs, [([100], UN, "fragment 0: no primary before the deadline")])
    try:
        p = fake.import_("--retries", 2)
        assert p.returncode == 1 and len(fake.requests) == 3, (p.stderr, len(fake.requests))
        assert p.stderr.count("resuming in") == 2, p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith("muri import: UNAVAILABLE: fragment 0: no primary"), \
            p.stderr
    finally:
        fake.server.stop(None)
