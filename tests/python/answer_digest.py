"""The canonical digest of an indexer's search answer (common/cm_answer.h),
written again from its specification so that tests check the C code
against an independent reading: the indexer signs it, gateways verify it."""
import hashlib
import struct
import uuid

DOM_ANSWER = 0x06


def _h(kind, *parts):
    m = hashlib.blake2b(digest_size=32)
    m.update(bytes([DOM_ANSWER, ord(kind)]))
    for p in parts:
        m.update(p)
    return m.digest()


def vector_digest(values):
    values = list(values)
    return _h("V", struct.pack(">I", len(values)), struct.pack("<%df" % len(values), *values))


def binary_digest(b):
    """A binary vector (HAMMING): H('B' || u32 nbytes || the bytes)."""
    return _h("B", struct.pack(">I", len(b)), bytes(b))


def pb_vector_digest(v):
    return binary_digest(v.binary) if len(v.binary) else vector_digest(v.values)


def metadata_digest(meta):
    items = sorted(meta.fields.items(), key=lambda kv: kv[0].encode())
    b = struct.pack("<H", len(items))
    for k, v in items:
        kb = k.encode()
        b += bytes([len(kb)]) + kb
        kind = v.WhichOneof("kind")
        if kind == "string_value":
            sb = v.string_value.encode()
            b += bytes([1]) + struct.pack("<H", len(sb)) + sb
        elif kind == "number_value":
            b += bytes([2]) + struct.pack("<d", v.number_value)
        elif kind == "bool_value":
            b += bytes([3, 1 if v.bool_value else 0])
        else:
            b += bytes([4]) + struct.pack("<q", v.int_value)
    return _h("M", b)


def _value(v):
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        sb = v.string_value.encode()
        return bytes([1]) + struct.pack(">I", len(sb)) + sb
    if kind == "number_value":
        return bytes([2]) + struct.pack(">d", v.number_value)
    if kind == "bool_value":
        return bytes([3, 1 if v.bool_value else 0])
    return bytes([4]) + struct.pack(">q", v.int_value)


def filter_digest(f):
    items = sorted(f.conditions.items(), key=lambda kv: kv[0].encode()) if f is not None else []
    b = struct.pack(">I", len(items))
    for k, c in items:
        kb = k.encode()
        b += struct.pack(">I", len(kb)) + kb
        has = [c.HasField("eq"), len(getattr(c, "in").values) > 0, c.HasField("gt"), c.HasField("gte"), c.HasField("lt"), c.HasField("lte")]
        b += bytes([sum(1 << i for i, x in enumerate(has) if x)])
        if has[0]:
            b += _value(c.eq)
        if has[1]:
            vals = getattr(c, "in").values
            b += struct.pack(">I", len(vals)) + b"".join(_value(v) for v in vals)
        for i, name in enumerate(["gt", "gte", "lt", "lte"]):
            if has[2 + i]:
                b += struct.pack(">d", getattr(c, name))
    return _h("F", b)


def query_digest(values, k, flt=None):
    values = list(values)
    return _h("Q", struct.pack(">I", len(values)), vector_digest(values), struct.pack(">I", k), filter_digest(flt))


def query_digest_bin(b, k, flt=None):
    """A binary query: the dimension in bits, the binary digest of its bytes."""
    return _h("Q", struct.pack(">I", 8 * len(b)), binary_digest(b), struct.pack(">I", k), filter_digest(flt))


def hit_digest(hit):
    vd = pb_vector_digest(hit.vector) if hit.HasField("vector") else vector_digest([])
    return _h("H", uuid.UUID(hit.id).bytes, struct.pack(">QQ", hit.version, hit.seq), struct.pack(">f", hit.distance + 0.0),
              vd, metadata_digest(hit.metadata))


def answer_digest(qd, magu, fragment, resp):
    mb = magu.encode()
    return _h("A", qd, struct.pack(">I", len(mb)) + mb, struct.pack(">IQ", fragment, resp.log_size), resp.root,
              struct.pack(">I", len(resp.hits)), *[hit_digest(x) for x in resp.hits])


DOM_LEAF, DOM_NODE, DOM_ANSWER_BATCH = 0x00, 0x01, 0x1b


def _b2(*parts):
    m = hashlib.blake2b(digest_size=32)
    for p in parts:
        m.update(p)
    return m.digest()


def _root_from_path(leaf, index, size, path):
    """RFC 9162 2.1.3.2: the root the inclusion path leads to, or None when
    the path does not fit the index and size."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _b2(bytes([DOM_NODE]), p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _b2(bytes([DOM_NODE]), r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def signed_message(digest, resp):
    """What resp.signature signs, from the answer's digest: the digest itself
    (batch_size 0), or for answers signed together H(0x1b || 'S' || u64
    batch_size || the root its batch_path leads to), the leaf being
    H(0x00 || digest); None for a path that does not fit."""
    if resp.batch_size == 0:
        return digest
    path = resp.batch_path
    if len(path) % 32:
        return None
    root = _root_from_path(_b2(bytes([DOM_LEAF]), digest), resp.batch_index, resp.batch_size,
                           [path[i:i + 32] for i in range(0, len(path), 32)])
    if root is None:
        return None
    return _b2(bytes([DOM_ANSWER_BATCH]), b"S", struct.pack(">Q", resp.batch_size), root)


def signed_answer_message(qd, magu, fragment, resp):
    """signed_message of the answer's digest for query digest qd."""
    return signed_message(answer_digest(qd, magu, fragment, resp), resp)
