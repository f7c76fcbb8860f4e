"""asr/, training/ and export/ never import gateway/ (the gateway depends on them, not back)."""

import ast
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("package", ["asr", "training", "export"])
def test_package_does_not_import_gateway(package):
    offenders = [
        f"{path.relative_to(REPO_DIR)}: {module}"
        for path in sorted((REPO_DIR / package).rglob("*.py"))
        for module in _imported_modules(path)
        if module == "gateway" or module.startswith("gateway.")
    ]
    assert offenders == []
