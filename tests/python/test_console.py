"""The console in a browser: a gateway with console_listen over a ChainNet (4
ledger replicas, 3 indexers) and a collection, opened in headless Chromium
driven over the DevTools protocol. What a person sees is checked: every
process with its role and address, up; Magu content; a search typed into
the page answers the same ids as the same search over gRPC; the collections
and chain pages list what the chain holds; a SIGKILLed indexer turns red
(down) on the page within 5 s and Magu turns worried, alarmed when a second
one leaves the fragments below QUORUM; the page fits a phone viewport; with
auth on, the page asks for an API key and shows only what that key may
read. A screenshot of each page is written under build/test-logs/console."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from chain_util import CHAIN, ChainNet
from conftest import BUILD
from gateway_util import Gateway, require_test_lie, start_liar
from ledger_util import Account, free_ports, signed_tx
from muri_util import wait_until

try:
    import websocket  # Debian's python3-websocket
except ImportError:  # pragma: no cover - the skip says why
    websocket = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
D = 8
ARTIFACTS = os.path.join(BUILD, "test-logs", "console")


class Browser:
    """One headless Chromium page over the DevTools protocol."""

    def __init__(self, workdir, width=1280, height=800):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        assert wait_until(lambda: os.path.exists(port_file) and open(port_file).read().strip(), timeout=60), \
            "chromium did not open its DevTools port"
        port = int(open(port_file).read().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.call("Page.enable")
        self.viewport(width, height)

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})

    def viewport(self, width, height, mobile=False):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=mobile)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, f"{expr}: {r['exceptionDetails']}"
        return r["result"].get("value")

    def go(self, url):
        self.call("Page.navigate", url=url)

    def wait(self, expr, timeout=20.0):
        got = {}

        def check():
            got["v"] = self.js(expr)
            return bool(got["v"])
        assert wait_until(check, timeout=timeout, interval=0.1), f"never true: {expr}"
        return got["v"]

    def screenshot(self, name, full=False):
        """The viewport, or with full the whole page."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, f"{name}.png")
        args = {}
        if full:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            args = {"captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}
        data = self.call("Page.captureScreenshot", format="png", **args)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print(f"screenshot: {path}")
        return path

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def api(port, path):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).read())


