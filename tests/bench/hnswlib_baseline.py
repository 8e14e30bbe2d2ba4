"""hnswlib baseline for the indexer bench (never a dependency of muri).

Builds an hnswlib cosine index over base.fvecs of a dataset with the given
threads, then for each ef searches the queries one per call from T threads
and prints one line per ef: "hnswlib <ef> <recall@10> <QPS> <CPU-QPS> <build
seconds> <build CPU seconds>" (CPU-QPS: queries per CPU-second of the
searching threads times their number).
    hnswlib_baseline.py DATASET_DIR --m 16 --ef-construction 200 --threads 2
                        --queries N --ef 64,128,256
"""
import argparse
import os
import threading
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype, limit=0):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    if limit:
        rows = rows[:limit]
    return np.ascontiguousarray(rows.view(dtype) if dtype == np.float32 else rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--query-ids", default="", help="file of the query row numbers to measure, one a line")
    ap.add_argument("--rows", type=int, default=0, help="cut the base to its first rows (exact truth recomputed)")
    ap.add_argument("--ef", default="64,96,128,192,256")
    a = ap.parse_args()
    base = read_vecs(os.path.join(a.dataset, "base.fvecs"), np.float32, a.rows)
    queries = read_vecs(os.path.join(a.dataset, "query.fvecs"), np.float32, a.queries)
    truth = read_vecs(os.path.join(a.dataset, "groundtruth.ivecs"), np.int32, a.queries)[:, :10]
    if a.query_ids:
        with open(a.query_ids) as f:
            pick = np.array([int(x) for x in f.read().split()], dtype=np.int64)
        queries, truth = np.ascontiguousarray(queries[pick]), truth[pick]
    if a.rows:  # the exact top 10 over the cut base, cosine
        bn = base / np.linalg.norm(base, axis=1, keepdims=True)
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        sim = qn @ bn.T
        truth = np.argpartition(-sim, 10, axis=1)[:, :10]
    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], M=a.m, ef_construction=a.ef_construction, random_seed=100)
    t0, c0 = time.monotonic(), time.process_time()
    index.add_items(base, np.arange(base.shape[0]), num_threads=a.threads)
    build_s, build_cpu = time.monotonic() - t0, time.process_time() - c0
    nq = queries.shape[0]
    for ef in (int(e) for e in a.ef.split(",")):
        index.set_ef(ef)
        labels = np.zeros((nq, 10), dtype=np.int64)

        cpu = [0.0] * a.threads

        def work(t, lo, hi):
            c = time.thread_time()
            for i in range(lo, hi):
                labels[i], _ = index.knn_query(queries[i : i + 1], k=10, num_threads=1)
            cpu[t] = time.thread_time() - c

        ts = [threading.Thread(target=work, args=(t, nq * t // a.threads, nq * (t + 1) // a.threads))
              for t in range(a.threads)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        qps = nq / (time.monotonic() - t0)
        hits = sum(len(set(labels[i]) & set(truth[i])) for i in range(nq))
        cpu_qps = nq * a.threads / sum(cpu)
        print(f"hnswlib {ef} {hits / (nq * 10):.4f} {qps:.0f} {cpu_qps:.0f} {build_s:.1f} {build_cpu:.1f}", flush=True)


if __name__ == "__main__":
    main()
