#!/usr/bin/env python3
"""Renders a deployed network from deploy/settings.toml, the one source of
its settings: deploy/docker-compose.yml, deploy/prometheus.yml and the
Kubernetes manifests in deploy/k8s/.

    python3 deploy/render.py           write the files
    python3 deploy/render.py --check   exit 1 naming every file that differs

Standard library only (tomllib, Python 3.11); the YAML is written by the
small emitter below, so the output depends on nothing installed."""
import argparse
import json
import os
import re
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = "# Rendered by deploy/render.py from deploy/settings.toml: edit those, not this file.\n"


# ---- YAML -------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)  # a double-quoted YAML scalar


def _emit(v, indent, out):
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            out.append(pad + "{}")
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{_scalar(k)}:")
                _emit(x, indent + (0 if isinstance(x, list) else 1), out)
            else:
                out.append(f"{pad}{_scalar(k)}: {_inline(x)}")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict) and x:
                sub = []
                _emit(x, indent + 1, sub)
                sub[0] = pad + "- " + sub[0][len(pad) + 2:]
                out.extend(sub)
            elif isinstance(x, list) and x:
                out.append(pad + "-")
                _emit(x, indent + 1, out)
            else:
                out.append(pad + "- " + _inline(x))
    else:
        out.append(pad + _inline(v))


