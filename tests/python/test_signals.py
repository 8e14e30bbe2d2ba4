"""Stop signals however they arrive. Each service binary runs in its own
process group and gets SIGINT through the group (as a terminal's Ctrl-C
delivers it), SIGTERM twice in a row, SIGINT to the group with SIGTERM right
behind it (Ctrl-C under a supervisor that also sends SIGTERM), and, for the
indexer, a second SIGTERM while a call in flight holds the drain open. Each
time the service must drain and exit 0 with `stopping` and `stopped` logged;
the ledger keeps its committed transfers; the indexer keeps every write it
acknowledged, even while it was stopping, and reopens the index it saved.
`muri devnet` under a pseudo-terminal stops cleanly on the terminal's
interrupt character and leaves no process behind."""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import uuid

import grpc
import numpy as np
import pytest

from conftest import BUILD, CHANNEL_OPTIONS
from ledger_util import Account, free_ports, make_genesis, signed_tx
from muri_util import wait_until
from sodium_keys import key_file_public, write_key_file

STOP_TIMEOUT = 60  # a hung service fails the test instead of hanging it


class Service:
    """A service binary in a process group of its own; one log file over its
    restarts, each run's part read back separately."""

    def __init__(self, name, exe_rel, args, workdir):
        self.name = name
        self.dir = workdir
        self.port_file = os.path.join(workdir, "ports")
        self.log_path = os.path.join(workdir, "log")
        self.args = list(args)
        self.exe = os.path.join(BUILD, exe_rel)
        self.proc = None
        self.rpc_port = None
        self.log_from = 0

    def start(self):
        port = self.rpc_port or 0  # a restart keeps its port: peers' configurations name it
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        cmd = [self.exe, "--listen", f"127.0.0.1:{port}", "--metrics-listen", "",
               "--port-file", self.port_file] + self.args
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                         process_group=0)
        end = time.time() + 30
        while time.time() < end and not os.path.exists(self.port_file) and self.proc.poll() is None:
            time.sleep(0.01)
        assert os.path.exists(self.port_file), f"{self.name} did not start:\n{self.run_log()}"
        ports = dict(line.strip().split("=", 1) for line in open(self.port_file) if "=" in line)
        self.rpc_port = int(ports["rpc_port"])
        assert os.getpgid(self.proc.pid) == self.proc.pid

    @property
    def target(self):
        return f"127.0.0.1:{self.rpc_port}"

    def run_log(self):
        with open(self.log_path, "r", errors="replace") as f:
            f.seek(self.log_from)
            return f.read()

    def wait_log(self, pattern, timeout=30):
        return wait_until(lambda: re.search(pattern, self.run_log(), re.M), timeout=timeout, interval=0.001)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def sigint_to_group(s):
    os.killpg(s.proc.pid, signal.SIGINT)


def sigterm_twice(s):
    os.kill(s.proc.pid, signal.SIGTERM)
    os.kill(s.proc.pid, signal.SIGTERM)


def sigint_to_group_then_sigterm(s):
    os.killpg(s.proc.pid, signal.SIGINT)
    os.kill(s.proc.pid, signal.SIGTERM)


WAYS = [(sigint_to_group, "INT"), (sigterm_twice, "TERM"), (sigint_to_group_then_sigterm, "INT|TERM")]


def events(log):
    return [m.group(1) for m in re.finditer(r"^ts=\S+ level=\w+ svc=\w+ event=(\w+)", log, re.M)]


def assert_clean_stop(s, how, first_sig):
    """The process exited 0 after logging stopping (for the first signal),
    then nothing but ignored signals and its own closing events, then stopped."""
    try:
        rc = s.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        s.kill()
        raise AssertionError(f"{s.name} ({how}) did not stop:\n{s.run_log()}")
    log = s.run_log()
    assert rc == 0, f"{s.name} ({how}): exit status {rc} (negative: killed by that signal)\n{log}"
    ev = events(log)
    assert ev.count("stopping") == 1 and ev[-1] == "stopped", f"{s.name} ({how}): events {ev}\n{log}"
    assert re.search(rf"event=stopping sig=({first_sig}) ", log), f"{s.name} ({how})\n{log}"
    after = log[log.index("event=stopping"):]
    for line in after.splitlines():
        if "event=signal" in line:
            assert "action=ignored" in line, line
    return log


@pytest.fixture
def procs(request, tmp_path):
    made = []

    def make(name, exe_rel, *args):
        d = tmp_path / name
        d.mkdir()
        s = Service(name, exe_rel, args, str(d))
        made.append(s)
        return s

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for s in made:
        s.kill()
    if failed:
        keep = os.path.join(BUILD, "test-logs", request.node.name)
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(str(tmp_path), keep, ignore_dangling_symlinks=True)
        print(f"logs kept in {keep}")


