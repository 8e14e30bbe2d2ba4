"""The muri command end to end against a devnet it starts itself (`muri
devnet up` in the test's tmp folder, processes on ports picked at run time,
every one serving TLS with a certificate of the devnet's own CA; plaintext
and a client without the CA are refused):
import over HTTP with Range requests, killed halfway and resumed with no
duplicates and no loss; bench on glove-100-angular-10k; import from a file
with metadata and a filtered search; the progress bar on a pseudo-terminal
and plain lines on a pipe; the error paths with their exit statuses; status
--json, down, and up again with the data still there."""
import hashlib
import http.server
import json
import os
import pty
import re
import select
import signal
import socketserver
import struct
import subprocess
import threading
import time
import uuid

import grpc
import numpy as np
import pytest

from conftest import BUILD

MURI = os.path.join(BUILD, "tools", "muri")
GLOVE = os.path.join(os.environ.get("MURI_DATASETS", "/work/shared/datasets"), "glove-100-angular-10k")
ENV = dict(os.environ, OMP_WAIT_POLICY="passive")


def muri(*args, timeout=120, check=True, **kw):
    p = subprocess.run([MURI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV, **kw)
    if check:
        assert p.returncode == 0, f"muri {' '.join(map(str, args))}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def row_id(collection, ns, row):
    """The id muri import gives a row (common/cm_formats.c cm_import_row_id)."""
    h = hashlib.blake2b(digest_size=32)
    h.update(b"muri-import-row\0")
    h.update(collection.encode() + b"\0")
    h.update(ns.encode() + b"\0")
    h.update(struct.pack(">Q", row))
    u = bytearray(h.digest()[:16])
    u[6] = (u[6] & 0x0F) | 0x40
    u[8] = (u[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(u)))


def write_fvecs(path, a):
    a = np.asarray(a, dtype=np.float32)
    with open(path, "wb") as f:
        for row in a:
            f.write(struct.pack("<i", a.shape[1]))
            f.write(row.tobytes())


class RangeServer:
    """A static file server that answers Range requests (206), records them,
    and can be slowed down per request."""

    def __init__(self, root, delay=0.0):
        self.ranges = []
        self.delay = delay
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = os.path.join(root, self.path.lstrip("/"))
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                data = open(path, "rb").read()
                rng = self.headers.get("Range")
                time.sleep(outer.delay)
                if rng:
                    m = re.match(r"bytes=(\d+)-(\d*)", rng)
                    a = int(m.group(1))
                    b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
                    if a >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    outer.ranges.append((a, b))
                    body = data[a:b + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "devnet"
    try:  # stopped whatever happens, a failed `up` included
        p = muri("devnet", "up", "--dir", d, timeout=180)
        assert "running in" in p.stdout and "gateway" in p.stdout
        yield d
    finally:
        subprocess.run([MURI, "devnet", "down", "--dir", str(d), "--grace", "20"], capture_output=True, timeout=120)
    # no key of the devnet (node keys, TLS keys, the demo account's) in any process's log
    from conftest import secrets_in
    logs = [(n, open(os.path.join(d, n, "log"), errors="replace").read()) for n in sorted(os.listdir(d))
            if os.path.isfile(os.path.join(d, n, "log"))]
    assert logs, "the devnet wrote no logs"
    leaks = secrets_in(str(d), [""] * len(logs) + [t for _, t in logs], [n for n, _ in logs] * 2)
    assert not leaks, "secret key material in a devnet log: " + "; ".join(leaks)


def vectors_in(d, collection):
    info = json.loads(muri("collection", "describe", collection, "--dir", d, "--json").stdout)
    return info["vectors"]


def test_help_and_usage_errors():
    for cmd in [[], ["devnet"], ["devnet", "up"], ["devnet", "down"], ["devnet", "status"], ["key"], ["account"],
                ["indexer"], ["collection"], ["insert"], ["get"], ["search"], ["delete"], ["import"], ["bench"],
                ["split"]]:
        p = muri(*cmd, "--help")
        assert p.stdout.startswith("usage: muri"), (cmd, p.stdout)
    p = muri("search", "c", "--nope", check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown option --nope" in p.stderr
    p = muri("frobnicate", check=False)
    assert p.returncode == 2 and "unknown command frobnicate" in p.stderr
    p = muri("import", "x.fvecs", check=False)
    assert p.returncode == 2 and "--collection is required" in p.stderr
    p = muri("collection", "create", "c", "--dim", "x", check=False)
    assert p.returncode == 2 and "--dim: not an integer" in p.stderr


def test_import_over_http_killed_and_resumed(devnet, tmp_path):
    d = devnet
    muri("collection", "create", "glove", "--dim", 100, "--metric", "cosine", "--fragments", 2, "--dir", d)
    srv = RangeServer(GLOVE, delay=0.02)
    resume = tmp_path / "glove.resume"
    try:
        args = [MURI, "import", srv.url("base.fvecs"), "--collection", "glove", "--dir", str(d), "--batch", "250",
                "--range-bytes", "65536", "--resume-file", str(resume)]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        done = 0
        end = time.time() + 120
        while time.time() < end and p.poll() is None:
            if resume.exists():
                done = int(resume.read_text().split()[0].split("=")[1])
                if done >= 2000:
                    break
            time.sleep(0.02)
        assert p.poll() is None, f"the import ended before it could be killed: {p.communicate()}"
        p.send_signal(signal.SIGKILL)
        p.wait()
        killed_at = int(resume.read_text().split()[0].split("=")[1])
        assert 2000 <= killed_at < 10000
        assert len(srv.ranges) >= 2 and all(b - a + 1 <= 65536 for a, b in srv.ranges)
        # every row recorded as done is there; none beyond a batch in flight
        n = vectors_in(d, "glove")
        assert killed_at <= n <= killed_at + 250, (killed_at, n)

        srv.ranges.clear()
        p = muri(*args[1:], timeout=300)
        assert f"resuming after row {killed_at}" in p.stderr
        assert "imported 10000 rows into glove (resumed)" in p.stdout
        # the resumed run read the header (the dimension), then went on at the row's byte
        starts = sorted(a for a, _ in srv.ranges)
        assert starts[0] == 0 and starts[1] == killed_at * (4 + 4 * 100), starts[:3]
        assert not resume.exists()  # removed once complete
    finally:
        srv.close()
    # no duplicates, no loss: exactly the file's rows, under the ids of their row numbers
    assert vectors_in(d, "glove") == 10000
    ids = [row_id("glove", "base.fvecs", r) for r in (0, killed_at - 1, killed_at, 9999)]
    got = muri("get", "glove", *ids, "--dir", d, "--json", "--vectors").stdout
    recs = {r["id"]: r for r in json.loads(got)}
    assert set(recs) == set(ids)
    base = np.fromfile(os.path.join(GLOVE, "base.fvecs"), dtype=np.float32).reshape(-1, 101)[:, 1:]
    assert np.allclose(recs[ids[-1]]["vector"], base[9999], atol=1e-6)


def test_bench_on_glove(devnet):
    p = muri("bench", "--collection", "glove", "--queries", os.path.join(GLOVE, "query.fvecs"), "--truth",
             os.path.join(GLOVE, "groundtruth.ivecs"), "--limit", 200, "--threads", 2, "--batch", 10, "--json",
             "--dir", devnet, timeout=300)
    r = json.loads(p.stdout)
    assert r["queries"] == 200 and r["k"] == 10 and r["level"] == "QUORUM"
    assert r["recall"] >= 0.9, r
    assert r["qps"] > 0 and 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], r
    t = muri("bench", "--collection", "glove", "--queries", os.path.join(GLOVE, "query.fvecs"), "--truth",
             os.path.join(GLOVE, "groundtruth.ivecs"), "--limit", 20, "--dir", devnet, "--level", "ONE").stdout
    assert re.search(r"^recall@10\s+(0\.9\d*|1\.0+)$", t, re.M) and re.search(r"^p99 ms\s+\d", t, re.M), t


def test_file_import_with_metadata_progress_and_filtered_search(devnet, tmp_path):
    d = devnet
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((600, 8)).astype(np.float32)
    labels = ["T-shirt", "Trouser", "Sneaker"]
    write_fvecs(tmp_path / "small.fvecs", vecs)
    with open(tmp_path / "small.meta.jsonl", "w") as f:
        for i in range(600):
            f.write(json.dumps({"label": labels[i % 3], "row": i}) + "\n")
    muri("collection", "create", "small", "--dim", 8, "--metric", "l2", "--fragments", 2, "--dir", d)
    # on a terminal: a bar redrawn in place with the rate and the time left
    master, slave = pty.openpty()
    p = subprocess.Popen([MURI, "import", str(tmp_path / "small.fvecs"), "--collection", "small", "--metadata",
                          str(tmp_path / "small.meta.jsonl"), "--batch", "50", "--dir", str(d)],
                         stdin=slave, stdout=slave, stderr=slave, env=ENV, close_fds=True)
    os.close(slave)
    out = bytearray()
    end = time.time() + 120
    while time.time() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out.extend(chunk)
        elif p.poll() is not None:
            break
    assert p.wait(30) == 0, out.decode(errors="replace")
    os.close(master)
    text = out.decode(errors="replace")
    assert re.search(r"\r\[#+[>.]*\]\s+\d+% \d+/600 rows\s+\d+ rows/s\s+ETA \d+:\d\d", text), text
    assert "\r[##############################] 100% 600/600 rows" in text, text
    assert "progress:" not in text
    assert "imported 600 rows into small" in text
    # not a terminal: plain lines, the last one complete; the same ids, so still 600
    p = muri("import", tmp_path / "small.fvecs", "--collection", "small", "--metadata", tmp_path / "small.meta.jsonl",
             "--dir", d, "--restart")
    lines = p.stderr.splitlines()
    assert lines and all(line.startswith("progress: ") for line in lines) and "\r" not in p.stderr, p.stderr
    assert lines[-1].startswith("progress: 600/600 rows (100%)")
    assert vectors_in(d, "small") == 600
    # metadata arrived with its row; a filtered search only returns that label
    rec = json.loads(muri("get", "small", row_id("small", "small.fvecs", 4), "--dir", d, "--json").stdout)
    assert rec[0]["metadata"] == {"label": "Trouser", "row": 4}
    q = json.dumps([float(x) for x in vecs[4]])
    res = json.loads(muri("search", "small", "--vector", q, "--k", 5, "--dir", d, "--json").stdout)["results"]
    assert res[0]["id"] == row_id("small", "small.fvecs", 4) and res[0]["distance"] < 1e-4
    res = json.loads(muri("search", "small", "--vector", q, "--k", 5, "--filter", '{"label": "Sneaker"}', "--dir", d,
                          "--json").stdout)["results"]
    assert len(res) == 5 and all(r["metadata"]["label"] == "Sneaker" for r in res)
    want = sorted(range(2, 600, 3), key=lambda i: float(((vecs[i] - vecs[4]) ** 2).sum()))[:5]
    assert [r["metadata"]["row"] for r in res] == want
    text = muri("search", "small", "--like", row_id("small", "small.fvecs", 4), "--k", 3, "--dir", d).stdout
    assert text.startswith(f"query: {row_id('small', 'small.fvecs', 4)} {{label=Trouser row=4}}"), text
    # insert, get, delete by hand
    ids = muri("insert", "small", "--vector", "[1,2,3,4,5,6,7,8]", "--metadata", '{"label": "Bag"}', "--dir",
               d).stdout.split()
    assert len(ids) == 1
    assert "label=Bag" in muri("get", "small", ids[0], "--dir", d).stdout
    assert muri("delete", "small", ids[0], "--dir", d).stdout.strip() == "deleted 1"
    p = muri("get", "small", ids[0], "--dir", d, check=False)
    assert p.returncode == 1 and "NOT_FOUND" in p.stderr


def test_error_paths(devnet, tmp_path):
    d = devnet
    # unreachable gateway
    p = muri("collection", "list", "--gateway", "127.0.0.1:9", "--timeout", 3000, check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "gateway 127.0.0.1:9 unreachable" in p.stderr, p.stderr
    # no devnet there
    p = muri("collection", "list", "--dir", tmp_path / "none", check=False)
    assert p.returncode == 1 and "no gateway" in p.stderr
    # unknown collection
    p = muri("search", "nosuch", "--vector", "[1, 2]", "--dir", d, check=False)
    assert p.returncode == 1 and "NOT_FOUND" in p.stderr and "nosuch" in p.stderr
    p = muri("import", os.path.join(GLOVE, "query.fvecs"), "--collection", "nosuch", "--dir", d, check=False)
    assert p.returncode == 1 and "NOT_FOUND" in p.stderr and "nosuch" in p.stderr
    # malformed files
    (tmp_path / "bad.fvecs").write_bytes(struct.pack("<i", 8) + b"\0" * 20)
    p = muri("import", tmp_path / "bad.fvecs", "--collection", "small", "--dir", d, check=False)
    assert p.returncode == 1 and "not an .fvecs file" in p.stderr, p.stderr
    (tmp_path / "bad.jsonl").write_text('[1,2,3,4,5,6,7,8]\n{"vector": [1, 2,\n')
    p = muri("import", tmp_path / "bad.jsonl", "--collection", "small", "--dir", d, "--restart", check=False)
    assert p.returncode == 1 and "row 2: bad JSON" in p.stderr, p.stderr
    # wrong dimension: refused before anything is written
    before = vectors_in(d, "small")
    p = muri("import", os.path.join(GLOVE, "query.fvecs"), "--collection", "small", "--dir", d, check=False)
    assert p.returncode == 1 and "wrong dimension" in p.stderr and "100-d" in p.stderr and "8-d" in p.stderr
    p = muri("insert", "small", "--vector", "[1, 2, 3]", "--dir", d, check=False)
    assert p.returncode == 1 and "INVALID_ARGUMENT" in p.stderr and "dimension" in p.stderr
    assert vectors_in(d, "small") == before
    # a missing file, an unsupported scheme
    p = muri("import", tmp_path / "missing.fvecs", "--collection", "small", "--dir", d, check=False)
    assert p.returncode == 1 and "No such file" in p.stderr
    p = muri("import", "gopher://x/y.fvecs", "--collection", "small", "--dir", d, check=False)
    assert p.returncode == 1 and "unsupported scheme" in p.stderr


def test_account_transfer(devnet, tmp_path):
    key = tmp_path / "alice.key"
    addr = muri("key", "gen", key).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", addr)
    p = muri("account", "transfer", addr, 1234, "--dir", devnet)
    assert re.search(r"transfer of 1234 MURI: committed at height \d+", p.stdout)
    a = json.loads(muri("account", "show", addr, "--dir", devnet, "--json").stdout)
    assert a["balance"] == 1234 and a["address"] == addr
    p = muri("account", "transfer", addr, 10**15, "--dir", devnet, check=False)
    assert p.returncode == 1 and p.stderr.startswith("muri account: ") and p.stderr.count("\n") == 1
    # an indexer's transactions, signed by its own key (staked below min_stake: it stays out of placement)
    p = muri("indexer", "register", "127.0.0.1:1", 1 << 30, "--key", key, "--dir", devnet)
    assert "indexer registered at 127.0.0.1:1: committed at height" in p.stdout
    muri("indexer", "stake", 10, "--key", key, "--dir", devnet)
    show = muri("indexer", "show", addr, "--dir", devnet).stdout
    assert re.search(r"^address\s+127\.0\.0\.1:1$", show, re.M) and re.search(r"^stake\s+10$", show, re.M), show
    assert re.search(r"^active\s+no$", show, re.M), show
    # the chain's fill estimate beside the capacity: it replicates nothing
    assert re.search(r"^capacity\s+1073741824$", show, re.M) and re.search(r"^used\s+0$", show, re.M), show
    assert re.search(r"^fill\s+0\.0%$", show, re.M), show
    muri("indexer", "unstake", 10, "--key", key, "--dir", devnet)
    a = json.loads(muri("account", "show", "--key", key, "--dir", devnet, "--json").stdout)
    assert a["staked"] == 0 and a["unbonding"] + a["balance"] <= 1234


def test_split(devnet, tmp_path):
    """muri split: the owner's SplitFragment; the halves go live and take
    the records; bad input names the field, a stranger is refused."""
    d = devnet
    muri("collection", "create", "splitme", "--dim", 8, "--metric", "l2", "--index", "flat", "--fragments", 1,
         "--dir", d)
    ids = []
    for i in range(12):
        v = json.dumps([float((i * 7 + j) % 11) for j in range(8)])
        ids.append(muri("insert", "splitme", "--vector", v, "--dir", d).stdout.split()[-1])
    # bad input: the field named, exit 2 before anything is sent
    p = muri("split", "splitme", "x", "--dir", d, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "FRAGMENT: \"x\" is not a fragment number" in p.stderr
    p = muri("split", "splitme", "-1", "--dir", d, check=False)
    assert p.returncode == 2 and "FRAGMENT:" in p.stderr, p.stderr
    p = muri("split", "splitme", "--dir", d, check=False)
    assert p.returncode == 2 and "muri split COLLECTION FRAGMENT" in p.stderr
    # the ledger's refusals name the transaction's field
    p = muri("split", "splitme", 5, "--dir", d, check=False)
    assert p.returncode == 1 and "split_fragment.fragment: no fragment 5" in p.stderr, p.stderr
    p = muri("split", "nosuch", 0, "--dir", d, check=False)
    assert p.returncode == 1 and "split_fragment.magu: no Magu \"nosuch\"" in p.stderr, p.stderr
    stranger = tmp_path / "stranger.key"
    addr = muri("key", "gen", stranger).stdout.strip()
    muri("account", "transfer", addr, 1000, "--dir", d)
    p = muri("split", "splitme", 0, "--key", stranger, "--dir", d, check=False)
    assert p.returncode == 1 and "only the owner" in p.stderr, p.stderr
    # the owner (the devnet's demo account pays for its collections)
    p = muri("split", "splitme", 0, "--dir", d)
    assert re.search(r"fragment 0 of \"splitme\" sealing in epoch 2 to split into 1 and 2: committed at height \d+",
                     p.stdout), p.stdout
    p = muri("split", "splitme", 0, "--dir", d, check=False)
    assert p.returncode == 1 and "split_fragment.fragment: fragment 0 of \"splitme\" is" in p.stderr, p.stderr

    def split_done():
        info = json.loads(muri("collection", "describe", "splitme", "--dir", d, "--json").stdout)
        st = {s["fragment"]: (s["state"], s["searched"]) for s in info["fragment_states"]}
        return info if st == {0: ("retired", False), 1: ("serving", True), 2: ("serving", True)} else None
    deadline, info = time.time() + 120, None
    while not info and time.time() < deadline:
        info = split_done()
        time.sleep(0.5)
    assert info, muri("collection", "describe", "splitme", "--dir", d).stdout
    assert info["vectors"] == len(ids) and sum(s["vectors"] for s in info["fragment_states"][1:]) == len(ids)
    got = muri("get", "splitme", *ids, "--dir", d, "--json").stdout
    assert all(i in got for i in ids)
    text = muri("collection", "describe", "splitme", "--dir", d).stdout
    assert re.search(r"^fragment 0   retired \(not searched\), epoch 2", text, re.M), text


def alive(pid):
    """A process that exists and is not a zombie (the devnet's processes
    outlive `muri devnet up`; whoever adopts them may reap them late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_status_down_and_up_with_data_kept(devnet, tmp_path):
    d = devnet
    muri("collection", "create", "keep", "--dim", 4, "--metric", "l2", "--fragments", 1, "--dir", d)
    rows = [{"id": str(uuid.uuid4()), "vector": [float(i), 1.0, 2.0, 3.0], "metadata": {"n": i}} for i in range(3)]
    (tmp_path / "keep.json").write_text(json.dumps(rows))
    ids = muri("insert", "keep", "--file", tmp_path / "keep.json", "--dir", d).stdout.split()
    assert ids == [r["id"] for r in rows]
    p = muri("devnet", "status", "--dir", d, "--json")
    st = json.loads(p.stdout)
    nodes = st["nodes"]
    assert [n["role"] for n in nodes] == ["ledger"] * 4 + ["indexer"] * 3 + ["gateway"]
    assert [n["name"] for n in nodes][-1] == "gateway" and nodes[0]["name"] == "ledger-0"
    for n in nodes:
        assert n["status"] == "serving" and n["pid"] > 0 and re.fullmatch(r"127\.0\.0\.1:\d+", n["rpc"])
        assert re.fullmatch(r"127\.0\.0\.1:\d+", n["metrics"])
        assert alive(n["pid"])
    assert "keep" in {c["name"] for c in st["collections"]}
    assert re.fullmatch(r"ledger-[0-3]", nodes[0]["details"]["leader"])
    ca = (d / "tls" / "ca.pem").read_bytes()
    certs = [(d / n["name"] / "tls.crt").read_bytes() for n in nodes]
    # up on a running network says so
    p = muri("devnet", "up", "--dir", d)
    assert "already running" in p.stdout
    p = muri("devnet", "down", "--dir", d, timeout=120)
    assert "stopped 8 processes" in p.stdout
    assert not any(alive(n["pid"]) for n in nodes)
    p = muri("devnet", "status", "--dir", d, "--json", check=False)
    assert p.returncode == 1
    assert all(n["status"] == "stopped" for n in json.loads(p.stdout)["nodes"])
    p = muri("devnet", "down", "--dir", d)
    assert "nothing running" in p.stdout
    # up again: same addresses, the data still there
    muri("devnet", "up", "--dir", d, timeout=180)
    # the same CA and certificates: made once
    assert (d / "tls" / "ca.pem").read_bytes() == ca
    assert [(d / n["name"] / "tls.crt").read_bytes() for n in nodes] == certs
    again = json.loads(muri("devnet", "status", "--dir", d, "--json").stdout)["nodes"]
    assert [n["rpc"] for n in again] == [n["rpc"] for n in nodes]
    got = json.loads(muri("get", "keep", *ids, "--dir", d, "--json").stdout)
    assert [(r["id"], r["metadata"]["n"]) for r in got] == [(i, k) for k, i in enumerate(ids)]
    res = json.loads(muri("search", "keep", "--vector", "[2, 1, 2, 3]", "--k", 1, "--dir", d,
                          "--json").stdout)["results"]
    assert res[0]["id"] == ids[2] and res[0]["distance"] < 1e-6


def test_devnet_serves_tls_only(devnet, tmp_path):
    d = devnet
    ca = d / "tls" / "ca.pem"
    assert ca.is_file() and not (d / "tls" / "ca.key").exists()  # the CA's key signed and went
    nodes = json.loads(muri("devnet", "status", "--dir", d, "--json").stdout)["nodes"]
    for n in nodes:
        assert os.stat(d / n["name"] / "tls.key").st_mode & 0o777 == 0o600
        # plaintext is refused on every process's port
        with grpc.insecure_channel(n["rpc"]) as ch:
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary("/muri.v1.Ledger/Status", request_serializer=lambda x: x,
                               response_deserializer=lambda x: x)(b"", timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    gw = nodes[-1]["rpc"]
    with grpc.secure_channel(gw, grpc.ssl_channel_credentials(ca.read_bytes())) as ch:
        status = ch.unary_unary("/muri.v1.VectorStore/Status", request_serializer=lambda x: x,
                                response_deserializer=lambda x: x)(b"", timeout=10)
        assert b"gateway" in status
    # the command without the CA (an address, not the devnet's folder): one line saying what to do
    p = muri("collection", "list", "--gateway", gw, "--timeout", 3000, check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert f"gateway {gw} unreachable" in p.stderr and "--tls-ca FILE" in p.stderr, p.stderr
    p = muri("status", gw, check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "--tls-ca FILE" in p.stderr, p.stderr
    # with the CA it is answered; a CA that did not sign the certificate is refused
    muri("collection", "create", "overtls", "--dim", 4, "--fragments", 1, "--dir", d)
    assert "overtls" in muri("collection", "list", "--gateway", gw, "--tls-ca", ca, "--api-key",
                             "@" + str(d / "admin.apikey")).stdout
    assert "service   gateway" in muri("status", gw, "--tls-ca", ca).stdout
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", tmp_path / "other.key", "-out", other, "-days", "1", "-subj", "/CN=other"],
                   check=True, capture_output=True)
    p = muri("collection", "list", "--gateway", gw, "--tls-ca", other, "--timeout", 3000, check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and f"CA {other}" in p.stderr, p.stderr
    # the ledger's clients too: an account read from the devnet's folder works over TLS
    assert muri("account", "show", "--dir", d, "--json").returncode == 0


def test_binary_collection(devnet):
    """A HAMMING collection from the command line: create with the dimension
    in bits, insert and search codes given in hex, get them back in hex,
    search like a stored code; a wrong length and a dimension that is not a
    multiple of 8 are refused naming the field."""
    d = devnet
    p = muri("collection", "create", "bits", "--dim", 64, "--metric", "hamming", "--index", "flat", "--dir", d)
    info = json.loads(muri("collection", "describe", "bits", "--dir", d, "--json").stdout)
    assert info["metric"] == "hamming" and info["dimension"] == 64
    codes = ["0123456789abcdef", "0123456789abcdee", "fedcba9876543210"]
    ids = [muri("insert", "bits", "--binary", c, "--metadata", json.dumps({"n": i}), "--dir", d).stdout.strip()
           for i, c in enumerate(codes)]
    res = json.loads(muri("search", "bits", "--binary", codes[0], "--k", 3, "--dir", d, "--json").stdout)["results"]
    assert [x["id"] for x in res] == ids and [x["distance"] for x in res] == [0, 1, 64]
    got = json.loads(muri("get", "bits", ids[2], "--vectors", "--dir", d, "--json").stdout)
    assert got[0]["vector"] == codes[2]
    res = json.loads(muri("search", "bits", "--like", ids[1], "--k", 1, "--dir", d, "--json").stdout)["results"]
    assert res[0]["id"] == ids[1] and res[0]["distance"] == 0
    p = muri("insert", "bits", "--binary", "01234567", "--dir", d, check=False)
    assert p.returncode == 1 and "INVALID_ARGUMENT" in p.stderr and "vectors[0].binary: 4 bytes" in p.stderr, p.stderr
    p = muri("search", "bits", "--vector", "[1, 2]", "--dir", d, check=False)
    assert p.returncode == 1 and "query_vector.values: 2 floats given" in p.stderr, p.stderr
    p = muri("collection", "create", "bits12", "--dim", 12, "--metric", "hamming", "--dir", d, check=False)
    assert p.returncode == 1 and "dimension: 12 bits under HAMMING" in p.stderr, p.stderr