def _inline(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def yaml_doc(v):
    out = []
    _emit(v, 0, out)
    return "\n".join(out) + "\n"


def yaml_docs(docs):
    return "---\n".join(yaml_doc(d) for d in docs)


# ---- shared -----------------------------------------------------------

def load(path=os.path.join(HERE, "settings.toml")):
    with open(path, "rb") as f:
        return tomllib.load(f)


def names(s):
    n = s["network"]
    return ([f"ledger-{i}" for i in range(n["ledgers"])],
            [f"indexer-{i}" for i in range(n["indexers"])])


def service_env(s, kind):
    """MURI_<KIND>_<KEY> variables of the settings of one kind of node."""
    return {f"MURI_{kind.upper()}_{k.upper()}": (("true" if v else "false") if isinstance(v, bool) else str(v))
            for k, v in s[kind]["settings"].items()}


def init_env(s, ledger_addr, indexer_addr):
    n = s["network"]
    return {
        "MURI_INIT_CHAIN_ID": n["chain_id"],
        "MURI_INIT_LEDGERS": str(n["ledgers"]),
        "MURI_INIT_INDEXERS": str(n["indexers"]),
        "MURI_INIT_LEDGER_ADDR": ledger_addr,
        "MURI_INIT_INDEXER_ADDR": indexer_addr,
        "MURI_INIT_TLS": "1" if n["tls"] else "0",
        "MURI_INIT_INDEXER_STAKE": str(n["indexer_stake"]),
        "MURI_INIT_INDEXER_CAPACITY": str(n["indexer_capacity"]),
        "MURI_INIT_BALANCE": str(n["balance"]),
    }


# ---- docker compose ---------------------------------------------------

def compose(s):
    n, p, c = s["network"], s["ports"], s["compose"]
    ledgers, indexers = names(s)
    image = "${MURI_IMAGE:-%s}" % n["image"]
    services, volumes = {}, {"net": {}}
    services["init"] = {
        "image": image,
        "command": ["muri-init"],
        "environment": init_env(s, "ledger-%d:" + str(p["ledger"]), "indexer-%d:" + str(p["indexer"])),
        "volumes": ["net:/net"],
        "healthcheck": {"disable": True},
        "restart": "no",
    }

    def node(kind, name):
        volumes[f"{name}-data"] = {}
        return {
            "image": image,
            "hostname": name,
            "command": [kind],
            "environment": service_env(s, kind),
            "volumes": ["net:/net:ro", f"{name}-data:/data"],
            "depends_on": {"init": {"condition": "service_completed_successfully"}},
            "restart": c["restart"],
            "healthcheck": {"test": ["CMD", "muri-healthcheck"], "interval": "5s", "timeout": "3s",
                            "retries": 3, "start_period": "20s"},
            "stop_grace_period": "%ds" % (s[kind]["settings"].get("grace_ms", 5000) // 1000 + 5),
        }

    for name in ledgers:
        services[name] = node("ledger", name)
    for name in indexers:
        services[name] = node("indexer", name)
    services["gateway"] = node("gateway", "gateway")
    # once the ledgers run: an admin API key of the payer account in the
    # shared volume, /net/admin.apikey (0600), made once
    services["admin-key"] = {
        "image": image,
        "command": ["admin-key"],
        "volumes": ["net:/net"],
        "depends_on": {x: {"condition": "service_healthy"} for x in ledgers},
        "healthcheck": {"disable": True},
        "restart": "on-failure",
    }
    services["gateway"]["ports"] = ["${MURI_GATEWAY_BIND:-%s}:${MURI_GATEWAY_PORT:-%d}:%d"
                                    % (c["gateway_bind"], c["gateway_port"], p["gateway"])]
    volumes["prometheus-data"] = {}
    services["prometheus"] = {
        "image": "${MURI_PROMETHEUS_IMAGE:-%s}" % n["prometheus_image"],
        "volumes": ["./prometheus.yml:/etc/prometheus/prometheus.yml:ro", "prometheus-data:/prometheus"],
        "ports": ["${MURI_PROMETHEUS_BIND:-127.0.0.1}:${MURI_PROMETHEUS_PORT:-%d}:%d"
                  % (c["prometheus_port"], p["prometheus"])],
        "restart": c["restart"],
    }
    return HEADER + "# docker-compose up -d (see the README's Deploy section)\n" + yaml_doc(
        {"services": services, "volumes": volumes})


def prometheus(s):
    ledgers, indexers = names(s)
    m = s["ports"]["metrics"]
    jobs = []
    for job, nodes in (("ledger", ledgers), ("indexer", indexers), ("gateway", ["gateway"])):
        jobs.append({"job_name": job, "static_configs": [{"targets": [f"{x}:{m}" for x in nodes]}]})
    return HEADER + yaml_doc({
        "global": {"scrape_interval": s["compose"]["scrape_interval"],
                   "evaluation_interval": s["compose"]["scrape_interval"]},
        "scrape_configs": jobs,
    })


# ---- Kubernetes -------------------------------------------------------

def _labels(kind):
    return {"app.kubernetes.io/name": "muri", "app.kubernetes.io/component": kind}


def _stage_net(s, image):
    """The init container that lays out /net (an emptyDir) from the genesis
    ConfigMap and the keys and TLS Secrets, with the modes the services
    demand (a node key readable by group or others is refused)."""
    script = (
        'set -e; n="${MURI_NODE:-$HOSTNAME}"; '
        "install -d -m 700 /net/keys; install -m 644 /config/genesis.txt /net/genesis.txt; "
        'install -m 600 "/secrets/keys/$n.key" /net/keys/; '
        'if [ "$n" = gateway ]; then install -m 600 /secrets/keys/payer.key /net/keys/; fi; '
        'if [ -f /secrets/tls/ca.pem ]; then install -d -m 755 /net/tls; '
        'install -m 644 /secrets/tls/ca.pem "/secrets/tls/$n.pem" /net/tls/; '
        'install -m 600 "/secrets/tls/$n.key" /net/tls/; fi')
    return {
        "name": "net",
        "image": image,
        "command": ["bash", "-c", script],
        "volumeMounts": [{"name": "net", "mountPath": "/net"},
                         {"name": "genesis", "mountPath": "/config", "readOnly": True},
                         {"name": "keys", "mountPath": "/secrets/keys", "readOnly": True},
                         {"name": "tls", "mountPath": "/secrets/tls", "readOnly": True}],
    }


def _pod(s, kind, rpc_port, extra_env=None):
    k, p = s["k8s"], s["ports"]
    image = s["network"]["image"]
    env = [{"name": "MURI_NODE", "value": extra_env}] if extra_env else []
    # alive: /healthz; ready for traffic: /readyz (the gateway once its routing
    # table has caught up with the ledger)
    probe = {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 5, "timeoutSeconds": 3}
    ready = {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5, "timeoutSeconds": 3}
    grace = s[kind]["settings"].get("grace_ms", 5000) // 1000 + 5
    return {
        "metadata": {"labels": _labels(kind)},
        "spec": {
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                                "runAsNonRoot": True},
            "terminationGracePeriodSeconds": grace,
            "enableServiceLinks": False,
            "initContainers": [dict(_stage_net(s, image), env=env) if env else _stage_net(s, image)],
            "containers": [{
                "name": kind,
                "image": image,
                "args": [kind],
                "env": env,
                "envFrom": [{"configMapRef": {"name": f"muri-{kind}-settings"}}],
                "ports": [{"name": "rpc", "containerPort": rpc_port},
                          {"name": "metrics", "containerPort": p["metrics"]}],
                "readinessProbe": ready,
                "livenessProbe": dict(probe, initialDelaySeconds=20, failureThreshold=6),
                "resources": k["resources"][kind],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "net", "mountPath": "/net", "readOnly": True},
                                 {"name": "data", "mountPath": "/data"},
                                 {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "net", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "genesis", "configMap": {"name": "muri-genesis"}},
                        {"name": "keys", "secret": {"secretName": "muri-keys", "defaultMode": 0o400}},
                        {"name": "tls", "secret": {"secretName": "muri-tls", "defaultMode": 0o400,
                                                   "optional": True}}],
        },
    }


def _meta(s, name, kind):
    return {"name": name, "namespace": s["k8s"]["namespace"], "labels": _labels(kind)}


def _statefulset(s, kind, replicas, rpc_port):
    k = s["k8s"]
    pvc_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": k["storage"][kind]}}}
    if k["storage_class"]:
        pvc_spec["storageClassName"] = k["storage_class"]
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(s, kind, kind),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": _labels(kind),
                 "ports": [{"name": "rpc", "port": rpc_port, "targetPort": "rpc"},
                           {"name": "metrics", "port": s["ports"]["metrics"], "targetPort": "metrics"}]},
    }
    sts = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(s, kind, kind),
        "spec": {
            "serviceName": kind,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": _labels(kind)},
            "template": _pod(s, kind, rpc_port),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": pvc_spec}],
        },
    }
    sts["spec"]["template"]["spec"]["volumes"] = [
        v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] != "data"]
    pdb = {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(s, kind, kind),
        # ledgers: n = 3f + 1 keep going with f down; indexers: a fragment at
        # QUORUM keeps a majority of its replicas with one down
        "spec": {"maxUnavailable": max(1, (replicas - 1) // 3) if kind == "ledger" else 1,
                 "selector": {"matchLabels": _labels(kind)}},
    }
    return [service, sts, pdb]


def k8s(s):
    k, n, p = s["k8s"], s["network"], s["ports"]
    ns = k["namespace"]
    ledgers, indexers = names(s)
    files = {}
    files["namespace.yaml"] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    settings = []
    for kind in ("ledger", "indexer", "gateway"):
        settings.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(s, f"muri-{kind}-settings", kind),
                         "data": service_env(s, kind)})
    init = init_env(s, f"ledger-%d.ledger.{ns}.svc.cluster.local:{p['ledger']}",
                    f"indexer-%d.indexer.{ns}.svc.cluster.local:{p['indexer']}")
    settings.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(s, "muri-init", "init"),
                     "data": init})
    files["settings.yaml"] = settings
    files["ledger.yaml"] = _statefulset(s, "ledger", n["ledgers"], p["ledger"])
    files["indexer.yaml"] = _statefulset(s, "indexer", n["indexers"], p["indexer"])
    gw_pod = _pod(s, "gateway", p["gateway"], extra_env="gateway")
    gw_pod["spec"]["volumes"].append({"name": "data", "emptyDir": {}})
    files["gateway.yaml"] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(s, "gateway", "gateway"),
         "spec": {"type": k["gateway_service_type"], "selector": _labels("gateway"),
                  "ports": [{"name": "rpc", "port": p["gateway"], "targetPort": "rpc"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(s, "gateway", "gateway"),
         "spec": {"replicas": k["gateway_replicas"], "selector": {"matchLabels": _labels("gateway")},
                  "template": gw_pod}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(s, "gateway", "gateway"),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels("gateway")}}},
    ]
    files["networkpolicy.yaml"] = [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta(s, "indexer-clients", "indexer"),
        "spec": {
            "podSelector": {"matchLabels": _labels("indexer")},
            "policyTypes": ["Ingress"],
            "ingress": [
                # the client port: the gateway, and the indexers themselves
                # (a fragment's primary replicates to its backups on it)
                {"from": [{"podSelector": {"matchLabels": _labels("gateway")}},
                          {"podSelector": {"matchLabels": _labels("indexer")}}],
                 "ports": [{"protocol": "TCP", "port": p["indexer"]}]},
                # /metrics, /healthz and /readyz from anywhere (Prometheus, probes)
                {"ports": [{"protocol": "TCP", "port": p["metrics"]}]},
            ],
        },
    }]
    head = HEADER + "# kubectl apply -f deploy/k8s/ (after deploy/k8s/make-secrets.sh; see the README)\n"
    return {name: head + yaml_docs(docs) for name, docs in files.items()}


def rendered(s):
    out = {"docker-compose.yml": compose(s), "prometheus.yml": prometheus(s)}
    for name, text in k8s(s).items():
        out[os.path.join("k8s", name)] = text
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--settings", default=os.path.join(HERE, "settings.toml"))
    a = ap.parse_args()
    files = rendered(load(a.settings))
    stale = []
    for rel, text in files.items():
        path = os.path.join(HERE, rel)
        old = open(path).read() if os.path.exists(path) else None
        if a.check:
            if old != text:
                stale.append(rel)
        elif old != text:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote deploy/{rel}")
    if stale:
        print("out of date (run python3 deploy/render.py): " + ", ".join("deploy/" + x for x in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
