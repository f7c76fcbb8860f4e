"""The packages depend one way: contract <- asr, training <- export; contract, asr <- gateway.

Every import counts, also one inside a function, so a lazy import cannot hide a cycle.
"""

import ast
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
PRODUCT = ("contract", "asr", "training", "export", "gateway", "loadtest")
FIRST_PARTY = (*PRODUCT, "experiments", "tests")
# What each top-level package may import besides itself.
ALLOWED = {
    "contract": set(),
    "asr": {"contract"},
    "training": {"contract"},
    "export": {"contract", "training"},
    "gateway": {"contract", "asr"},
    "loadtest": {"contract", "asr", "gateway", "export"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """First-party modules a file imports, resolved to module names (`from a import b` may name a module)."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in FIRST_PARTY}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PRODUCT for p in sorted((REPO_DIR / pkg).rglob("*.py"))}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package):
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package] | {package}
    )
    assert offenders == []


def test_no_package_imports_experiments_or_tests():
    offenders = sorted(f"{m} imports {t}" for m, ts in _graph().items() for t in ts
                       if t.split(".")[0] in ("experiments", "tests"))
    assert offenders == []


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of module names, or [] (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycle_between_modules():
    # a package's __init__ re-exporting its modules is not a dependency between them
    graph = {m: {t for t in ts if not (m.count(".") == 0 and t.startswith(m + "."))}
             for m, ts in _graph().items()}
    assert _cycle(graph) == []


def test_no_import_cycle_between_packages():
    packages = {}
    for module, targets in _graph().items():
        packages.setdefault(module.split(".")[0], set()).update(
            t.split(".")[0] for t in targets if t.split(".")[0] != module.split(".")[0])
    assert _cycle(packages) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
