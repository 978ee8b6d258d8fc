"""The pipeline's layers: every import points down (or sideways), none back up; the study engine's
functions stay short enough to read.  docs/architecture.md draws the same layers."""

from __future__ import annotations

import ast
from pathlib import Path

TOOLKIT = Path(__file__).resolve().parents[1] / "toolkit"

#: Lowest first.  A package may import its own layer and the layers below it, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "specs", "io", "disclosure"),  # leaves: every layer uses them
    ("registry",),
    ("cohort",),
    ("features",),
    ("analysis",),
    ("study",),
    ("federated",),  # a second executor, above the study engine it reuses
    ("agents", "monitor"),  # monitor: agents in service (reads bundles and audit logs, not the server)
    ("serve", "tracking"),  # the edges: HTTP/MCP, and MLflow (the runner sees only a Tracker protocol)
    ("cli", "__init__", "__main__"),  # the edges that put it all together
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _package(path: Path) -> str:
    rel = path.relative_to(TOOLKIT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every toolkit package a module imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("toolkit."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("toolkit.")}
    return out


def test_no_import_points_back_up_the_pipeline() -> None:
    upward = []
    for path in sorted(TOOLKIT.rglob("*.py")):
        pkg = _package(path)
        assert pkg in RANK, f"{path}: package {pkg!r} has no layer in tests/test_layers.py"
        for imported in _imports(path):
            if imported in RANK and RANK[imported] > RANK[pkg]:
                upward.append(f"{path.relative_to(TOOLKIT)} imports toolkit.{imported}")
    assert not upward, "imports that point back up the pipeline:\n" + "\n".join(upward)


def test_study_and_federated_functions_stay_under_80_lines() -> None:
    long = []
    for pkg in ("study", "federated"):
        for path in sorted((TOOLKIT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > 80:
                        long.append(f"{path.relative_to(TOOLKIT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
