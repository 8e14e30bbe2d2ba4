"""Replicas answer alike: three indexers holding one HNSW fragment of 5,000
glove vectors (the ledger configures them; writes at ALL through the
primary), once each has indexed the whole log, give identical answers (ids,
versions and distances, rank by rank) to 1,000 queries through their Search
RPCs, unfiltered and filtered, and each answer says the same log size. Each
replica builds its index on its own from the log: equal log prefixes must
give equal indexes (batch boundaries at multiples of the index batch, levels
drawn from the position, one adding thread)."""
import numpy as np
import pytest

from chain_util import CHAIN, ChainNet, fragment_configs
from ledger_util import signed_tx
from muri_util import dataset, wait_until
from test_indexer import records, wait_indexed, write

MAGU = "agree"


@pytest.fixture
def chain(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path)
    yield n
    n.close()


def answers(ix, ipb, queries, flt=None, k=10):
    out = []
    for q in queries:
        req = ipb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=k)
        req.query.values.extend(q.tolist())
        if flt is not None:
            req.filter.CopyFrom(flt)
        r = ix.stub.Search(req, timeout=30)
        out.append((r.log_size, [(h.id, h.version, np.float32(h.distance)) for h in r.hits]))
    return out


def test_three_replicas_answer_alike(chain):
    net, pb, t = chain, chain.pb, chain.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    base, queries, _, words = dataset("glove-100-angular-10k")
    base = base[:5000]  # enough for 10 index batches; keeps the three builds short
    # a small index batch, so the index is built in many batches on each replica
    spec = t.IndexSpec(kind=t.HNSW, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=48, index_batch=500)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=100, metric=t.COSINE, index=spec,
                                                   fragments=1, replication=3, deposit=1000)))
    cfg = fragment_configs(net, MAGU)[0]
    assert len(cfg.replicas) == 3
    primary = net.by_pk(cfg.primary)
    sch = ipb.FragmentSchema(dimension=100, metric=t.COSINE, index=spec)
    chunk = 1000
    for start in range(0, len(base), chunk):
        vs = base[start:start + chunk]
        metas = [{"len": len(words[start + i])} for i in range(len(vs))]
        recs = records(ipb, vs, metas)

        def acked():
            try:
                return write(primary, MAGU, 0, cfg.epoch, recs, sch, t.ALL, timeout_ms=20000)
            except Exception:  # noqa: BLE001 - the configuration may not be applied yet
                return None
        r = wait_until(acked, timeout=60)
        assert r and r.level_achieved == t.ALL and r.log_size == start + len(vs)
    reps = [net.by_pk(r.pubkey) for r in cfg.replicas]
    for ix in reps:
        assert wait_indexed(ix), "a replica did not index the whole log"
    flt = t.Filter()
    cond = flt.conditions["len"]
    cond.gte = 4
    cond.lte = 6
    for name, f in (("unfiltered", None), ("len in 4..6", flt)):
        got = [answers(ix, ipb, queries[:1000], f) for ix in reps]
        sizes = {s for a in got for s, _ in a}
        assert sizes == {len(base)}, sizes
        differ = sum(1 for i in range(1000) if not (got[0][i][1] == got[1][i][1] == got[2][i][1]))
        print(f"{name}: {differ} of 1000 queries answered differently by the three replicas")
        assert differ == 0
