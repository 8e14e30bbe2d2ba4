"""Fixtures for the deployment tests: images built without a registry
(deploy/build-images.sh), and a docker-compose network of deploy/ started
under a project name unique to the run, with free published ports, removed
with every container, network, volume and image tag it made, whatever
happens.

Skipped, with one line saying why, when no Docker engine answers. The
tests that need none (rendered files up to date, manifests valid) run
anyway."""
import os
import random
import shutil
import subprocess
import sys
import time

import grpc
import pytest

SRC = os.environ.get("MURI_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DEPLOY = os.path.join(SRC, "deploy")
sys.path.insert(0, os.path.join(SRC, "tests", "python"))

import importlib.util  # noqa: E402

# tests/python's conftest (stub generation, channel options), by path: its
# module name is this file's too
_spec = importlib.util.spec_from_file_location("muri_python_conftest",
                                               os.path.join(SRC, "tests", "python", "conftest.py"))
_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_py)
CHANNEL_OPTIONS, generate_stubs = _py.CHANNEL_OPTIONS, _py.generate_stubs
from ledger_util import free_ports  # noqa: E402

RUN_ID = f"{os.getpid()}{random.randrange(1 << 20):05x}"
LEDGERS = [f"ledger-{i}" for i in range(4)]
INDEXERS = [f"indexer-{i}" for i in range(3)]


def docker_ok():
    if not shutil.which("docker") or not shutil.which("docker-compose"):
        return "no docker or docker-compose command"
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker info failed: {e}"
    if r.returncode != 0:
        return "no Docker engine answers (docker info: " + (r.stderr.strip().splitlines() or ["?"])[-1] + ")"
    return None


def run(cmd, check=True, timeout=600, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("stubs"))
    generate_stubs(os.path.join(SRC, "proto"),
                   ["types.proto", "vectorstore.proto", "indexer.proto", "ledger.proto"], out)
    sys.path.insert(0, out)
    import importlib
    mods = {n: importlib.import_module(n) for n in
            ["types_pb2", "vectorstore_pb2", "vectorstore_pb2_grpc", "indexer_pb2", "indexer_pb2_grpc",
             "ledger_pb2", "ledger_pb2_grpc"]}
    return type("Stubs", (), mods)


@pytest.fixture(scope="session")
def docker():
    why = docker_ok()
    if why:
        pytest.skip(f"deployment tests skipped: {why}")


@pytest.fixture(scope="session")
def images(docker, tmp_path_factory):
    """muri:deploytest-RUN and muri-prometheus:deploytest-RUN, built by
    deploy/build-images.sh (the base image and the layers stay as the build
    cache: only the tags are removed afterwards)."""
    tag = f"deploytest-{RUN_ID}"
    log = tmp_path_factory.mktemp("build") / "build.log"
    t0 = time.time()
    try:
        with open(log, "w") as f:
            r = subprocess.run(["bash", os.path.join(DEPLOY, "build-images.sh"), "--tag", tag], stdout=f,
                               stderr=subprocess.STDOUT, timeout=1800)
        assert r.returncode == 0, f"build-images.sh failed:\n{open(log).read()[-4000:]}"
        print(f"\nimages built in {time.time() - t0:.0f} s")
        yield {"muri": f"muri:{tag}", "prometheus": f"muri-prometheus:{tag}"}
    finally:
        for ref in (f"muri:{tag}", f"muri-prometheus:{tag}"):
            # --no-prune: the tag goes, the layers stay (the next build's cache)
            subprocess.run(["docker", "rmi", "--no-prune", ref], capture_output=True)


