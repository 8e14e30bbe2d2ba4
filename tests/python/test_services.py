"""The three muri service binaries as a user starts them: configuration,
node keys, /healthz and /metrics over HTTP, the Status RPC, clean stops on
SIGTERM, and configuration errors that name the key."""
import os
import signal
import stat
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import BUILD

SERVICES = [
    ("ledger", "services/ledger/muri-ledger", "ledger_pb2_grpc", "LedgerStub", "muri.v1.Ledger"),
    ("indexer", "services/indexer/muri-indexer", "indexer_pb2_grpc", "IndexerStub", "muri.v1.Indexer"),
    ("gateway", "services/gateway/muri-gateway", "vectorstore_pb2_grpc", "VectorStoreStub", "muri.v1.VectorStore"),
]


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def service_args(name, tmp_path, key):
    """Flags a service needs to start alone; a ledger gets a one-replica genesis."""
    args = ["--key-file", str(key), "--data-dir", str(tmp_path / f"{name}-data")]
    if name == "ledger":
        from ledger_util import Account, make_genesis
        from sodium_keys import write_key_file
        me = Account()
        if not os.path.exists(key):
            write_key_file(str(key), me.seed)
        else:
            me = Account(bytes.fromhex(key.read_text().split()[1]))
        make_genesis(str(tmp_path / "genesis.txt"), "muri-solo", [(me, "127.0.0.1:1")], [(me, 1000)])
        args += ["--genesis", str(tmp_path / "genesis.txt")]
    return args


