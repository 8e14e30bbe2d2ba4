"""Shared fixtures for muri's Python tests: protobuf/grpc stubs generated from
the .proto files at test time, and server processes started on 127.0.0.1 with
ports chosen at run time (read back from the port file), logs kept on failure."""
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

SRC = os.environ.get("MURI_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("MURI_BUILD_ROOT", os.path.join(SRC, "build"))


def generate_stubs(proto_dir, files, out):
    from grpc_tools import protoc
    args = ["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}"] + files
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {files}")


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """Imports muri.v1 and the Echo test service's generated modules."""
    out = str(tmp_path_factory.mktemp("stubs"))
    generate_stubs(os.path.join(SRC, "proto"),
                   ["types.proto", "vectorstore.proto", "indexer.proto", "ledger.proto", "consensus.proto"], out)
    generate_stubs(os.path.join(SRC, "tests", "rpc"), ["echo.proto"], out)
    sys.path.insert(0, out)
    import importlib
    mods = {}
    for name in ["types_pb2", "vectorstore_pb2", "vectorstore_pb2_grpc", "indexer_pb2", "indexer_pb2_grpc",
                 "ledger_pb2", "ledger_pb2_grpc", "echo_pb2", "echo_pb2_grpc"]:
        mods[name] = importlib.import_module(name)
    return type("Stubs", (), mods)


class Server:
    """A muri server binary running as a child process."""

    def __init__(self, name, exe, args, workdir):
        self.name = name
        self.dir = workdir
        self.port_file = os.path.join(workdir, "ports")
        self.log_path = os.path.join(workdir, "log")
        self.log = open(self.log_path, "wb")
        self.cmd = [exe, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                    "--port-file", self.port_file] + list(args)
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        self.rpc_port = self.metrics_port = None

    def restart(self, same_port=True, timeout=30.0):
        """Starts the process again with the same arguments (and, by default,
        the same RPC port, so peers' configurations stay valid)."""
        assert self.proc.poll() is not None, "still running"
        cmd = list(self.cmd)
        if same_port and self.rpc_port:
            cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{self.rpc_port}"
        os.unlink(self.port_file) if os.path.exists(self.port_file) else None
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        if not self.wait_ready(timeout):
            raise AssertionError(f"{self.name} did not restart:\n{self.read_log()[-3000:]}")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def wait_ready(self, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(self.port_file):
                ports = dict(line.strip().split("=", 1) for line in open(self.port_file) if "=" in line)
                self.rpc_port = int(ports["rpc_port"])
                self.metrics_port = int(ports["metrics_port"])
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    @property
    def target(self):
        return f"127.0.0.1:{self.rpc_port}"

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()


# Clients as a user would configure them for large vector batches.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 128 << 20), ("grpc.max_send_message_length", 128 << 20)]


def scrape_metrics(server):
    """The /metrics text of a running server ("" if it has none or is down)."""
    import urllib.request
    if server.proc.poll() is not None or not server.metrics_port:
        return ""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode(errors="replace")
    except OSError:
        return ""


def secrets_in(folder, texts, names):
    """Every secret under folder (muri key files: the seed and the 64-byte
    secret key in hex; PEM private keys: their base64 lines) that appears
    in one of texts, described by the file it came from and where it showed
    (never the secret itself). TLS private keys count whatever form they leak
    in: base64 lines, the whole key or an EC key's private scalar in hex."""
    from sodium_keys import keypair_from_seed
    secrets = []
    for root, _, files in os.walk(folder):
        for fn in files:
            path = os.path.join(root, fn)
            try:
                with open(path, "r", errors="replace") as f:
                    head = f.read(1 << 16)
            except OSError:
                continue
            if head.startswith("muri-ed25519-seed "):
                seed = bytes.fromhex(head.split()[1])
                sk = keypair_from_seed(seed)[1]
                for form in (seed.hex(), sk.hex()):
                    secrets += [(path, form), (path, form.upper())]
            elif "PRIVATE KEY-----" in head:
                body = [line.strip() for line in head.splitlines() if line.strip() and not line.startswith("-----")]
                secrets += [(path, line) for line in body if len(line) >= 32]
                # the key as bytes, and an EC key's private scalar (after
                # version 1 and a 32-byte OCTET STRING tag, in SEC1 and
                # PKCS#8 alike), in hex as a careless log line would print them
                try:
                    der = base64.b64decode("".join(body))
                except ValueError:
                    der = b""
                at = der.find(bytes([0x02, 0x01, 0x01, 0x04, 0x20]))
                for raw in ([der] if der else []) + ([der[at + 5:at + 37]] if at >= 0 else []):
                    secrets += [(path, raw.hex()), (path, raw.hex().upper())]
    found = []
    for i, text in enumerate(texts):
        where = ("metrics of " if i < len(names) // 2 else "log of ") + names[i] if i < len(names) else str(i)
        for path, secret in secrets:
            hit = f"{os.path.relpath(path, folder)} in the {where}"
            if secret in text and hit not in found:
                found.append(hit)
    return found


@pytest.fixture
def servers(request, tmp_path):
    """Starts servers; stops them after the test; keeps their logs if it failed."""
    started = []

    def start(name, exe_rel, *args, ready=True):
        d = tmp_path / name
        d.mkdir()
        s = Server(name, os.path.join(BUILD, exe_rel), args, str(d))
        started.append(s)
        if ready and not s.wait_ready():
            raise AssertionError(f"{name} did not start:\n{s.read_log()}")
        return s

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    exposed = [scrape_metrics(s) for s in started]
    for s in started:
        s.stop(signal.SIGKILL if failed else signal.SIGTERM)
        s.log.close()
    exposed += [s.read_log() for s in started]
    leaks = secrets_in(str(tmp_path), exposed, [s.name for s in started] * 2)
    if failed:
        keep = os.path.join(BUILD, "test-logs", request.node.name)
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(str(tmp_path), keep)
        print(f"logs kept in {keep}")
        for s in started:
            print(f"--- {s.name} log ---\n{s.read_log()[-4000:]}")
    assert not leaks, "secret key material in what a service exposed: " + "; ".join(leaks)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_addoption(parser):
    parser.addoption("--shard", default="", help="i/n: run only the files of shard i of n (shards.py)")


def pytest_configure(config):
    """--shard i/n: this process picks its loopback ports in slice i of n."""
    import ledger_util
    import shards
    s = shards.parse(config.getoption("--shard"))
    if s:
        ledger_util.PORT_SLICE = (s[0] - 1, s[1])


def pytest_collection_modifyitems(config, items):
    """--shard i/n keeps the files of shard i of n (shards.py)."""
    import shards
    kept, dropped = shards.select(items, config.getoption("--shard"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
