"""Helpers to run a muri ledger network in tests: keys, a genesis file with
ports chosen at run time, signed transactions, and clients."""
import hashlib
import os
import random
import socket

import grpc

from sodium_keys import keypair_from_seed, sign, write_key_file

DOM_TX = 0x03


# (k, n): this process picks ports in slice k of n of the range, so that
# shards of the suite running side by side never pick the same port before
# its server binds it (conftest sets it from --shard)
PORT_SLICE = (0, 1)


def free_ports(n):
    """n loopback ports free now, chosen below the kernel's ephemeral range
    (in this process's PORT_SLICE of it): a port 0 choice is an ephemeral
    port, which a client's outgoing connection can take before the server
    meant for it binds."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    if lo <= 11000:
        lo = 32768
    k, parts = PORT_SLICE
    span = (lo - 10000) // parts
    first = 10000 + k * span
    ports = []
    while len(ports) < n:
        port = random.randrange(first, first + span)
        if port in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
    return ports


class Account:
    def __init__(self, seed=None):
        self.seed = seed or os.urandom(32)
        self.pk, self.sk = keypair_from_seed(self.seed)
        self.nonce = 0


def make_genesis(path, chain_id, replicas, accounts, params=None, indexers=None, gateways=()):
    """replicas: [(Account, "host:port")]; accounts: [(Account, balance)]; gateways: [Account]."""
    lines = [f"chain_id = {chain_id}", "genesis_time_ms = 1700000000000"]
    for acc, addr in replicas:
        lines.append(f"replica = {acc.pk.hex()} {addr}")
    for acc, bal in accounts:
        lines.append(f"account = {acc.pk.hex()} {bal}")
    for acc, addr, cap, stake in indexers or []:
        lines.append(f"indexer = {acc.pk.hex()} {addr} {cap} {stake}")
    for acc in gateways:
        lines.append(f"gateway = {acc.pk.hex()}")
    for k, v in (params or {}).items():
        lines.append(f"param.{k} = {v}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def signed_tx(pb, chain_id, acc, fee=1, **payload):
    """A SignedTransaction from acc with its next nonce; payload e.g. transfer=pb.Transfer(...)."""
    tx = pb.Transaction(chain_id=chain_id, sender=acc.pk, nonce=acc.nonce, fee=fee, **payload)
    body = tx.SerializeToString()
    digest = hashlib.blake2b(bytes([DOM_TX]) + body, digest_size=32).digest()
    acc.nonce += 1
    return pb.SignedTransaction(body=body, signature=sign(acc.sk, digest))


class LedgerNet:
    """n ledger replicas started by the `servers` fixture."""

    def __init__(self, servers, stubs, tmp_path, n=4, balances=1_000_000, extra_accounts=2, params=None,
                 args=()):
        self.stubs = stubs
        self.pb = stubs.ledger_pb2
        self.chain = "muri-test"
        self.replicas = [Account() for _ in range(n)]
        self.accounts = [Account() for _ in range(extra_accounts)]
        ports = free_ports(n)
        self.addrs = [f"127.0.0.1:{p}" for p in ports]
        self.genesis = str(tmp_path / "genesis.txt")
        make_genesis(self.genesis, self.chain, list(zip(self.replicas, self.addrs)),
                     [(a, balances) for a in self.accounts], params)
        self.servers = []
        for i, acc in enumerate(self.replicas):
            key = tmp_path / f"ledger{i}.key"
            write_key_file(str(key), acc.seed)
            s = servers(f"ledger{i}", "services/ledger/muri-ledger", "--listen", self.addrs[i],
                        "--genesis", self.genesis, "--key-file", str(key),
                        "--data-dir", str(tmp_path / f"ledger{i}-data"), "--grace-ms", "1000", *args)
            self.servers.append(s)
        self.channels = [None] * n
        self.stubs_ = [None] * n
        for i in range(n):
            self.reconnect(i)

    def reconnect(self, i):
        if self.channels[i]:
            self.channels[i].close()
        self.channels[i] = grpc.insecure_channel(self.addrs[i])
        self.stubs_[i] = self.stubs.ledger_pb2_grpc.LedgerStub(self.channels[i])

    def stub(self, i):
        return self.stubs_[i]

    def status(self, i):
        st = self.stubs_[i].Status(self.stubs.types_pb2.StatusRequest(), timeout=5, wait_for_ready=True)
        return dict(st.details)

    def submit(self, i, stx, wait=True, timeout_ms=10000):
        return self.stubs_[i].SubmitTransaction(self.pb.SubmitRequest(tx=stx, wait_commit=wait, timeout_ms=timeout_ms),
                                                timeout=timeout_ms / 1000 + 5)

    def balance(self, i, acc):
        return self.stubs_[i].GetAccount(self.pb.AccountRequest(address=acc.pk), timeout=5).balance

    def close(self):
        for c in self.channels:
            if c:
                c.close()