class Compose:
    """docker-compose for deploy/docker-compose.yml under this run's project
    name, with an override publishing every node's RPC port on an ephemeral
    127.0.0.1 port."""

    def __init__(self, images, workdir):
        self.project = f"muritest{RUN_ID}"
        self.network = f"{self.project}_default"
        self.ca = None  # read_ca(): the CA once the network is up, when TLS between nodes is on
        self.client_cert = None  # read_ca(): (key, certificate) of the gateway
        gw, prom = free_ports(2)
        self.env = dict(os.environ, COMPOSE_PROJECT_NAME=self.project, MURI_IMAGE=images["muri"],
                        MURI_PROMETHEUS_IMAGE=images["prometheus"], MURI_GATEWAY_PORT=str(gw),
                        MURI_PROMETHEUS_PORT=str(prom))
        self.gateway_port, self.prometheus_port = gw, prom
        self.override = os.path.join(workdir, "publish.yml")
        with open(self.override, "w") as f:
            f.write("services:\n")
            for n in LEDGERS:
                f.write(f"  {n}:\n    ports: [\"127.0.0.1::7100\"]\n")
            for n in INDEXERS:
                f.write(f"  {n}:\n    ports: [\"127.0.0.1::7200\"]\n")
        self.dir = workdir
        self.channels = {}

    def __call__(self, *args, check=True, timeout=600):
        return run(["docker-compose", "-f", os.path.join(DEPLOY, "docker-compose.yml"), "-f", self.override,
                    "--project-directory", DEPLOY, *args], check=check, timeout=timeout, env=self.env, cwd=DEPLOY)

    def container(self, service):
        return f"{self.project}_{service}_1"

    def port(self, service, inner):
        out = run(["docker", "port", self.container(service), str(inner)]).stdout.split()
        return int(out[0].rsplit(":", 1)[1])

    def health(self, service):
        r = run(["docker", "inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                 self.container(service)], check=False)
        return r.stdout.strip()

    def wait_healthy(self, services, timeout=180):
        end = time.time() + timeout
        bad = services
        while time.time() < end:
            bad = [s for s in services if self.health(s) != "running healthy"]
            if not bad:
                return
            time.sleep(2)
        raise AssertionError(f"not healthy after {timeout} s: " +
                             ", ".join(f"{s} ({self.health(s)})" for s in bad) + "\n" +
                             self("logs", "--tail=30", *bad, check=False).stdout[-6000:])

    def file(self, path):
        """A file of the network's shared volume (read from the init container)."""
        import io
        import tarfile
        r = subprocess.run(["docker", "cp", f"{self.container('init')}:{path}", "-"], capture_output=True,
                           check=True, timeout=60)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            return t.extractfile(t.getmembers()[0]).read()

    def read_ca(self):
        """The network's CA when TLS between nodes is on (None otherwise),
        and the gateway's certificate and key: the test calls the indexers
        as the network's gateway (with mutual TLS they answer writes and
        searches only to a key the chain gives a role)."""
        try:
            self.ca = self.file("/net/tls/ca.pem")
            self.client_cert = (self.file("/net/tls/gateway.key"), self.file("/net/tls/gateway.pem"))
        except subprocess.CalledProcessError:
            self.ca = self.client_cert = None

    def channel(self, service):
        """A TLS channel to a ledger or indexer through its published port
        (re-resolved: a restarted container gets another host port)."""
        inner = 7100 if service.startswith("ledger") else 7200
        port = self.port(service, inner)
        key = (service, port)
        if key not in self.channels:
            if self.ca:
                self.channels[key] = grpc.secure_channel(
                    f"127.0.0.1:{port}", grpc.ssl_channel_credentials(self.ca, *(self.client_cert or ())),
                    options=CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", service)])
            else:
                self.channels[key] = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
        return self.channels[key]

    def cleanup(self):
        for c in self.channels.values():
            c.close()
        self("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300)
        # whatever down missed (a container started by hand, a half-made network)
        label = f"label=com.docker.compose.project={self.project}"
        ids = run(["docker", "ps", "-aq", "--filter", label], check=False).stdout.split()
        if ids:
            run(["docker", "rm", "-fv", *ids], check=False)
        for kind in ("network", "volume"):
            ids = run(["docker", kind, "ls", "-q", "--filter", label], check=False).stdout.split()
            if ids:
                run(["docker", kind, "rm", *ids], check=False)


@pytest.fixture(scope="module")
def net(images, tmp_path_factory):
    c = Compose(images, str(tmp_path_factory.mktemp("compose")))
    try:
        t0 = time.time()
        c("up", "-d")
        c.wait_healthy(LEDGERS + INDEXERS + ["gateway", "prometheus"])
        print(f"\ncompose up, every service healthy in {time.time() - t0:.0f} s")
        c.read_ca()
        yield c
    finally:
        if os.environ.get("MURI_DEPLOY_KEEP"):
            print(f"\nkept project {c.project} (MURI_DEPLOY_KEEP)")
        else:
            c.cleanup()


# Without a Docker engine the tests that need one are not collected, and
# one line says why (the checks of the rendered files still run).
NO_DOCKER = docker_ok()
collect_ignore = ["test_compose.py", "test_gateway.py"] if NO_DOCKER else []


def pytest_terminal_summary(terminalreporter):
    if NO_DOCKER:
        terminalreporter.write_line(f"tests/deploy: Docker tests skipped: {NO_DOCKER}")
