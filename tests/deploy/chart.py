"""Renders deploy/helm/moderation offline (helm-python-sdk) for the deployment tests."""

from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "moderation"
RELEASE = "mod"
NAMESPACE = "games"
KUBE_VERSIONS = ("1.29", "1.33")  # oldest supported (Chart.yaml kubeVersion) and a current one
# prometheus-operator CRDs: kubernetes-validate has no schema for them, and only these may lack one
CRDS_WITHOUT_SCHEMA = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor")}

CALLERS = '[[caller]]\nname = "game-server"\nkey_hash = "sha256:' + "0" * 64 + '"\n'
# The chart refuses a gateway without caller identity; every rendering here starts from API keys
# (a values set may turn them off and allow anonymous callers instead).
BASE_VALUES = {"secrets": {"apiKeys": {"enabled": True, "content": CALLERS}}}
VALUES_MATRIX: dict[str, dict] = {
    "defaults": {},
    "cpu-only-anonymous": {
        "triton": {"mode": "cpu"},
        "gateway": {"allowAnonymous": True},
        "secrets": {"apiKeys": {"enabled": False}},
    },
    "tls-on": {
        "secrets": {
            "tls": {"enabled": True, "existingSecret": "moderation-tls", "clientAuth": "require"},
            "apiKeys": {"enabled": True, "content": CALLERS},
        },
    },
    "one-replica": {
        "gateway": {"replicas": 1, "autoscaling": {"enabled": False}},
        "triton": {"replicas": 1},
    },
    "monitoring-pvc-restart": {
        "monitoring": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        "modelRepository": {"source": "pvc", "existingClaim": "models"},
        "rollout": {"mode": "restart"},
        "secrets": {
            "adminToken": {"existingSecret": "admin"},
            "tritonControlKey": {"existingSecret": "control"},
            "apiKeys": {"enabled": True, "existingSecret": "callers"},
        },
    },
}


def require(module: str):
    """Imports a tool the deployment tests need: in CI its absence fails the run, elsewhere the
    test is skipped with the reason shown (pytest -ra)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is missing: install the dev extra (./run.sh test does)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def chart_values(values: dict) -> dict:
    """What a test's values set means: BASE_VALUES overridden by it."""
    return _merged(BASE_VALUES, values)


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@functools.cache
def _render(values_json: str) -> tuple[tuple[str, dict], ...]:
    import helm_python

    values = chart_values(json.loads(values_json))
    rendered = helm_python.Chart.load(CHART_DIR).render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((path, doc))
    return tuple(docs)


def render(values: dict) -> list[tuple[str, dict]]:
    """(template path, manifest) for every non-empty manifest the chart renders with `values`."""
    return list(_render(json.dumps(values, sort_keys=True)))


def manifests(values: dict, kind: str) -> list[dict]:
    return [doc for _, doc in render(values) if doc["kind"] == kind]


def one(values: dict, kind: str, component: str) -> dict:
    found = [d for d in manifests(values, kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"expected one {kind} for {component}, got {len(found)}"
    return found[0]


def containers(pod_spec: dict) -> list[dict]:
    return pod_spec.get("initContainers", []) + pod_spec["containers"]
