"""Hostile clients at a public port, against each of the three services
(they share the RPC layer): thousands of idle connections, calls that
never finish sending, messages over the size limit, and the gateway's
oversized batches. Each gets a clear status or a closed connection, the
service keeps answering others, and its memory stays bounded."""
import socket
import struct
import time

import grpc
import pytest

from muri_util import wait_until
from test_services import SERVICES, service_args

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    """HPACK: a literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def open_call(sock, stream, path):
    """Sends a call's headers and a message prefix promising 100 bytes, then
    5 of them: a call that never finishes sending."""
    headers = b"".join(literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"), ("te", "trailers")])
    sock.sendall(frame(1, 0x4, stream, headers) + frame(0, 0, stream, b"\x00" + struct.pack(">I", 100) + b"abcde"))


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(PREFACE + frame(4, 0, 0))
    return s


def closed_by_peer(sock):
    """True once the server has closed the connection (EOF or reset)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def status_ok(stubs, mod, stub_name, target):
    with grpc.insecure_channel(target) as ch:
        stub = getattr(getattr(stubs, mod), stub_name)(ch)
        return stub.Status(stubs.types_pb2.StatusRequest(), timeout=10).service


@pytest.mark.parametrize("name,exe,mod,stub_name,full", SERVICES)
def test_idle_connections_are_closed_and_memory_stays_bounded(servers, stubs, tmp_path, name, exe, mod,
                                                              stub_name, full):
    s = servers(name, exe, *service_args(name, tmp_path, tmp_path / f"{name}.key"), "--rpc-idle-ms", "2000")
    assert status_ok(stubs, mod, stub_name, s.target) == name
    before = rss_kib(s.proc.pid)
    socks = [connect(s.rpc_port) for _ in range(2000)]
    # the service still answers a well-behaved client among them
    assert status_ok(stubs, mod, stub_name, s.target) == name
    held = rss_kib(s.proc.pid)
    # every idle connection is closed by the server (rpc_idle_ms)
    assert wait_until(lambda: all(closed_by_peer(x) for x in socks), timeout=60), \
        f"{sum(not closed_by_peer(x) for x in socks)} of 2000 idle connections still open"
    for x in socks:
        x.close()
    print(f"{name}: RSS {before} KiB idle, {held} KiB with 2000 idle connections")
    # bounded: well under the 1 MiB a connection could buffer
    assert held - before < 2000 * 256, f"RSS grew by {held - before} KiB for 2000 idle connections"
    assert s.proc.poll() is None


@pytest.mark.parametrize("name,exe,mod,stub_name,full", SERVICES)
def test_calls_that_never_finish_sending_are_bounded(servers, stubs, tmp_path, name, exe, mod, stub_name, full):
    s = servers(name, exe, *service_args(name, tmp_path, tmp_path / f"{name}.key"),
                "--rpc-conn-calls", "8", "--rpc-conn-age-ms", "2000", "--rpc-conn-age-grace-ms", "1000")
    socks = []
    for _ in range(20):
        x = connect(s.rpc_port)
        for k in range(50):  # far more than rpc_conn_calls: the rest are refused
            open_call(x, 1 + 2 * k, f"/{full}/Status")
        socks.append(x)
    # the workers are not tied up by them
    assert status_ok(stubs, mod, stub_name, s.target) == name
    # and a connection that holds calls open is closed after rpc_conn_age_ms + grace
    assert wait_until(lambda: all(closed_by_peer(x) for x in socks), timeout=60), \
        "connections with never-ending calls still open"
    for x in socks:
        x.close()
    assert status_ok(stubs, mod, stub_name, s.target) == name


# a Status request carrying 2 MiB of an unknown field (1000, length-delimited)
BIG_STATUS = b"\xfa\x3e" + b"\x80\x80\x80\x01" + b"x" * (2 << 20)


def refused_big_status(target, full):
    """The error of a raw Status call carrying BIG_STATUS."""
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        call = ch.unary_unary(f"/{full}/Status", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            call(BIG_STATUS, timeout=10)
    return e.value


@pytest.mark.parametrize("name,exe,mod,stub_name,full", SERVICES)
def test_a_message_over_the_limit_is_refused(servers, stubs, tmp_path, name, exe, mod, stub_name, full):
    s = servers(name, exe, *service_args(name, tmp_path, tmp_path / f"{name}.key"), "--rpc-max-message", "1M")
    err = refused_big_status(s.target, full)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert "larger than max" in err.details(), err.details()
    assert status_ok(stubs, mod, stub_name, s.target) == name


@pytest.mark.parametrize("name,exe,mod,stub_name,full", SERVICES[:1])
def test_a_request_that_decodes_past_the_call_budget_is_refused(servers, stubs, tmp_path, name, exe, mod,
                                                                 stub_name, full):
    # within the message limit, but its decoded copy needs 2 MiB
    s = servers(name, exe, *service_args(name, tmp_path, tmp_path / f"{name}.key"),
                "--rpc-max-message", "8M", "--rpc-call-memory", "1M")
    err = refused_big_status(s.target, full)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert "rpc_call_memory" in err.details(), err.details()
    assert status_ok(stubs, mod, stub_name, s.target) == name


def test_gateway_refuses_huge_batches_by_count_before_anything_else(servers, stubs, tmp_path):
    from chain_util import ChainNet
    from gateway_util import Gateway
    net = ChainNet(servers, stubs, tmp_path, n_ledger=1, n_indexers=1)
    gw = Gateway(servers, stubs, net, tmp_path)
    s = gw.server
    V, T = stubs.vectorstore_pb2, stubs.types_pb2
    empty = [T.Vector()] * 1000000
    before = rss_kib(s.proc.pid)
    with grpc.insecure_channel(s.target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        stub = stubs.vectorstore_pb2_grpc.VectorStoreStub(ch)
        cases = [
            (stub.SearchBatch, V.SearchBatchRequest(collection="docs", query_vectors=empty, top_k=10), "query_vectors"),
            (stub.Insert, V.InsertRequest(collection="docs", vectors=empty), "vectors"),
        ]
        for call, req, field in cases:
            with pytest.raises(grpc.RpcError) as e:
                call(req, timeout=30)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
            assert field in e.value.details(), e.value.details()
    after = rss_kib(s.proc.pid)
    print(f"gateway RSS {before} KiB before, {after} KiB after two batches of 10^6 empty vectors")
    assert s.proc.poll() is None
    gw.close()
    net.close()