def test_gateway_stops_cleanly_on_every_signal_pattern(procs, stubs, tmp_path):
    s = procs("gateway", "services/gateway/muri-gateway", "--key-file", str(tmp_path / "gw.key"))
    for send, first in WAYS:
        s.start()
        with grpc.insecure_channel(s.target) as ch:
            st = stubs.vectorstore_pb2_grpc.VectorStoreStub(ch).Status(stubs.types_pb2.StatusRequest(), timeout=10)
            assert st.service == "gateway"
        send(s)
        assert_clean_stop(s, send.__name__, first)


def balance(stub, pb, acc):
    try:
        return stub.GetAccount(pb.AccountRequest(address=acc.pk), timeout=10, wait_for_ready=True).balance
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:  # an account is made by its first credit
            return 0
        raise


def test_ledger_stops_cleanly_and_keeps_its_commits(procs, stubs, tmp_path):
    me, alice, bob = Account(), Account(), Account()
    key = tmp_path / "ledger.key"
    write_key_file(str(key), me.seed)
    genesis = tmp_path / "genesis.txt"
    make_genesis(str(genesis), "muri-sig", [(me, f"127.0.0.1:{free_ports(1)[0]}")], [(alice, 1_000_000)])
    s = procs("ledger", "services/ledger/muri-ledger", "--genesis", str(genesis), "--key-file", str(key),
              "--data-dir", str(tmp_path / "ledger-data"), "--grace-ms", "3000")
    pb = stubs.ledger_pb2
    committed = 0
    for send, first in WAYS:
        s.start()
        with grpc.insecure_channel(s.target) as ch:
            stub = stubs.ledger_pb2_grpc.LedgerStub(ch)
            # what the last runs committed is still there
            assert balance(stub, pb, bob) == 10 * committed
            stx = signed_tx(pb, "muri-sig", alice, transfer=pb.Transfer(to=bob.pk, amount=10))
            r = stub.SubmitTransaction(pb.SubmitRequest(tx=stx, wait_commit=True, timeout_ms=20000), timeout=30)
            assert r.state == pb.TX_COMMITTED
            committed += 1
        send(s)
        assert_clean_stop(s, send.__name__, first)
    s.start()
    with grpc.insecure_channel(s.target) as ch:
        assert balance(stubs.ledger_pb2_grpc.LedgerStub(ch), pb, bob) == 10 * committed == 30
    sigint_to_group(s)
    assert_clean_stop(s, "final", "INT")


class Writer:
    """Writes batches at ONE until a write fails; remembers what was acknowledged."""

    def __init__(self, stub, pb, types, magu, dim, acked):
        self.stub, self.pb, self.types = stub, pb, types
        self.magu, self.dim, self.acked = magu, dim, acked
        self.batches = 0
        self.error = None
        self.rng = np.random.default_rng(len(acked))
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while True:
            vecs = self.rng.normal(size=(20, self.dim)).astype(np.float32)
            recs = []
            for v in vecs:
                r = self.pb.LogRecord(op=self.pb.OP_INSERT, id=str(uuid.uuid4()), version=1)
                r.vector.values.extend(v.tolist())
                recs.append(r)
            try:
                self.stub.Write(self.pb.FragmentWriteRequest(magu=self.magu, fragment=0, epoch=1, records=recs,
                                                             consistency_level=self.types.ONE), timeout=30)
            except grpc.RpcError as e:
                self.error = e.code()
                return
            for r, v in zip(recs, vecs):
                self.acked[r.id] = v
            self.batches += 1


def assert_all_there(ix_stub, pb, magu, acked):
    ids = list(acked)
    for i in range(0, len(ids), 1000):
        got = ix_stub.Get(pb.LocalGetRequest(magu=magu, fragment=0, ids=ids[i:i + 1000], include_vectors=True),
                          timeout=30)
        assert len(got.hits) == len(ids[i:i + 1000]), "an acknowledged write is missing after the restart"
        for hit in got.hits:
            assert np.array_equal(np.array(hit.vector.values, np.float32), acked[hit.id])


def index_backlog(stub, types):
    return dict(stub.Status(types.StatusRequest(), timeout=10).details)["index_backlog"]


