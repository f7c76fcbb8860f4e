"""checkov's Kubernetes checks on the chart rendered over the values matrix: no finding but the
documented skips (deploy/helm/checkov-skips.txt). checkov lives in its own virtual environment
(`./run.sh test` makes .venv-checkov): its pins (networkx<2.7, packaging<24) clash with torch's
and ours."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import ROOT, VALUES_MATRIX, render, require

require("helm_python")

SKIPS_FILE = ROOT / "deploy" / "helm" / "checkov-skips.txt"


def checkov_binary() -> str | None:
    for candidate in (os.environ.get("CHECKOV", ""), str(ROOT / ".venv-checkov" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


def documented_skips() -> dict[str, str]:
    skips = {}
    for line in SKIPS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            check, _, reason = line.partition(" ")
            skips[check] = reason.strip()
    return skips


def test_every_skip_has_a_reason():
    skips = documented_skips()
    assert skips
    for check, reason in skips.items():
        assert check.startswith("CKV_K8S_") and len(reason) > 40, f"{check}: say why it is skipped"


def test_rendered_chart_passes_checkov(tmp_path):
    binary = checkov_binary()
    if binary is None:
        message = "checkov not found: ./run.sh test installs it in .venv-checkov (or set CHECKOV=/path/to/checkov)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run it, never pass without it
        pytest.skip(message)
    for name, values in VALUES_MATRIX.items():
        out = tmp_path / name
        out.mkdir()
        for index, (_, doc) in enumerate(render(values)):
            (out / f"{index:02d}-{doc['kind']}.yaml").write_text(yaml.safe_dump(doc))
    skips = documented_skips()
    result = subprocess.run(
        [binary, "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "--output", "json",
         "--skip-check", ",".join(skips)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.stdout.strip(), f"checkov printed nothing (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed > 100, f"checkov ran too few checks ({passed}): is the framework right?"
    assert failed == [], "\n".join(failed)
