"""The RPC layer seen from a Python grpcio client, with stubs generated from
tests/rpc/echo.proto at test time, against muri-echo-server on loopback."""
import grpc
import pytest

from conftest import CHANNEL_OPTIONS

ECHO = "tests/rpc/muri-echo-server"


@pytest.fixture
def echo(servers, stubs):
    s = servers("echo", ECHO)
    ch = grpc.insecure_channel(s.target, options=CHANNEL_OPTIONS)
    yield s, ch, stubs.echo_pb2_grpc.EchoStub(ch), stubs.echo_pb2
    ch.close()


def test_unary_roundtrip(echo):
    _, _, stub, pb = echo
    reply = stub.Say(pb.EchoRequest(payload=b"from python"), timeout=5)
    assert reply.payload == b"from python"
    big = bytes(range(256)) * 40000  # 10 MB
    assert stub.Say(pb.EchoRequest(payload=big), timeout=20).payload == big


def test_status_code_and_message(echo):
    _, _, stub, pb = echo
    with pytest.raises(grpc.RpcError) as e:
        stub.Say(pb.EchoRequest(fail_code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                fail_message="top_k: 0 is below the minimum 1"), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "top_k: 0 is below the minimum 1"


def test_server_stream(echo):
    _, _, stub, pb = echo
    seqs = [r.seq for r in stub.Count(pb.EchoRequest(count=50, payload=b"x"), timeout=10)]
    assert seqs == list(range(50))


def test_stream_cancel(echo):
    _, _, stub, pb = echo
    it = stub.Count(pb.EchoRequest(count=0, interval_ms=10), timeout=30)
    got = [next(it).seq for _ in range(5)]
    it.cancel()
    assert got == [0, 1, 2, 3, 4]
    assert stub.Say(pb.EchoRequest(payload=b"still here"), timeout=5).payload == b"still here"


def test_deadline_exceeded(echo):
    _, _, stub, pb = echo
    with pytest.raises(grpc.RpcError) as e:
        stub.Say(pb.EchoRequest(sleep_ms=3000), timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unknown_method_is_unimplemented(echo):
    _, ch, _, _ = echo
    call = ch.unary_unary("/muri.test.Echo/Nope")
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/muri.test.Echo/Nope" in e.value.details()


def test_undecodable_request_is_invalid_argument(echo):
    _, ch, _, _ = echo
    call = ch.unary_unary("/muri.test.Echo/Say")
    with pytest.raises(grpc.RpcError) as e:
        call(b"\x0f\xff\xff\xff", timeout=5)  # field 1 with wire type 7: not protobuf
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode" in e.value.details()


def test_oversized_message(servers, stubs):
    s = servers("echo-small", ECHO, "--rpc-max-message", "64k")
    pb = stubs.echo_pb2
    with grpc.insecure_channel(s.target) as ch:
        stub = stubs.echo_pb2_grpc.EchoStub(ch)
        assert stub.Say(pb.EchoRequest(payload=b"a" * 60000), timeout=5).payload == b"a" * 60000
        with pytest.raises(grpc.RpcError) as e:
            stub.Say(pb.EchoRequest(payload=b"a" * 100000), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_sigterm_with_calls_in_flight(servers, stubs):
    s = servers("echo-term", ECHO, "--grace-ms", "5000")
    pb = stubs.echo_pb2
    with grpc.insecure_channel(s.target) as ch:
        stub = stubs.echo_pb2_grpc.EchoStub(ch)
        futures = [stub.Say.future(pb.EchoRequest(sleep_ms=500, payload=b"%d" % i), timeout=10)
                   for i in range(4)]
        import time
        time.sleep(0.2)
        import signal
        assert s.stop(signal.SIGTERM) == 0
        assert [f.result().payload for f in futures] == [b"0", b"1", b"2", b"3"]
    assert "event=stopped" in s.read_log()