def test_indexer_stops_cleanly_keeps_acknowledged_writes_and_its_saved_index(procs, stubs, tmp_path):
    key = tmp_path / "ix.key"
    pb, types = stubs.indexer_pb2, stubs.types_pb2
    dim = 16
    # the index is saved at stop only (no periodic save), so reopening it
    # shows the stop saved it
    s = procs("indexer", "services/indexer/muri-indexer", "--key-file", str(key),
              "--data-dir", str(tmp_path / "ix-data"), "--persist-interval-ms", "0",
              "--grace-ms", "5000", "--repl-timeout-ms", "300")
    acked = {}
    opened = None
    for n, (send, first) in enumerate(WAYS):
        s.start()
        log = s.run_log()
        if n == 0:
            assert "event=fragment_opened" not in log
        else:
            # the index saved at the last stop was reopened, not rebuilt from the log
            assert re.search(r"event=fragment_opened magu=sig fragment=0 .*index=loaded", log), log
            opened = re.search(r"log_records=(\d+) saved_index_covers=(\d+)", log)
            assert int(opened.group(1)) >= len(acked) and int(opened.group(2)) > 0
        with grpc.insecure_channel(s.target, options=CHANNEL_OPTIONS) as ch:
            stub = stubs.indexer_pb2_grpc.IndexerStub(ch)
            if n == 0:
                me = types.Replica(pubkey=key_file_public(key), address=s.target)
                stub.SetConfig(types.FragmentConfig(magu="sig", fragment=0, epoch=1, primary=me.pubkey,
                                                    replicas=[me]), timeout=10)
                sch = pb.FragmentSchema(dimension=dim, metric=types.L2,
                                        index=types.IndexSpec(kind=types.HNSW, hnsw_m=16, hnsw_ef_construction=64,
                                                              hnsw_ef_search=32, index_batch=64))
                recs = [pb.LogRecord(op=pb.OP_INSERT, id=str(uuid.uuid4()), version=1) for _ in range(300)]
                vecs = np.random.default_rng(7).normal(size=(300, dim)).astype(np.float32)
                for r, v in zip(recs, vecs):
                    r.vector.values.extend(v.tolist())
                stub.Write(pb.FragmentWriteRequest(magu="sig", fragment=0, epoch=1, records=recs, schema=sch,
                                                   consistency_level=types.ONE), timeout=30)
                acked.update({r.id: v for r, v in zip(recs, vecs)})
            else:
                assert_all_there(stub, pb, "sig", acked)
            # a batch indexed before the stop, so there is an index to save
            assert wait_until(lambda: index_backlog(stub, types) == "0", timeout=60)
            # writes keep coming while the signals arrive
            w = Writer(stub, pb, types, "sig", dim, acked)
            assert wait_until(lambda: w.batches >= 3 or w.error, timeout=30) and not w.error
            send(s)
            log = assert_clean_stop(s, send.__name__, first)
            w.thread.join(60)
            assert not w.thread.is_alive()
            assert w.error in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), w.error
    s.start()
    assert re.search(r"event=fragment_opened magu=sig fragment=0 .*index=loaded", s.run_log()), s.run_log()
    with grpc.insecure_channel(s.target, options=CHANNEL_OPTIONS) as ch:
        assert_all_there(stubs.indexer_pb2_grpc.IndexerStub(ch), pb, "sig", acked)
    sigint_to_group(s)
    assert_clean_stop(s, "final", "INT")


