"""Write benchmark (scripts/bench.sh writes): the network of the gateway
benchmark (4 ledger replicas, 3 indexers, a gateway, one collection of one
fragment with 3 replicas, HNSW M 32, efConstruction 200), then
tests/bench/write_bench.c: Inserts of 10,000 vectors at QUORUM with the
indexes idle before each, then back to back, then single-record Update and
Delete from closed-loop writers. Around each phase this harness reads every
process's CPU time (/proc/PID/stat) and, when perf can count syscalls, the
indexers' fsync and fdatasync calls, and prints them per call.

Not part of the test suite (the file name does not match test_*.py). The
options come from the environment (scripts/bench.sh sets them):
MURI_BENCH_DATASET, MURI_BENCH_ROWS, MURI_BENCH_ROUNDS, MURI_BENCH_WRITERS,
MURI_BENCH_SECONDS, MURI_BENCH_INDEXER_ARGS (more indexer flags), MURI_BENCH_CLIENT
(the write-bench binary, when MURI_BUILD_ROOT is a baseline build without it)."""
import os
import shutil
import signal
import subprocess

from chain_util import ChainNet
from gateway_util import Gateway

COLL = "bench"
TICK = os.sysconf("SC_CLK_TCK")


def env(name, default):
    v = os.environ.get(name)
    return v if v else default


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK  # utime + stime


def ledger_pids(folder):
    """The ledger replicas of this run: muri-ledger processes whose data lives in folder."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"muri-ledger") and any(folder.encode() in a for a in cmd):
            found.append((f"ledger{len(found)}", int(d)))
    return found


class Syncs:
    """fsync + fdatasync calls of some processes, counted by perf while running."""

    def __init__(self, pids, tmp_path):
        self.procs = []
        if not shutil.which("perf"):
            return
        for i, pid in enumerate(pids):
            out = str(tmp_path / f"perf-{pid}.csv")
            p = subprocess.Popen(["perf", "stat", "-x,", "-o", out, "-e",
                                  "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", str(pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append((p, out))

    def stop(self):
        counts = []
        for p, out in self.procs:
            p.send_signal(signal.SIGINT)
            p.wait(30)
            n = 0
            try:
                with open(out) as f:
                    for line in f:
                        parts = line.split(",")
                        if len(parts) > 2 and parts[0].strip().isdigit() and "sys_enter_f" in parts[2]:
                            n += int(parts[0])
            except OSError:
                return None
            counts.append(n)
        return counts if self.procs else None


def test_write_bench(servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    ix_args = ("--max-index-backlog", "0", "--log-level", "warn") + tuple(env("MURI_BENCH_INDEXER_ARGS", "").split())
    net = ChainNet(servers, stubs, tmp_path, n_indexers=3, ix_args=ix_args,
                   ledger_args=("--idle-when-final", "true"))
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "60000", "--try-timeout-ms", "30000",
                                                      "--log-level", "warn"))
    try:
        info = gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name=COLL, dimension=100, metric=tpb.COSINE,
            index=tpb.IndexSpec(kind=tpb.HNSW, hnsw_m=32, hnsw_ef_construction=200, hnsw_ef_search=128),
            fragments=1, replication=3), timeout=120)
        assert info.fragments == 1 and info.replication == 3
        rounds = int(env("MURI_BENCH_ROUNDS", "10"))
        # MURI_BENCH_CLIENT: this client against the services of another build (a baseline's)
        exe = env("MURI_BENCH_CLIENT", os.path.join(os.environ["MURI_BUILD_ROOT"], "tests/bench/write-bench"))
        args = [exe, "--gateway", gw.server.target, "--collection", COLL,
                "--indexers", ",".join(ix.server.target for ix in net.indexers),
                "--dataset", env("MURI_BENCH_DATASET", "glove-100-angular-10k"),
                "--rows", env("MURI_BENCH_ROWS", "10000"), "--rounds", str(rounds),
                "--writers", env("MURI_BENCH_WRITERS", "2"), "--seconds", env("MURI_BENCH_SECONDS", "10")]
        procs = [("gateway", gw.server.proc.pid)] + [(f"ix{i}", ix.server.proc.pid) for i, ix in
                                                     enumerate(net.indexers)]
        procs += ledger_pids(str(tmp_path))
        ixpids = [pid for n, pid in procs if n.startswith("ix")]
        with open("/proc/loadavg") as f:
            print("load average before:", " ".join(f.read().split()[:3]))
        prof = None
        if os.environ.get("MURI_BENCH_PERF"):  # a profile of the indexers and the gateway over the whole run
            prof = subprocess.Popen(["perf", "record", "-F", "499", "-o", os.environ["MURI_BENCH_PERF"], "-p",
                                     ",".join(str(pid) for n, pid in procs if not n.startswith("ledger"))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tr = None
        if os.environ.get("MURI_BENCH_STRACE"):  # which files the first indexer syncs
            tr = subprocess.Popen(["strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o",
                                   os.environ["MURI_BENCH_STRACE"], "-p", str(ixpids[0])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        at, syncs, report = {}, None, []
        cpu, fs = {}, {}  # per phase name: summed CPU seconds per process, fsyncs per indexer
        for line in c.stdout:
            line = line.strip()
            if line.startswith("phase "):
                _, name, what = line.split()
                if what == "begin":
                    at = {n: cpu_s(pid) for n, pid in procs}
                    syncs = Syncs(ixpids, tmp_path)
                else:
                    counts = syncs.stop()
                    c1 = cpu.setdefault(name, {})
                    for n, pid in procs:
                        c1[n] = c1.get(n, 0) + cpu_s(pid) - at[n]
                    if counts is not None:
                        fs[name] = [a + b for a, b in zip(fs.get(name, [0] * len(counts)), counts)]
                c.stdin.write("go\n")
                c.stdin.flush()
            else:
                report.append(line)
        c.wait(6 * 3600)
        if tr:
            tr.send_signal(signal.SIGINT)
            tr.wait(60)
        if prof:
            prof.send_signal(signal.SIGINT)
            prof.wait(60)
        for name in cpu:
            calls = rounds if name.startswith("insert") else 1
            unit = "per Insert" if calls > 1 else "in all"
            report.append(f"{name}: CPU ms {unit}: " + " ".join(f"{n} {v * 1e3 / calls:.0f}" for n, v in cpu[name].items()))
            if name in fs:
                report.append(f"{name}: indexers' fsync+fdatasync calls {unit}: " +
                              " ".join(f"{k / calls:.1f}" for k in fs[name]))
        err = c.stderr.read()
        print(err[-4000:])
        print("\n".join(report))
        with open("/proc/loadavg") as f:
            print("load average after:", " ".join(f.read().split()[:3]))
        assert c.returncode == 0, err[-2000:]
    finally:
        gw.close()
        net.close()