NODE_ROWS = """[...document.querySelectorAll('#nodes-table tbody tr')].map(r => ({
  role: r.dataset.role, node: r.dataset.node, up: r.dataset.up === 'true',
  addr: r.querySelector('td.mono').textContent}))"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (scripts/setup.sh)")
@pytest.mark.skipif(websocket is None, reason="python3-websocket is not installed (scripts/setup.sh)")
def test_console_in_a_browser(servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path)
    (cport,) = free_ports(1)
    gw = Gateway(servers, stubs, net, tmp_path, args=("--console-listen", f"127.0.0.1:{cport}"))
    browser = None
    try:
        gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name="songs", dimension=D, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=2,
            replication=3), timeout=90)
        base = np.random.default_rng(7).normal(size=(120, D)).astype(np.float32)
        genres = ["jazz", "rock", "folk"]
        gw.stub.Insert(vpb.InsertRequest(
            collection="songs", consistency_level=tpb.ALL,
            vectors=[tpb.Vector(values=list(map(float, v))) for v in base],
            metadata=[tpb.Metadata(fields={"genre": tpb.Value(string_value=genres[i % 3])}) for i in range(len(base))]),
            timeout=60)

        # the JSON behind the page: every process, all up, content
        def all_up():
            n = api(cport, "/api/network")
            return (len(n["ledgers"]) == 4 and len(n["indexers"]) == 3 and all(x["up"] for x in n["ledgers"])
                    and all(x["up"] for x in n["indexers"]) and n["health"]["mood"] == "content")
        assert wait_until(all_up, timeout=30), api(cport, "/api/network")

        browser = Browser(str(tmp_path))
        url = f"http://127.0.0.1:{cport}/"
        browser.go(url + "#network")
        browser.wait("document.querySelectorAll('#nodes-table tbody tr').length === 8")
        rows = browser.js(NODE_ROWS)
        roles = sorted(r["role"] for r in rows)
        assert roles == ["gateway"] + ["indexer"] * 3 + ["ledger"] * 4, rows
        assert sorted(r["addr"] for r in rows if r["role"] == "ledger") == sorted(net.addrs)
        assert sorted(r["addr"] for r in rows if r["role"] == "indexer") == sorted(net.ixaddrs)
        assert {r["node"] for r in rows if r["role"] == "indexer"} == {ix.pubkey.hex() for ix in net.indexers}
        assert all(r["up"] for r in rows), rows
        assert browser.js("document.querySelector('#magu').dataset.mood") == "content"
        # each primary's lease, from its Status: every primary holds it while its backups answer
        def leases_held():
            ixs = api(cport, "/api/network")["indexers"]
            return (sum(x["lease"]["primaries"] for x in ixs) == 2 and
                    all(x["lease"]["held"] == x["lease"]["primaries"] and x["lease"]["lease_ms"] > 0 for x in ixs))
        assert wait_until(leases_held, timeout=20), api(cport, "/api/network")["indexers"]
        primaries = [x["node"] for x in api(cport, "/api/network")["indexers"] if x["lease"]["primaries"]]
        browser.wait(f"document.querySelector('#nodes-table tr[data-node=\"{primaries[0]}\"]')"
                     f".textContent.includes('lease held on')")
        assert "last challenge" in browser.js("document.querySelector('#nodes-table tr[data-role=\"indexer\"]')"
                                              ".textContent")
        # the one gateway the genesis lists is this one
        gws = api(cport, "/api/network")["gateways"]
        assert [(g["self"], g["in_genesis"], g["node"]) for g in gws] == [(True, True, net.gwacc.pk.hex())]
        # the picture: a node for every process, the leader starred, a ring arc per fragment
        assert browser.js("document.querySelectorAll('#picture g.node').length") == 8
        assert browser.js("document.querySelectorAll('#picture g.node.ledger polygon.star').length") == 1
        assert browser.js("document.querySelectorAll('#picture path.arc.ok').length") == 2
        browser.screenshot("network")

        # a search typed into the page answers the ids the same search over gRPC does
        q = np.random.default_rng(99).normal(size=D).astype(np.float32)
        browser.go(url + "#search")
        browser.wait("document.querySelectorAll('#s-collection option').length === 1")
        browser.js(f"""(() => {{
            document.querySelector('#s-vector').value = {json.dumps([float(x) for x in q])!r};
            document.querySelector('#s-k').value = '10';
            document.querySelector('#s-level').value = 'ALL';
            document.querySelector('#s-go').click(); }})()""")
        browser.wait("document.querySelectorAll('#hits-table tbody tr').length === 10")
        page_ids = browser.js("[...document.querySelectorAll('#hits-table tbody tr')].map(r => r.dataset.id)")
        r = gw.stub.Search(vpb.SearchRequest(collection="songs", query_vector=tpb.Vector(values=list(map(float, q))),
                                             top_k=10, consistency_level=tpb.ALL), timeout=30)
        assert page_ids == [h.id for h in r.results]
        # at ALL every replica of both fragments answered: six answers, ranked 1..6
        answered = browser.js("[...document.querySelectorAll('#answer-nodes tbody tr')]"
                              ".map(r => [r.dataset.answered, r.cells[0].textContent])")
        assert answered == [["true", str(i)] for i in range(1, 7)], answered
        browser.screenshot("search", full=True)

        # a filter and a stored record's id as the query
        browser.js(f"""(() => {{
            document.querySelector('#s-vector').value = '';
            document.querySelector('#s-id').value = {json.dumps(r.results[0].id)};
            document.querySelector('#s-filter').value = '{{"genre": "jazz"}}';
            document.querySelector('#s-go').click(); }})()""")
        browser.wait(f"(() => {{ const r = document.querySelector('#hits-table tbody tr'); "
                     f"return r && r.textContent.includes('jazz') && "
                     f"!document.querySelector('#hits-table').textContent.includes('rock'); }})()")

        # collections and chain pages
        browser.go(url + "#collections/songs")
        browser.wait("document.querySelector('#colls-table tbody').textContent.includes('songs') && "
                     "document.querySelectorAll('#coll-detail tbody tr').length === 2")
        coll = api(cport, "/api/collections/songs")
        assert coll["log_records"] == 120 and [f["state"] for f in coll["fragment_list"]] == ["ok", "ok"]
        assert all(sum(r["role"] == "primary" for r in f["replicas"]) == 1 for f in coll["fragment_list"])
        browser.screenshot("collections")

        # the data browser: page through every record on the page, each page the same as a gRPC Scroll's
        def grpc_pages(size, vectors=False):
            pages, cursor = [], ""
            while True:
                r = gw.stub.Scroll(vpb.ScrollRequest(collection="songs", page_size=size, cursor=cursor,
                                                     include_vectors=vectors), timeout=30)
                pages.append(r.records)
                if not r.next_cursor:
                    return pages
                cursor = r.next_cursor
        REC_ROWS = """[...document.querySelectorAll('#records-table tbody tr[data-id]')].map(r => ({
          id: r.dataset.id, metadata: JSON.parse(r.cells[3].dataset.metadata),
          vector: r.cells[4].dataset.vector ? JSON.parse(r.cells[4].dataset.vector) : null}))"""
        want = grpc_pages(20)
        assert sum(len(p) for p in want) == 120 and len(want) == 6
        browser.wait("!document.querySelector('#records').hidden && "
                     "document.querySelectorAll('#records-table tbody tr[data-id]').length === 20")
        seen = []
        for i, page in enumerate(want):
            if i:
                browser.js("document.querySelector('#r-next').click()")
            browser.wait(f"document.querySelector('#r-page').textContent.startsWith('page {i + 1}') && "
                         f"document.querySelector('#r-status').textContent.startsWith('{len(page)} record')")
            rows = browser.js(REC_ROWS)
            assert [r["id"] for r in rows] == [x.id for x in page]
            assert [r["metadata"] for r in rows] == [{k: v.string_value for k, v in x.metadata.fields.items()}
                                                     for x in page]
            seen += [r["id"] for r in rows]
            if i == 1:
                browser.js("document.querySelector('#h-records').scrollIntoView()")
                browser.screenshot("collections-records")
        assert len(seen) == len(set(seen)) == 120
        assert browser.js("document.querySelector('#r-next').disabled")
        assert "(last)" in browser.js("document.querySelector('#r-page').textContent")
        browser.js("document.querySelector('#r-prev').click()")
        browser.wait("document.querySelector('#r-page').textContent === 'page 5'")
        assert [r["id"] for r in browser.js(REC_ROWS)] == [x.id for x in want[4]]
        # on request, the vectors, and a filter
        browser.js("""(() => { document.querySelector('#r-vectors').checked = true;
            document.querySelector('#r-limit').value = '50';
            document.querySelector('#r-filter').value = '{"genre": "folk"}';
            document.querySelector('#r-go').click(); })()""")
        browser.wait("document.querySelector('#r-page').textContent.startsWith('page 1') && "
                     "document.querySelectorAll('#records-table tbody tr[data-id]').length === 40")
        folk = gw.stub.Scroll(vpb.ScrollRequest(collection="songs", page_size=50, include_vectors=True,
                                                filter=tpb.Filter(conditions={"genre": tpb.Condition(
                                                    eq=tpb.Value(string_value="folk"))})), timeout=30)
        rows = browser.js(REC_ROWS)
        assert [r["id"] for r in rows] == [x.id for x in folk.records] and not folk.next_cursor
        assert all(r["metadata"] == {"genre": "folk"} for r in rows)
        assert all(np.allclose(r["vector"], list(x.vector.values)) for r, x in zip(rows, folk.records))
        browser.screenshot("collections-records-vectors", full=True)
        browser.go(url + "#chain")
        browser.wait("document.querySelectorAll('#blocks-table tbody tr').length > 0")
        browser.screenshot("chain", full=True)
        # the block that created the collection, and the receipts of the searches above
        kinds, top = set(), api(cport, "/api/blocks?limit=1")["tip"]
        while top >= 1 and ("create_magu", "committed") not in kinds:
            for b in api(cport, f"/api/blocks?from={top}&limit=50")["blocks"]:
                kinds |= {(t.get("kind"), t.get("state")) for t in b["txs"]}
            top -= 50
        assert ("create_magu", "committed") in kinds, kinds
        assert wait_until(lambda: any(x["collection"] == "songs" and x["payouts"]
                                      for x in api(cport, "/api/blocks?limit=1")["receipts"]), timeout=30)
        ix0 = net.indexers[0].pubkey.hex()
        browser.go(url + f"#node/{ix0}")
        browser.wait("document.querySelector('#node-detail').textContent.includes('Stake')")
        browser.screenshot("node")

        # SIGKILL an indexer: red on the page within 5 s, and Magu is no longer content
        browser.go(url + "#network")
        browser.wait("document.querySelectorAll('#nodes-table tbody tr').length === 8")
        net.indexers[0].server.kill9()
        t0 = time.monotonic()
        browser.wait(f"document.querySelector('#nodes-table tr[data-node=\"{ix0}\"]').dataset.up === 'false'",
                     timeout=5)
        took = time.monotonic() - t0
        assert took <= 5.0, took
        assert browser.js(f"document.querySelector('#picture g.node[data-node=\"{ix0}\"]').classList.contains('down')")
        mood = browser.wait("(() => { const m = document.querySelector('#magu').dataset.mood; "
                            "return m !== 'content' && m; })()", timeout=5)
        assert mood == "worried"  # one of three replicas down: every fragment still reaches QUORUM
        print(f"indexer down on the page after {took:.2f} s; Magu {mood}")
        browser.screenshot("network-indexer-down")

        # a second one: every fragment is left with one of three replicas, below QUORUM: alarmed
        ix1 = net.indexers[1].pubkey.hex()
        net.indexers[1].server.kill9()
        browser.wait(f"document.querySelector('#nodes-table tr[data-node=\"{ix1}\"]').dataset.up === 'false'",
                     timeout=5)
        browser.wait("document.querySelector('#magu').dataset.mood === 'alarmed'", timeout=5)
        assert browser.js("document.querySelectorAll('#picture path.arc.lost').length") == 2
        browser.screenshot("network-alarmed")

        # a phone: the page fits its width (wide tables scroll inside their frame)
        browser.viewport(390, 844, mobile=True)
        browser.go(url + "#network")
        browser.wait("document.querySelectorAll('#nodes-table tbody tr').length === 8")
        assert browser.js("document.documentElement.scrollWidth") <= 392
        browser.screenshot("network-phone")
        # the browser kept its place on that collection (40 folk records); ask for the first 20 of all
        # again: at ONE a page needs one replica per fragment, and one of three still answers
        browser.go(url + "#collections/songs")
        browser.wait("document.querySelectorAll('#records-table tbody tr[data-id]').length === 40")
        browser.js("""(() => { document.querySelector('#r-vectors').checked = false;
            document.querySelector('#r-limit').value = '20'; document.querySelector('#r-filter').value = '';
            document.querySelector('#r-go').click(); })()""")
        browser.wait("document.querySelectorAll('#records-table tbody tr[data-id]').length === 20", timeout=30)
        assert [r["id"] for r in browser.js(REC_ROWS)] == [x.id for x in want[0]]
        assert browser.js("document.documentElement.scrollWidth") <= 392
        browser.screenshot("collections-phone", full=True)
        # landmarks and labels a screen reader announces: every table has a caption or a label
        assert browser.js("['header', 'nav', 'main', 'footer'].every(t => document.querySelector(t))")
        unlabelled = browser.js("""[...document.querySelectorAll('table')].filter(t =>
            !(t.caption && t.caption.textContent.trim()) && !t.getAttribute('aria-label') &&
            !t.getAttribute('aria-labelledby')).map(t => t.id || t.outerHTML.slice(0, 80))""")
        assert unlabelled == [], unlabelled
        assert browser.js("[...document.querySelectorAll('input, select, textarea')].every(e => e.closest('label'))")
    finally:
        if browser:
            browser.close()
        gw.close()
        net.close()


def test_console_endpoints(servers, stubs, tmp_path):
    """The JSON endpoints as a script uses them: errors name what is wrong."""
    net = ChainNet(servers, stubs, tmp_path, n_indexers=1)
    (cport,) = free_ports(1)
    # a gateway of its own key: the genesis lists another one, which the network shows too
    gw = Gateway(servers, stubs, net, tmp_path, name="gw-other", args=("--console-listen", f"127.0.0.1:{cport}"))
    try:
        assert wait_until(lambda: api(cport, "/api/network")["ledgers"][0]["up"], timeout=20)
        assert api(cport, "/api/collections") == {"collections": []}
        gws = api(cport, "/api/network")["gateways"]
        assert [(g["self"], g["in_genesis"], g["health"]) for g in gws] == [(True, False, "up"),
                                                                            (False, True, "unknown")]
        assert gws[1]["node"] == net.gwacc.pk.hex() and gws[0]["node"] != gws[1]["node"]

        def err(path, data=None, kind="application/json"):
            req = urllib.request.Request(f"http://127.0.0.1:{cport}{path}", data=data,
                                         headers={"Content-Type": kind} if data is not None else {})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            return e.value.code, json.loads(e.value.read())["error"]
        assert err("/api/collections/nope") == (404, "collection: not found")
        assert err("/api/collections/nope/records") == (404, 'collection: no collection "nope"')
        assert err("/api/collections/nope/records?limit=0") == (400, "limit: expected 1..1000")
        assert err("/api/collections/nope/records?vectors=yes") == (400, "vectors: expected 0 or 1")
        assert err("/api/collections/nope/records?filter=%7B") [0] == 400
        assert err("/api/collections/nope/records?cursor=zz")[1].startswith('cursor: "zz" is not a cursor')
        assert err("/api/collections/nope/other") == (404, "not found")
        assert err("/api/nodes/xyz") == (400, "node: expected 64 hex digits (a public key)")
        assert err("/api/blocks?limit=0") == (400, "limit: expected 1..50")
        assert err("/api/search") == (405, "method not allowed")
        assert err("/api/search", b"{") [0] == 400
        assert err("/api/search", b'{"vector":[1]}') == (400, "collection: required")
        assert err("/api/search", b'{"collection":"nope","vector":[1,2]}') == (404, "collection: not found")
        assert err("/api/search", b'{"collection":"x","vector":[1],"consistency":"MOST"}') == \
            (400, "consistency: expected ONE, QUORUM or ALL")
        assert err("/api/search", b"x" * (2 << 20))[0] == 413
        # a form post (what another site's page may send without asking) is refused
        assert err("/api/search", b'{"collection":"x","vector":[1]}', "text/plain") == \
            (415, "Content-Type: expected application/json")
        page = urllib.request.urlopen(f"http://127.0.0.1:{cport}/", timeout=10).read().decode()
        assert "<main" in page and "/app.js" in page
        svg = urllib.request.urlopen(f"http://127.0.0.1:{cport}/magu.svg", timeout=10)
        assert svg.headers["Content-Type"] == "image/svg+xml"
        node = api(cport, f"/api/nodes/{net.indexers[0].pubkey.hex()}")
        assert node["role"] == "indexer" and node["indexer"]["stake"] == 5000
    finally:
        gw.close()
        net.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (scripts/setup.sh)")
@pytest.mark.skipif(websocket is None, reason="python3-websocket is not installed (scripts/setup.sh)")
def test_console_shows_who_lied(servers, stubs, tmp_path):
    """One indexer of three fabricates answers (test_lie): after searches at
    ALL the gateway's merges prove its lies, and the page marks it (a badge
    on its node, its lies in the table) and no honest one."""
    require_test_lie()
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path)
    start_liar(servers, net, "fabricate")
    (cport,) = free_ports(1)
    gw = Gateway(servers, stubs, net, tmp_path, args=("--console-listen", f"127.0.0.1:{cport}",
                                                      "--default-timeout-ms", "20000", "--spot-permille", "0"))
    browser = None
    try:
        gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name="byz", dimension=D, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=1,
            replication=3), timeout=90)
        base = np.random.default_rng(3).normal(size=(100, D)).astype(np.float32)
        gw.stub.Insert(vpb.InsertRequest(collection="byz", consistency_level=tpb.ALL,
                                         vectors=[tpb.Vector(values=list(map(float, v))) for v in base]), timeout=60)
        for q in np.random.default_rng(4).normal(size=(10, D)).astype(np.float32):
            gw.stub.Search(vpb.SearchRequest(collection="byz", query_vector=tpb.Vector(values=list(map(float, q))),
                                             top_k=5, consistency_level=tpb.ALL), timeout=30)
        lies = {x["node"]: (x["rank"] or {}).get("lies", 0) for x in api(cport, "/api/network")["indexers"]}
        liar_pk = net.ixacc[2].pk.hex()
        assert lies[liar_pk] > 0 and all(v == 0 for k, v in lies.items() if k != liar_pk), lies
        # a search through the console: the liar's answer ranks last, with its lie
        q = [float(x) for x in np.random.default_rng(5).normal(size=D)]
        req = urllib.request.Request(f"http://127.0.0.1:{cport}/api/search",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"collection": "byz", "vector": q, "top_k": 5,
                                                      "consistency": "ALL"}).encode())
        got = json.loads(urllib.request.urlopen(req, timeout=30).read())
        answers = [n for n in got["nodes"] if n["answered"]]
        assert len(answers) == 3 and answers[-1]["node"] == liar_pk and answers[-1]["lies"] > 0, answers
        assert all(n["lies"] == 0 for n in answers[:-1]), answers
        lies = {x["node"]: (x["rank"] or {}).get("lies", 0) for x in api(cport, "/api/network")["indexers"]}
        browser = Browser(str(tmp_path))
        browser.go(f"http://127.0.0.1:{cport}/#network")
        marked = browser.wait("(() => { const m = [...document.querySelectorAll('#picture g.node.liar')]"
                              ".map(g => g.dataset.node); return m.length && m; })()")
        assert marked == [liar_pk]
        assert f"lies {lies[liar_pk]}" in browser.js(
            f"document.querySelector('#nodes-table tr[data-node=\"{liar_pk}\"]').textContent")
        browser.screenshot("network-liar")
    finally:
        if browser:
            browser.close()
        gw.close()
        net.close()


def api_key_hash(key):
    return hashlib.blake2b(bytes([0x15]) + key.encode(), digest_size=32).digest()


def http(port, path, key=None, data=None):
    """(status, JSON body) of one console request, with key as its bearer."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_console_with_auth(servers, stubs, tmp_path):
    """A gateway with auth on: the console's endpoints want an API key and
    say why one is refused (missing, unknown, revoked); a key sees only the
    collections its account may read; the page asks for the key, keeps it
    for the tab and then lists what the key may see."""
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path, n_indexers=1)
    alice, bob = Account(), Account()
    admin, bob_ro, gone = ("muri_" + os.urandom(32).hex() for _ in range(3))
    for who in (alice, bob):
        net.submit(signed_tx(lpb, CHAIN, net.owner, transfer=lpb.Transfer(to=who.pk, amount=100_000)))
    net.submit(signed_tx(lpb, CHAIN, alice, create_api_key=lpb.CreateApiKey(
        key_hash=api_key_hash(admin), scope=lpb.SCOPE_ADMIN)))
    net.submit(signed_tx(lpb, CHAIN, bob, create_api_key=lpb.CreateApiKey(
        key_hash=api_key_hash(bob_ro), scope=lpb.SCOPE_READ)))
    net.submit(signed_tx(lpb, CHAIN, bob, create_api_key=lpb.CreateApiKey(
        key_hash=api_key_hash(gone), scope=lpb.SCOPE_READ)))
    net.submit(signed_tx(lpb, CHAIN, bob, revoke_api_key=lpb.RevokeApiKey(key_hash=api_key_hash(gone))))
    (cport,) = free_ports(1)
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--auth", "true", "--receipt-allowance", "0", "--console-listen", f"127.0.0.1:{cport}"))
    browser = None
    try:
        md = (("authorization", f"Bearer {admin}"),)
        # the gateway knows the keys once it has followed the chain past their blocks
        assert wait_until(lambda: http(cport, "/api/collections", key=admin)[0] == 200, timeout=30), \
            http(cport, "/api/collections", key=admin)
        gw.stub.CreateCollection(vpb.CreateCollectionRequest(name="private", dimension=D, metric=tpb.L2,
                                                             fragments=1, replication=1), timeout=90, metadata=md)
        gw.stub.Insert(vpb.InsertRequest(collection="private", consistency_level=tpb.ALL, vectors=[
            tpb.Vector(values=[float(i)] * D) for i in range(5)]), timeout=60, metadata=md)

        # no key, a key the chain never saw, a revoked one: 401 saying which
        for path in ("/api/network", "/api/collections", "/api/collections/private/records", "/api/blocks"):
            code, body = http(cport, path)
            assert code == 401 and body["error"].startswith("Authorization: missing"), (path, body)
        code, body = http(cport, "/api/collections", key="muri_" + "0" * 64)
        assert code == 401 and body["error"].startswith("API key: unknown"), body
        assert wait_until(lambda: "revoked" in http(cport, "/api/collections", key=gone)[1].get("error", ""),
                          timeout=20), http(cport, "/api/collections", key=gone)
        code, body = http(cport, "/api/search", data=b'{"collection":"private","vector":[1]}')
        assert code == 401 and "missing" in body["error"], body

        # bob's read-only key: alice's private collection is not listed, and refused by name
        assert http(cport, "/api/collections", key=bob_ro) == (200, {"collections": []})
        for path in ("/api/collections/private", "/api/collections/private/records"):
            code, body = http(cport, path, key=bob_ro)
            assert code == 403 and '"private"' in body["error"], (path, body)
        q = json.dumps({"collection": "private", "vector": [1.0] * D, "top_k": 2}).encode()
        code, body = http(cport, "/api/search", key=bob_ro, data=q)
        assert code == 403 and '"private"' in body["error"], body
        # the chain pages need only a valid key
        code, body = http(cport, "/api/network", key=bob_ro)
        assert code == 200 and len(body["ledgers"]) == 4, body

        # alice's admin key: listed, browsed and searched (forwarded to the gateway's own VectorStore)
        code, body = http(cport, "/api/collections", key=admin)
        assert code == 200 and [c["name"] for c in body["collections"]] == ["private"], body
        assert http(cport, "/api/collections/private", key=admin)[0] == 200
        code, body = http(cport, "/api/collections/private/records", key=admin)
        assert code == 200 and len(body["records"]) == 5, body
        code, body = http(cport, "/api/search", key=admin, data=q)
        assert code == 200 and len(body["results"]) == 2, body

        # a gateway that lets anonymous callers read public collections: no key sees only those
        (cport2,) = free_ports(1)
        gw2 = Gateway(servers, stubs, net, tmp_path, name="gw-anon", args=(
            "--auth", "true", "--auth-anonymous-reads", "true", "--receipt-allowance", "0",
            "--console-listen", f"127.0.0.1:{cport2}"))
        try:
            assert wait_until(lambda: http(cport2, "/api/collections/private")[0] == 403, timeout=30), \
                http(cport2, "/api/collections/private")
            assert http(cport2, "/api/collections") == (200, {"collections": []})
            assert http(cport2, "/api/network")[0] == 200
            net.submit(signed_tx(lpb, CHAIN, alice, set_access=lpb.SetAccess(magu="private", public_read=True)))
            assert wait_until(lambda: [c["name"] for c in http(cport2, "/api/collections")[1]["collections"]]
                              == ["private"], timeout=30)
            code, body = http(cport2, "/api/collections/private/records")
            assert code == 200 and len(body["records"]) == 5, body
            code, body = http(cport2, "/api/collections", key="muri_" + "1" * 64)
            assert code == 401 and body["error"].startswith("API key: unknown"), body
        finally:
            gw2.close()

        if CHROMIUM is None or websocket is None:
            return
        # the page: without a key it asks for one; with alice's key it lists her collection
        browser = Browser(str(tmp_path))
        url = f"http://127.0.0.1:{cport}/"
        browser.go(url + "#collections")
        browser.wait("document.querySelectorAll('#key-status[data-need=\"true\"]').length === 1")
        assert "missing" in browser.js("document.querySelector('#key-status').textContent")
        browser.js(f"""(() => {{
            document.querySelector('#api-key').value = {json.dumps(admin)};
            document.querySelector('#key-use').click(); }})()""")
        browser.wait("document.querySelectorAll('#colls-table tbody tr').length === 1")
        assert browser.js("document.querySelector('#colls-table tbody th').textContent") == "private"
        # kept for the tab, never in the URL or the field
        assert browser.js(f"sessionStorage.getItem('muri.apikey') === {json.dumps(admin)}")
        assert admin not in browser.js("location.href")
        assert browser.js("document.querySelector('#api-key').value") == ""
        browser.screenshot("auth-collections")
        # forgetting the key: asked again
        browser.js("document.querySelector('#key-forget').click()")
        browser.wait("document.querySelectorAll('#key-status[data-need=\"true\"]').length === 1")
    finally:
        if browser:
            browser.close()
        gw.close()
        net.close()