def test_indexer_second_sigterm_while_a_call_holds_the_drain(procs, stubs, tmp_path):
    """A write at ALL to a fragment whose other replica is down waits for its
    timeout: the drain lasts that long, and the second SIGTERM surely comes
    during it. It is logged as ignored; the write still runs to its end within
    the grace period (not acknowledged: the primary has no lease without its
    backup) and its record is in the log after a restart; the process exits 0."""
    key = tmp_path / "ix.key"
    pb, types = stubs.indexer_pb2, stubs.types_pb2
    s = procs("indexer", "services/indexer/muri-indexer", "--key-file", str(key),
              "--data-dir", str(tmp_path / "ix-data"), "--grace-ms", "10000", "--repl-timeout-ms", "300")
    s.start()
    dead = free_ports(1)[0]
    with grpc.insecure_channel(s.target, options=CHANNEL_OPTIONS) as ch:
        stub = stubs.indexer_pb2_grpc.IndexerStub(ch)
        me = types.Replica(pubkey=key_file_public(key), address=s.target)
        gone = types.Replica(pubkey=os.urandom(32), address=f"127.0.0.1:{dead}")
        stub.SetConfig(types.FragmentConfig(magu="hold", fragment=0, epoch=1, primary=me.pubkey,
                                            replicas=[me, gone]), timeout=10)
        sch = pb.FragmentSchema(dimension=4, metric=types.L2, index=types.IndexSpec(kind=types.FLAT))
        rec = pb.LogRecord(op=pb.OP_INSERT, id=str(uuid.uuid4()), version=1)
        rec.vector.values.extend([1.0, 2.0, 3.0, 4.0])
        result = {}

        def write_all():
            try:
                result["resp"] = stub.Write(pb.FragmentWriteRequest(magu="hold", fragment=0, epoch=1, records=[rec],
                                                                    schema=sch, consistency_level=types.ALL,
                                                                    timeout_ms=4000), timeout=30)
            except grpc.RpcError as e:
                result["error"] = e

        th = threading.Thread(target=write_all)
        th.start()
        # the record is durable and the call is waiting for the missing replica
        assert wait_until(lambda: dict(stub.Status(types.StatusRequest(), timeout=10).details)["log_records"] == "1",
                          timeout=30)
        os.kill(s.proc.pid, signal.SIGTERM)
        assert s.wait_log(r"event=stopping sig=TERM"), s.run_log()
        assert s.proc.poll() is None, "the drain ended before the call in flight did"
        os.kill(s.proc.pid, signal.SIGTERM)
        log = assert_clean_stop(s, "second SIGTERM during the drain", "TERM")
        th.join(30)
    assert re.search(r"event=signal sig=TERM action=ignored", log), log
    assert log.index("event=stopping") < log.index("event=signal sig=TERM") < log.index("event=stopped")
    # the write ran to its own end within the grace period rather than being
    # cancelled by the stop: with its only backup down the primary holds no
    # lease, so it answers UNAVAILABLE naming why (the record stays in its log)
    assert "error" in result and "resp" not in result, result
    assert result["error"].code() == grpc.StatusCode.UNAVAILABLE, result["error"]
    assert "not acknowledged" in result["error"].details(), result["error"].details()
    s.start()
    with grpc.insecure_channel(s.target, options=CHANNEL_OPTIONS) as ch:
        got = stubs.indexer_pb2_grpc.IndexerStub(ch).Get(pb.LocalGetRequest(magu="hold", fragment=0, ids=[rec.id]),
                                                         timeout=10)
        assert [h.id for h in got.hits] == [rec.id]
    sigint_to_group(s)
    assert_clean_stop(s, "final", "INT")


@pytest.mark.parametrize("presses", [1, 2])
def test_devnet_stops_cleanly_on_ctrl_c_at_a_terminal(procs, tmp_path, presses):
    """muri devnet in a pseudo-terminal's foreground process group, as
    scripts/devnet.sh runs it; the terminal's interrupt character sends SIGINT
    to the devnet and every service it started, and the devnet sends them
    SIGTERM as well. Pressed twice, the second changes nothing."""
    master, slave = os.openpty()
    d = tmp_path / "devnet"
    exe = os.path.join(BUILD, "tools", "muri")
    # a new session whose controlling terminal is the pty: the devnet and its
    # services are the terminal's foreground process group
    ctty = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    p = subprocess.Popen([sys.executable, "-c", ctty, exe, "devnet", "--dir", str(d)], stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True, close_fds=True)
    os.close(slave)
    out = bytearray()

    def read_until(pred, timeout):
        end = time.time() + timeout
        while time.time() < end and not pred(out):
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: no process has the terminal open any more
                    return pred(out)
                if not chunk:
                    return pred(out)
                out.extend(chunk)
        return pred(out)

    try:
        assert read_until(lambda o: b"Ctrl-C stops the network." in o, 120), out.decode(errors="replace")
        nodes = sorted(os.listdir(d))
        pids = {}
        for name in nodes:
            pf = d / name / "ports"
            if pf.is_file():
                pids[name] = int(dict(l.split("=", 1) for l in pf.read_text().split() if "=" in l)["pid"])
        assert len(pids) == 8, nodes  # 4 ledgers, 3 indexers, a gateway
        for pid in pids.values():
            assert os.getpgid(pid) == p.pid  # in the terminal's foreground group
        intr = termios.tcgetattr(master)[6][termios.VINTR]
        os.write(master, intr * presses)
        read_until(lambda o: False, 60)  # until the terminal closes
        rc = p.wait(30)
        text = out.decode(errors="replace")
        assert rc == 0, text
        assert re.search(r"^(\^C)?stopping\r?$", text, re.M), text  # the terminal echoes ^C
        assert re.search(r"^stopped\r?$", text, re.M), text
        assert "with failures" not in text and "did not stop cleanly" not in text, text
        # no process of the group is left, and none of the services
        with pytest.raises(ProcessLookupError):
            os.killpg(p.pid, 0)
        for name, pid in pids.items():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            log = (d / name / "log").read_text()
            ev = events(log)
            assert "stopping" in ev and ev[-1] == "stopped", f"{name}: {ev}\n{log}"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        os.close(master)
