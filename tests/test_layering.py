"""The import structure: every import in src/genas is checked against an allowed-edges table, so the
layering cannot silently regress (lower layers never import higher ones; no package cycle)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "genas"

GROUND = {"errors", "seeding", "io", "registry", "options", "logs", "envinfo", "run_folder"}
# unit -> the units it may import (besides itself); a unit is a top-level module or package of genas
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "seeding": set(),
    "io": {"errors"},
    "registry": {"errors"},
    "options": {"errors"},
    "logs": set(),
    "envinfo": set(),
    "run_folder": {"errors", "io", "options", "logs", "envinfo"},
    "data": GROUND,
    "spaces": GROUND,
    "engine": GROUND | {"data"},
    "search": GROUND | {"spaces"},
    "supernet": GROUND | {"data", "spaces", "engine"},
    "proxies": GROUND | {"data", "spaces", "engine"},
    "train": GROUND | {"data", "spaces", "engine"},
    "groundtruth": GROUND | {"data", "spaces", "engine", "train"},
    "detection": GROUND | {"data", "spaces", "engine"},
    "analysis": GROUND | {"data", "spaces", "search", "proxies"},
    "export": GROUND | {"data", "spaces", "engine", "train"},
    "workflows": GROUND | {"data", "spaces", "engine", "search", "supernet", "proxies", "train", "groundtruth",
                           "analysis", "export", "detection"},
    "cli": GROUND | {"data", "spaces", "engine", "search", "supernet", "proxies", "train", "groundtruth",
                     "analysis", "export", "workflows", "detection", "__init__"},
    "__init__": None,  # the public API may use everything
    "__main__": {"cli"},
}


def unit_of(module: str) -> str:
    """``genas.spaces.nb201`` -> ``spaces``; ``genas`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, absolute module) of every genas import in ``path``, top-level or inside functions."""
    me = module_name(path, src)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "genas"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x, y: a name is a module, or a name of the package
                    root = src.parent.joinpath(*target.split("."))
                    out += [(node.lineno, f"{target}.{a.name}" if (root / a.name).exists()
                             or (root / f"{a.name}.py").exists() else target) for a in node.names]
                    continue
            else:
                target = node.module or ""
            if target.split(".")[0] == "genas":
                out.append((node.lineno, target))
    return out


def violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        me = unit_of(module_name(path, src))
        assert me in ALLOWED, f"{path}: unit {me!r} is not in the allowed-edges table; add it"
        allowed = ALLOWED[me]
        for line, target in imports_of(path, src):
            other = unit_of(target) if target != "genas" else "__init__"
            if allowed is None or other == me or other in allowed:
                continue
            bad.append(f"{path.relative_to(src.parent)}:{line}: {me} -> {other} ({target})")
    return bad


def test_every_import_follows_the_layering():
    assert violations() == []


def test_the_table_has_no_package_cycle():
    graph = {u: (set(ALLOWED) - {u} if v is None else v) for u, v in ALLOWED.items()}
    state: dict[str, int] = {}

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        for v in graph[u]:
            if v == "__init__":
                continue  # the cli reads genas.__version__ only; the API sits above everything
            assert state.get(v) != 1, f"cycle: {' -> '.join(stack + [u, v])}"
            if v not in state:
                visit(v, stack + [u])
        state[u] = 2

    for u in graph:
        if u not in state and u != "__init__":
            visit(u, [])


def test_an_upward_import_is_caught(tmp_path):
    """The check is real: a copy of the tree with one upward edge fails it."""
    import shutil

    copy = tmp_path / "genas"
    shutil.copytree(SRC, copy)
    target = copy / "spaces" / "nb201.py"
    target.write_text(target.read_text() + "\n\ndef _bad():\n    from ..proxies import flatness  # noqa: F401\n")
    found = violations(copy)
    assert len(found) == 1 and "spaces -> proxies" in found[0]


@pytest.mark.parametrize("pure", ["genas.spaces.nb201", "genas.spaces.darts", "genas.search", "genas.io",
                                  "genas.options", "genas.run_folder", "genas.registry"])
def test_pure_modules_import_without_torch(pure):
    import subprocess
    import sys

    code = f"import sys, {pure}; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
