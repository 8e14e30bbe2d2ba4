"""Scroll benchmark: glove-100-angular-10k (10,000 x 100, cosine, FLAT)
in a collection of 4 fragments x 3 replicas over a ChainNet (4 ledger
replicas, 3 indexers), then a whole scroll through the gateway at page
sizes 100 and 1,000, without and with vectors, and with a filter that
matches a third of the records. Prints records/s and the p50 and max of a
page's latency for each, and checks every scroll returned every record
(or every matching one) once.

Not part of the test suite (the file name does not match test_*.py); run
with /usr/bin/python3 -m pytest -q -s tests/python/bench_scroll.py from
build/, with the environment the python suite gets."""
import time

import numpy as np

from chain_util import ChainNet
from gateway_util import Gateway
from muri_util import dataset

COLL = "scroll-bench"


def test_scroll_bench(servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path)
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "60000"))
    try:
        base, _, _, _ = dataset("glove-100-angular-10k")
        stub = gw.stub
        stub.CreateCollection(vpb.CreateCollectionRequest(
            name=COLL, dimension=100, metric=tpb.COSINE, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=4,
            replication=3), timeout=90)
        ids = []
        for s in range(0, len(base), 2000):
            r = stub.Insert(vpb.InsertRequest(
                collection=COLL, consistency_level=tpb.QUORUM,
                vectors=[tpb.Vector(values=list(map(float, v))) for v in base[s:s + 2000]],
                metadata=[tpb.Metadata(fields={"third": tpb.Value(int_value=(s + i) % 3)})
                          for i in range(len(base[s:s + 2000]))]), timeout=120)
            assert r.status == vpb.SUCCESS, r.message
            ids += r.vector_ids
        every = sorted(ids)
        third = {ids[i] for i in range(len(ids)) if i % 3 == 0}
        flt = tpb.Filter(conditions={"third": tpb.Condition(eq=tpb.Value(int_value=0))})
        for page, vectors, f in [(100, False, None), (1000, False, None), (1000, True, None), (1000, False, flt)]:
            got, lat, cursor = [], [], ""
            t0 = time.monotonic()
            while True:
                t = time.monotonic()
                r = stub.Scroll(vpb.ScrollRequest(collection=COLL, page_size=page, cursor=cursor,
                                                  include_vectors=vectors, filter=f), timeout=60)
                lat.append((time.monotonic() - t) * 1000)
                got += [x.id for x in r.records]
                if not r.next_cursor:
                    break
                cursor = r.next_cursor
            took = time.monotonic() - t0
            assert len(got) == len(set(got))
            # lower-case hex UUIDs sort as their bytes do: a scroll comes back in that order
            assert got == ([x for x in every if x in third] if f else every)
            print(f"scroll page {page:5d} vectors {int(vectors)} filter {'1/3' if f else 'none'}: "
                  f"{len(got)} records in {len(lat)} pages, {took:.2f} s, {len(got) / took:.0f} records/s, "
                  f"page p50 {np.percentile(lat, 50):.1f} ms max {max(lat):.1f} ms")
    finally:
        gw.close()
        net.close()
