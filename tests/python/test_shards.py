"""The suite's shards (shards.py): every test file runs in exactly one
shard whatever the shard count, new files included; the split is the same
on every call; shards end close together; a bad --shard is refused."""
import glob
import os

import pytest

import shards

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_file_in_exactly_one_shard():
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "test_*.py")))
    files.append("test_not_weighed_yet.py")
    for n in (1, 2, 3, 5):
        where = shards.assign(files, n)
        assert sorted(where) == sorted(files)
        assert set(where.values()) <= set(range(n))
        assert shards.assign(list(reversed(files)), n) == where


def test_shards_balanced():
    w = shards.WEIGHTS
    where = shards.assign(list(w), 2)
    load = [sum(w[f] for f in where if where[f] == k) for k in range(2)]
    # longest processing time first: the shards differ by at most the heaviest file
    assert abs(load[0] - load[1]) <= max(w.values()), load


class Item:
    def __init__(self, path):
        self.fspath = path


def test_select_keeps_a_shard_and_refuses_bad_specs():
    items = [Item(f"/x/{f}") for f in ("test_a.py", "test_a.py", "test_b.py", "test_c.py")]
    assert shards.select(items, "") == (items, [])
    kept = [shards.select(items, f"{i}/3")[0] for i in (1, 2, 3)]
    assert sorted(id(x) for k in kept for x in k) == sorted(id(x) for x in items)
    for bad, words in (("2", "not i/n"), ("0/2", "1..n"), ("3/2", "1..n"), ("a/b", "not i/n")):
        with pytest.raises(ValueError) as e:
            shards.select(items, bad)
        assert words in str(e.value) and "--shard" in str(e.value)


def test_shards_pick_ports_in_disjoint_slices():
    import ledger_util
    saved = ledger_util.PORT_SLICE
    try:
        got = []
        for k in range(2):
            ledger_util.PORT_SLICE = (k, 2)
            got.append(set(ledger_util.free_ports(50)))
        assert got[0] and got[1] and max(got[0]) < min(got[1]), (max(got[0]), min(got[1]))
        assert min(got[0]) >= 10000
    finally:
        ledger_util.PORT_SLICE = saved