@pytest.mark.parametrize("name,exe,mod,stub_name,full", SERVICES)
def test_service_status_health_metrics_and_stop(servers, stubs, tmp_path, name, exe, mod, stub_name, full):
    key = tmp_path / f"{name}.key"
    s = servers(name, exe, *service_args(name, tmp_path, key))
    # the node key was created, private to its owner
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    seed_hex = key.read_text().split()[1]
    from sodium_keys import public_key_hex
    with grpc.insecure_channel(s.target) as ch:
        stub = getattr(getattr(stubs, mod), stub_name)(ch)
        st = stub.Status(stubs.types_pb2.StatusRequest(), timeout=5)
        assert st.service == name
        assert st.version
        assert st.node_id == public_key_hex(seed_hex)
        # methods the service does not have answer UNIMPLEMENTED, naming themselves
        call = ch.unary_unary(f"/{full}/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as e:
            call(b"", timeout=5)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert f"/{full}/NoSuchMethod" in e.value.details()
    code, body = http_get(s.metrics_port, "/healthz")
    assert (code, body.strip()) == (200, "ok")
    code, body = http_get(s.metrics_port, "/metrics")
    assert code == 200
    assert f'muri_rpc_calls_total{{method="/{full}/Status"}} 1' in body
    assert http_get(s.metrics_port, "/nope")[0] == 404
    assert s.stop(signal.SIGTERM) == 0
    log = s.read_log()
    assert f"svc={name}" in log and "event=stopped" in log


def run_expect_failure(exe, *args, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    p = subprocess.run([os.path.join(BUILD, exe), "--listen", "127.0.0.1:0", "--metrics-listen", ""] + list(args),
                       capture_output=True, text=True, timeout=20, env=env)
    return p.returncode, p.stdout + p.stderr


def test_unknown_flag_names_the_key():
    code, out = run_expect_failure("services/ledger/muri-ledger", "--rpc-port", "7000")
    assert code == 2
    assert "rpc_port" in out or "rpc-port" in out


def test_invalid_value_names_the_key():
    code, out = run_expect_failure("services/indexer/muri-indexer", "--rpc-workers", "0")
    assert code == 2
    assert "rpc_workers" in out


def test_unknown_env_var_names_it():
    code, out = run_expect_failure("services/gateway/muri-gateway", env_extra={"MURI_GATEWAY_LISTN": "x"})
    assert code == 2
    assert "MURI_GATEWAY_LISTN" in out


def test_config_file_errors_name_key_and_line(tmp_path):
    conf = tmp_path / "ledger.conf"
    conf.write_text("# a comment\nlog_level = info\ngrace_ms = -5\n")
    code, out = run_expect_failure("services/ledger/muri-ledger", "--config", str(conf))
    assert code == 2
    assert "grace_ms" in out and "line 3" in out


def test_key_file_readable_by_others_is_refused(tmp_path):
    key = tmp_path / "node.key"
    key.write_text("muri-ed25519-seed " + "11" * 32 + "\n")
    os.chmod(key, 0o644)
    code, out = run_expect_failure("services/indexer/muri-indexer", "--key-file", str(key))
    assert code == 2
    assert "chmod 600" in out


def test_help_lists_keys():
    p = subprocess.run([os.path.join(BUILD, "services/gateway/muri-gateway"), "--help"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0
    for flag in ["--listen", "--metrics-listen", "--rpc-max-message", "--grace-ms", "--tls-cert"]:
        assert flag in p.stdout


def test_devnet_starts_every_node_and_stops(tmp_path):
    p = subprocess.run([os.path.join(BUILD, "tools/muri"), "devnet", "--dir", str(tmp_path / "net"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [line.split() for line in p.stdout.splitlines() if line.split()[:1] and line.split()[0].startswith(
        ("ledger-", "indexer-", "gateway"))]
    assert [r[0] for r in rows] == ["ledger-0", "ledger-1", "ledger-2", "ledger-3",
                                    "indexer-0", "indexer-1", "indexer-2", "gateway"]
    assert all(r[-1] == "serving" for r in rows)
    # the ledger replicas commit the demo transfer
    assert "demo: transfer of 1000 MURI committed at height" in p.stdout
    # demo vectors are replicated to the indexers, and a backup finds row 42 first
    assert "demo: wrote 2000 vectors to fragment demo/0" in p.stdout
    first = [line for line in p.stdout.splitlines() if line.strip().startswith("1. ")]
    assert first and first[0].endswith("<- row 42")
    assert p.stdout.rstrip().endswith("stopped")
    # every node stopped cleanly and left its log
    for name in ["ledger-0", "indexer-2", "gateway"]:
        log = (tmp_path / "net" / name / "log").read_text()
        assert "event=stopped" in log


def test_cli_keygen_and_status(servers, tmp_path):
    key = tmp_path / "k.key"
    p = subprocess.run([os.path.join(BUILD, "tools/muri"), "keygen", str(key)], capture_output=True, text=True)
    assert p.returncode == 0
    from sodium_keys import public_key_hex
    assert p.stdout.strip() == public_key_hex(key.read_text().split()[1])
    again = subprocess.run([os.path.join(BUILD, "tools/muri"), "keygen", str(key)], capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stderr
    s = servers("ledger", "services/ledger/muri-ledger", *service_args("ledger", tmp_path, key))
    p = subprocess.run([os.path.join(BUILD, "tools/muri"), "status", s.target, "--service", "ledger"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0
    fields = dict(line.split(None, 1) for line in p.stdout.splitlines())
    assert fields["service"] == "ledger"
    assert fields["node_id"] == public_key_hex(key.read_text().split()[1])


def test_the_secret_scan_every_test_runs_finds_a_leaked_key(tmp_path):
    """The servers fixture greps every log and /metrics page of a test for
    every key under the test's folder; here it is shown to find one."""
    from conftest import secrets_in
    from sodium_keys import keypair_from_seed, write_key_file
    seed = bytes(range(32))
    write_key_file(str(tmp_path / "node.key"), seed)
    (tmp_path / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\n" + "QUJD" * 16 + "\n-----END PRIVATE KEY-----\n")
    pk, sk = keypair_from_seed(seed)
    clean = f"event=listening node={pk.hex()}"
    assert secrets_in(str(tmp_path), [clean, clean], ["a", "a"]) == []
    assert secrets_in(str(tmp_path), ["", f"loaded {seed.hex()}"], ["a", "a"]) == ["node.key in the log of a"]
    assert secrets_in(str(tmp_path), [f"sk={sk.hex().upper()}", ""], ["a", "a"]) == ["node.key in the metrics of a"]
    assert secrets_in(str(tmp_path), ["x" + "QUJD" * 16, ""], ["a", "a"]) == ["tls.key in the metrics of a"]
    # a real TLS key: its private scalar printed in hex is found too
    ec = tmp_path / "ec.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-out", str(ec)], check=True, capture_output=True)
    text = subprocess.run(["openssl", "pkey", "-in", str(ec), "-text", "-noout"], check=True, capture_output=True,
                          text=True).stdout
    priv = "".join(text.split("priv:")[1].split("pub:")[0].split()).replace(":", "")
    assert len(priv) >= 64
    assert secrets_in(str(tmp_path), ["", f"key={priv[-64:]}"], ["a", "a"]) == ["ec.key in the log of a"]
    assert secrets_in(str(tmp_path), ["", "key=" + "ab" * 32], ["a", "a"]) == []
