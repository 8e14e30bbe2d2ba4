"""The rendered deployment files match deploy/settings.toml, and the
Kubernetes manifests are valid against the Kubernetes API schemas
(kubernetes-validate, which carries the schemas and works offline)."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import DEPLOY, SRC

sys.path.insert(0, DEPLOY)
import render  # noqa: E402


def test_rendered_files_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(DEPLOY, "render.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_and_k8s_share_the_settings():
    s = render.load()
    files = render.rendered(s)
    for kind in ("ledger", "indexer", "gateway"):
        for k, v in render.service_env(s, kind).items():
            assert f"{k}: \"{v}\"" in files["docker-compose.yml"] or f"{k}: {v}" in files["docker-compose.yml"]
            assert f"{k}: \"{v}\"" in files["k8s/settings.yaml"] or f"{k}: {v}" in files["k8s/settings.yaml"]
    assert files["docker-compose.yml"].count("command:\n    - ledger") == s["network"]["ledgers"]
    assert f"replicas: {s['network']['ledgers']}" in files["k8s/ledger.yaml"]


def validator():
    for c in (shutil.which("kubernetes-validate"),
              os.path.expanduser("~/.cache/muri/k8s-venv/bin/kubernetes-validate")):
        if c and os.access(c, os.X_OK):
            return c
    return None


def test_k8s_manifests_valid():
    v = validator()
    if not v:
        pytest.skip("kubernetes-validate not installed (python3 -m venv ~/.cache/muri/k8s-venv && "
                    "~/.cache/muri/k8s-venv/bin/pip install kubernetes-validate)")
    k8s = os.path.join(DEPLOY, "k8s")
    files = sorted(os.path.join(k8s, f) for f in os.listdir(k8s) if f.endswith(".yaml"))
    r = subprocess.run([v, "--strict", "--no-warn", *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = r.stdout + r.stderr
    for kind in ("statefulset/ledger", "statefulset/indexer", "deployment/gateway", "networkpolicy/",
                 "poddisruptionbudget/ledger", "configmap/muri-ledger-settings"):
        assert kind in kinds, kind


def test_k8s_manifests_rejected_when_wrong(tmp_path):
    """The validator does reject a bad manifest (so the test above can fail)."""
    v = validator()
    if not v:
        pytest.skip("kubernetes-validate not installed")
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(os.path.join(DEPLOY, "k8s", "ledger.yaml")).read().replace("replicas: 4", "replicas: four"))
    r = subprocess.run([v, "--strict", "--no-warn", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
