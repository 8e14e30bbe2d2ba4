"""Who may do what at a gateway with auth on, end to end over a ChainNet (4
ledger replicas, 3 indexers) and two gateways following it: API keys are
created and revoked by their account's transactions and every gateway
learns them from the chain; a call without a credential is UNAUTHENTICATED;
a read-only key cannot write (and nothing is written); a stranger cannot
search a private collection nor see it listed; a public collection can be
searched anonymously where the gateway allows it; a revoked key is refused
by the second gateway once it has applied the revoking block; a signed call
is accepted once and its replay refused; searches are paid from the
caller's own allowance, and a caller with none gets RESOURCE_EXHAUSTED."""
import hashlib
import os
import time

import grpc

from chain_util import CHAIN, ChainNet
from gateway_util import Gateway, code_of
from ledger_util import Account, signed_tx
from muri_util import wait_until
from sodium_keys import sign

FEE = 7
D = 4
DOM_API_KEY = 0x15
DOM_CALL = 0x16


def key_hash(key):
    return hashlib.blake2b(bytes([DOM_API_KEY]) + key.encode(), digest_size=32).digest()


def new_key():
    return "muri_" + os.urandom(32).hex()


def bearer(key):
    return (("authorization", f"Bearer {key}"),)


def vec(tpb, x):
    return tpb.Vector(values=[float(x)] * D)


def chain_height(gw, stubs):
    st = gw.stub.Status(stubs.types_pb2.StatusRequest(), timeout=10)
    return int(st.details.get("chain_height", "0"))


def signed_call_md(acc, method, body, ts=None, nonce=None):
    """Metadata of a call signed by acc (cm_api_key.h)."""
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = nonce or os.urandom(16)
    bh = hashlib.blake2b(bytes([DOM_CALL]) + body, digest_size=32).digest()
    msg = (bytes([DOM_CALL]) + method.encode() + b"\0" + CHAIN.encode() + b"\0" + bh + ts.to_bytes(8, "big") +
           nonce)
    digest = hashlib.blake2b(msg, digest_size=32).digest()
    return (("x-muri-account", acc.pk.hex()), ("x-muri-timestamp", str(ts)), ("x-muri-nonce", nonce.hex()),
            ("x-muri-signature", sign(acc.sk, digest).hex()))


