#!/usr/bin/env python3
"""Writes the structured seeds of tests/fuzz/corpus/ that random bytes
rarely reach: signed transactions of each kind on the chain the tx target
checks (muri-fuzz), request messages for the rpc target (behind the byte
that picks their method) and filters with records for the filter target.
The committed corpora hold these plus what fuzzing found; run this again
after a proto change and commit what changes.

    tests/fuzz/make_seeds.py        (from the source root)
"""
import os
import struct
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

from conftest import generate_stubs  # noqa: E402
from ledger_util import Account, signed_tx  # noqa: E402

CHAIN = "muri-fuzz"


def write(target, name, data):
    d = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    out = tempfile.mkdtemp()
    generate_stubs(os.path.join(ROOT, "proto"),
                   ["types.proto", "vectorstore.proto", "indexer.proto", "ledger.proto", "consensus.proto"], out)
    sys.path.insert(0, out)
    import ledger_pb2 as L
    import types_pb2 as T
    import vectorstore_pb2 as V
    import indexer_pb2 as I

    a, b = Account(bytes(32)), Account(bytes([1]) * 32)
    txs = {
        "transfer": dict(transfer=L.Transfer(to=b.pk, amount=5)),
        "register": dict(register_indexer=L.RegisterIndexer(address="127.0.0.1:7000", capacity_bytes=1 << 30)),
        "stake": dict(stake=L.Stake(amount=100)),
        "create_magu": dict(create_magu=L.CreateMagu(
            name="docs", dimension=4, metric=T.COSINE, fragments=2, replication=3, deposit=10,
            index=T.IndexSpec(kind=T.HNSW, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=32))),
        "approve": dict(approve=L.Approve(gateway=b.pk, amount=1000, expiry_height=100)),
        "settle": dict(settle=L.Settle(receipts=[L.SearchReceipt(
            magu="docs", searcher=a.pk, ranked_nodes=[b.pk], fee=1, id=bytes(16))])),
        "commit_root": dict(commit_root=L.CommitRoot(root=T.SignedRoot(
            magu="docs", fragment=0, size=10, root=bytes(32), signer=b.pk, signature=bytes(64),
            chain_id=CHAIN, epoch=1))),
        "failover": dict(failover=L.FailoverRequest()),
        "drop_magu": dict(drop_magu=L.DropMagu(name="docs")),
        "create_api_key": dict(create_api_key=L.CreateApiKey(
            key_hash=bytes(32), scope=L.SCOPE_WRITE, expiry_height=50, collections=["docs"], label="ci")),
        "revoke_api_key": dict(revoke_api_key=L.RevokeApiKey(key_hash=bytes(32))),
        "set_access": dict(set_access=L.SetAccess(magu="docs", readers=[b.pk], writers=[a.pk], public_read=True)),
    }
    for name, payload in txs.items():
        stx = signed_tx(L, CHAIN, a, **payload)
        write("tx", name, stx.SerializeToString())

    services = [V.DESCRIPTOR.services_by_name["VectorStore"], I.DESCRIPTOR.services_by_name["Indexer"],
                L.DESCRIPTOR.services_by_name["Ledger"]]
    index = {}
    k = 0
    for s in services:
        for m in s.methods:
            index[(s.name, m.name)] = k
            k += 1
    total = k + len(__import__("consensus_pb2").DESCRIPTOR.services_by_name["Consensus"].methods)
    flt = T.Filter(conditions={"label": T.Condition(eq=T.Value(string_value="Sneaker")),
                               "year": T.Condition(gte=1990, lt=2000),
                               "tag": T.Condition(**{"in": T.ValueList(values=[T.Value(int_value=3),
                                                                                 T.Value(bool_value=True)])})})
    vec = T.Vector(values=[0.5, -1.0, 2.0, 0.0])
    meta = T.Metadata(fields={"label": T.Value(string_value="Sneaker"), "year": T.Value(int_value=1995)})
    reqs = {
        ("VectorStore", "Search"): V.SearchRequest(collection="docs", query_vector=vec, top_k=10, filter=flt),
        ("VectorStore", "SearchBatch"): V.SearchBatchRequest(collection="docs", query_vectors=[vec, vec],
                                                             top_k=5, filter=flt),
        ("VectorStore", "Insert"): V.InsertRequest(collection="docs", vectors=[vec], metadata=[meta]),
        ("Indexer", "Search"): I.LocalSearchRequest(magu="docs", fragment=1, query=vec, top_k=3, filter=flt),
        ("VectorStore", "Scroll"): V.ScrollRequest(collection="docs", page_size=20, filter=flt,
                                                  cursor="c1" + "1b4e28ba2fa141d2883f0016d3cca427"),
        ("Indexer", "Scroll"): I.LocalScrollRequest(magu="docs", fragment=1, limit=20, filter=flt,
                                                    after_id="1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
        ("Ledger", "SubmitTransaction"): L.SubmitRequest(
            tx=signed_tx(L, CHAIN, a, transfer=L.Transfer(to=b.pk, amount=1))),
    }
    for (svc, meth), msg in reqs.items():
        sel = index[(svc, meth)]
        assert sel < total < 256
        write("rpc", f"{svc}-{meth}", bytes([sel]) + msg.SerializeToString())

    records = [meta, T.Metadata(fields={"label": T.Value(string_value="Sandal"), "tag": T.Value(int_value=3)}),
               T.Metadata(fields={"year": T.Value(number_value=1990.0), "tag": T.Value(bool_value=True)})]
    fb = flt.SerializeToString()
    data = struct.pack("<H", len(fb)) + fb
    for r in records:
        rb = r.SerializeToString()
        data += bytes([len(rb)]) + rb
    write("filter", "three-conditions", data)


if __name__ == "__main__":
    main()