def test_auth_end_to_end(servers, stubs, tmp_path):
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path, params={"search_fee": FEE})
    alice, bob = Account(), Account()
    ka, kr, kb = new_key(), new_key(), new_key()
    for who in (alice, bob):
        net.submit(signed_tx(lpb, CHAIN, net.owner, transfer=lpb.Transfer(to=who.pk, amount=100_000)))
    net.submit(signed_tx(lpb, CHAIN, alice, create_api_key=lpb.CreateApiKey(
        key_hash=key_hash(ka), scope=lpb.SCOPE_ADMIN, label="alice admin")))
    net.submit(signed_tx(lpb, CHAIN, alice, create_api_key=lpb.CreateApiKey(
        key_hash=key_hash(kr), scope=lpb.SCOPE_READ, label="alice read-only")))
    net.submit(signed_tx(lpb, CHAIN, bob, create_api_key=lpb.CreateApiKey(
        key_hash=key_hash(kb), scope=lpb.SCOPE_ADMIN)))
    # alice lets the first gateway (its node key is the genesis gateway's) charge her searches
    net.submit(signed_tx(lpb, CHAIN, alice, approve=lpb.Approve(gateway=net.gwacc.pk, amount=10_000,
                                                                expiry_height=1_000_000)))
    gw = Gateway(servers, stubs, net, tmp_path, args=(
        "--auth", "true", "--spot-permille", "0", "--receipt-batch", "1", "--receipt-flush-ms", "200",
        "--default-timeout-ms", "20000"))
    gw2 = Gateway(servers, stubs, net, tmp_path, name="gw2", args=(
        "--auth", "true", "--auth-anonymous-reads", "true", "--spot-permille", "0", "--receipt-allowance", "0"))
    try:
        # no credential at all: UNAUTHENTICATED, saying so
        code, msg = code_of(lambda: gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "no credential" in msg, msg
        code, msg = code_of(lambda: gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name="private", dimension=D, metric=tpb.L2), timeout=10))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "no credential" in msg, msg
        code, msg = code_of(lambda: gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10,
                                                            metadata=bearer("muri_" + "0" * 64)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "API key: unknown" in msg, msg
        code, msg = code_of(lambda: gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10,
                                                            metadata=(("authorization", "Basic x"),)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in msg, msg

        # alice's admin key creates two collections, which alice owns
        for name in ("private", "public"):
            gw.stub.CreateCollection(vpb.CreateCollectionRequest(name=name, dimension=D, metric=tpb.L2,
                                                                 fragments=1, replication=1),
                                     timeout=90, metadata=bearer(ka))
            gw.stub.Insert(vpb.InsertRequest(collection=name, vectors=[vec(tpb, i) for i in range(5)],
                                             consistency_level=tpb.ALL), timeout=30, metadata=bearer(ka))
        acc = net.lstubs[0].GetAccess(lpb.AccessRequest(magu="private"), timeout=10)
        assert acc.owner == alice.pk and not acc.public_read

        # the read-only key (the api-key alias) cannot write, and nothing is written
        before = gw.stub.DescribeCollection(vpb.DescribeCollectionRequest(name="private"), timeout=10,
                                            metadata=(("api-key", kr),)).vector_count
        assert before == 5
        code, msg = code_of(lambda: gw.stub.Insert(vpb.InsertRequest(
            collection="private", vectors=[vec(tpb, 9)], consistency_level=tpb.ALL), timeout=30,
            metadata=(("api-key", kr),)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "read-only" in msg and "write" in msg, msg
        after = gw.stub.DescribeCollection(vpb.DescribeCollectionRequest(name="private"), timeout=10,
                                           metadata=bearer(ka)).vector_count
        assert after == before

        # bob, a stranger to "private": refused, naming the collection and the permission; not listed
        code, msg = code_of(lambda: gw.stub.Search(vpb.SearchRequest(
            collection="private", query_vector=vec(tpb, 1), top_k=2), timeout=30, metadata=bearer(kb)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and '"private"' in msg and "read" in msg, msg
        code, msg = code_of(lambda: gw.stub.Scroll(vpb.ScrollRequest(collection="private"), timeout=30,
                                                   metadata=bearer(kb)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and '"private"' in msg and "read" in msg, msg
        code, msg = code_of(lambda: gw.stub.Scroll(vpb.ScrollRequest(collection="private"), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "no credential" in msg, msg
        assert len(gw.stub.Scroll(vpb.ScrollRequest(collection="private"), timeout=30,
                                  metadata=bearer(kr)).records) == 5
        listed = gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=30, metadata=bearer(kb))
        assert [c.name for c in listed.collections] == []
        listed = gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=30, metadata=bearer(ka))
        assert sorted(c.name for c in listed.collections) == ["private", "public"]

        # "public" is made public-read by its owner; the second gateway lets anonymous callers search it
        r = net.submit(signed_tx(lpb, CHAIN, alice, set_access=lpb.SetAccess(magu="public", public_read=True)))
        assert wait_until(lambda: chain_height(gw2, stubs) >= r.height, timeout=30)
        res = gw2.stub.Search(vpb.SearchRequest(collection="public", query_vector=vec(tpb, 1), top_k=2),
                              timeout=30)
        assert len(res.results) == 2
        code, msg = code_of(lambda: gw2.stub.Search(vpb.SearchRequest(
            collection="private", query_vector=vec(tpb, 1), top_k=2), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED, msg
        code, msg = code_of(lambda: gw2.stub.Insert(vpb.InsertRequest(
            collection="public", vectors=[vec(tpb, 9)]), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED, msg
        assert [c.name for c in gw2.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=30).collections] \
            == ["public"]
        # the first gateway allows no anonymous reads
        code, msg = code_of(lambda: gw.stub.Search(vpb.SearchRequest(
            collection="public", query_vector=vec(tpb, 1), top_k=2), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED, msg

        # revocation: the read-only key works at the second gateway until the block that revokes it
        gw2.stub.Search(vpb.SearchRequest(collection="private", query_vector=vec(tpb, 1), top_k=2), timeout=30,
                        metadata=bearer(kr))
        r = net.submit(signed_tx(lpb, CHAIN, alice, revoke_api_key=lpb.RevokeApiKey(key_hash=key_hash(kr))))
        assert wait_until(lambda: chain_height(gw2, stubs) >= r.height, timeout=30)
        code, msg = code_of(lambda: gw2.stub.Search(vpb.SearchRequest(
            collection="private", query_vector=vec(tpb, 1), top_k=2), timeout=30, metadata=bearer(kr)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and f"revoked at height {r.height}" in msg, msg
        keys = net.lstubs[0].ListApiKeys(lpb.ApiKeysRequest(account=alice.pk), timeout=10).keys
        assert {k.label: k.revoked_height for k in keys} == {"alice admin": 0, "alice read-only": r.height}

        # a key past its expiry height is refused, saying so
        ke = new_key()
        h0 = chain_height(gw, stubs)
        net.submit(signed_tx(lpb, CHAIN, alice, create_api_key=lpb.CreateApiKey(
            key_hash=key_hash(ke), scope=lpb.SCOPE_READ, expiry_height=h0 + 30)))
        assert wait_until(lambda: chain_height(gw, stubs) > h0 + 30, timeout=60)
        code, msg = code_of(lambda: gw.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10,
                                                            metadata=bearer(ke)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and f"API key: expired at height {h0 + 30}" in msg, msg

        # a signed call: accepted once, its replay and a stale one refused
        req = vpb.SearchRequest(collection="private", query_vector=vec(tpb, 2), top_k=2)
        md = signed_call_md(alice, "/muri.v1.VectorStore/Search", req.SerializeToString())
        assert len(gw.stub.Search(req, timeout=30, metadata=md).results) == 2
        code, msg = code_of(lambda: gw.stub.Search(req, timeout=30, metadata=md))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "replayed" in msg, msg
        stale = signed_call_md(alice, "/muri.v1.VectorStore/Search", req.SerializeToString(),
                               ts=int(time.time() * 1000) - 120_000)
        code, msg = code_of(lambda: gw.stub.Search(req, timeout=30, metadata=stale))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "stale" in msg, msg
        other = vpb.SearchRequest(collection="private", query_vector=vec(tpb, 3), top_k=2)
        forged = signed_call_md(alice, "/muri.v1.VectorStore/Search", req.SerializeToString())
        code, msg = code_of(lambda: gw.stub.Search(other, timeout=30, metadata=forged))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "does not verify" in msg, msg

        # searches are charged to the caller: alice's receipts debit alice
        bal0 = net.lstubs[0].GetAccount(lpb.AccountRequest(address=alice.pk), timeout=10).balance
        for i in range(3):
            gw.stub.Search(vpb.SearchRequest(collection="private", query_vector=vec(tpb, i), top_k=2),
                           timeout=30, metadata=bearer(ka))

        def alice_receipts():
            return net.lstubs[0].GetReceipts(lpb.ReceiptsRequest(searcher=alice.pk, limit=100), timeout=10).receipts
        assert wait_until(lambda: len(alice_receipts()) >= 4, timeout=60)  # 3 + the signed call's
        assert all(x.fee == FEE and x.gateway == net.gwacc.pk for x in alice_receipts())
        assert wait_until(lambda: net.lstubs[0].GetAccount(lpb.AccountRequest(address=alice.pk), timeout=10)
                          .balance <= bal0 - 3 * FEE, timeout=30)
        # bob may read "private" now, but approved this gateway nothing
        net.submit(signed_tx(lpb, CHAIN, alice, set_access=lpb.SetAccess(magu="private", readers=[bob.pk])))
        def bob_reads():
            try:
                gw.stub.DescribeCollection(vpb.DescribeCollectionRequest(name="private"), timeout=10,
                                           metadata=bearer(kb))
                return True
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
                return False
        assert wait_until(bob_reads, timeout=30)
        code, msg = code_of(lambda: gw.stub.Search(vpb.SearchRequest(
            collection="private", query_vector=vec(tpb, 1), top_k=2), timeout=30, metadata=bearer(kb)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "allowance" in msg, msg
        # and a reader still cannot write
        code, msg = code_of(lambda: gw.stub.Insert(vpb.InsertRequest(
            collection="private", vectors=[vec(tpb, 9)]), timeout=30, metadata=bearer(kb)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "it is a reader" in msg, msg
    finally:
        gw.close()
        gw2.close()
        net.close()
