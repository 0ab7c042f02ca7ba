"""The package arrows of DESIGN.md, checked on every import of every product package.

``cdn_cli`` → everything; ``origin_shield`` → ``edge``, ``overlay``; ``edge`` → ``overlay``,
``controlplane``; ``overlay``, ``router`` → ``controlplane``; everything → ``cdn_core``. Never
``edge`` → ``origin_shield``, ``edge`` ↔ ``router``, ``overlay`` → ``edge``, ``controlplane`` →
any adapter, and nothing but ``cdn_cli``/``loadtest`` → ``infra``. Within ``controlplane`` the
store port knows none of its adapters: only the composition roots (``cdn_cli``, ``infra``,
``loadtest``) open a client, through ``controlplane.connect``. That ``cdn_core`` imports only
the standard library is ``tests/core/test_purity.py``'s to check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Which product packages each package may import (besides itself), as DESIGN.md draws them.
ALLOWED: dict[str, frozenset[str]] = {
    "controlplane": frozenset({"cdn_core"}),
    "overlay": frozenset({"controlplane", "cdn_core"}),
    "router": frozenset({"controlplane", "cdn_core"}),
    "edge": frozenset({"overlay", "controlplane", "cdn_core"}),
    "origin_shield": frozenset({"edge", "overlay", "controlplane", "cdn_core"}),
    "infra": frozenset({"origin_shield", "edge", "overlay", "router", "controlplane", "cdn_core"}),
    "cdn_cli": frozenset(
        {"infra", "origin_shield", "edge", "overlay", "router", "controlplane", "cdn_core"}
    ),
    "loadtest": frozenset(
        {"cdn_cli", "infra", "origin_shield", "edge", "overlay", "router", "controlplane"}
        | {"cdn_core"}
    ),
}
PACKAGES = frozenset(ALLOWED) | {"cdn_core"}

# Only composition roots open a control-plane client; the port knows none of its adapters.
OPENERS = frozenset(
    {"controlplane.connect", "controlplane.redis_store", "controlplane.memory_store"}
)
ROOTS = frozenset({"cdn_cli", "infra", "loadtest"})


@dataclass(frozen=True, slots=True)
class Import:
    path: Path
    line: int
    statement: str
    target: str  # the absolute dotted module imported (or imported from)


def module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(path: Path, root: Path) -> Iterator[Import]:
    """Every import of ``path``, at any depth (functions, ``TYPE_CHECKING`` blocks) included."""
    source = path.read_text()
    module = module_of(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        statement = ast.unparse(node)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, statement, alias.name)
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield Import(path, node.lineno, statement, target)


def broken_rule(importer: str, target: str) -> str | None:
    """The rule that importing ``target`` from module ``importer`` breaks, if any."""
    source, goal = importer.split(".")[0], target.split(".")[0]
    if goal not in PACKAGES or goal == source:
        if source == "controlplane" and target in OPENERS and importer != "controlplane.connect":
            return "the control-plane port knows none of its adapters: only connect.py opens one"
        return None
    if goal not in ALLOWED[source]:
        allowed = ", ".join(sorted(ALLOWED[source])) or "nothing"
        return f"{source} may import only {allowed} (DESIGN.md: never {source} → {goal})"
    if target in OPENERS and source not in ROOTS:
        return (
            f"{source} is handed its control-plane client: only composition roots "
            f"({', '.join(sorted(ROOTS))}) import {target}"
        )
    return None


def violations(root: Path) -> list[str]:
    found = []
    for package in sorted(ALLOWED):
        for path in sorted((root / package).rglob("*.py")):
            importer = module_of(path, root)
            for imported in imports_in(path, root):
                rule = broken_rule(importer, imported.target)
                if rule is not None:
                    where = f"{path.relative_to(root)}:{imported.line}"
                    found.append(f"{where}: `{imported.statement}`: {rule}")
    return found


def test_every_product_package_follows_the_arrows() -> None:
    problems = violations(ROOT)
    assert not problems, "imports against DESIGN.md's arrows:\n" + "\n".join(problems)


def test_every_product_package_is_checked() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == PACKAGES


def test_the_checker_names_the_file_the_import_and_the_rule(tmp_path: Path) -> None:
    for package in ("edge", "overlay", "controlplane", "router"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "edge" / "bad.py").write_text(
        "import origin_shield.ingress\nfrom overlay import peers\n"
    )
    (tmp_path / "overlay" / "up.py").write_text(
        "def f():\n    from edge.app import build_node\n    from . import peers\n"
    )
    (tmp_path / "controlplane" / "store.py").write_text("from .memory_store import X\n")
    (tmp_path / "controlplane" / "connect.py").write_text("from .memory_store import X\n")
    (tmp_path / "router" / "app.py").write_text("from controlplane.connect import connect\n")

    problems = violations(tmp_path)

    assert problems == [
        "controlplane/store.py:1: `from .memory_store import X`: the control-plane port knows "
        "none of its adapters: only connect.py opens one",
        "edge/bad.py:1: `import origin_shield.ingress`: edge may import only cdn_core, "
        "controlplane, overlay (DESIGN.md: never edge → origin_shield)",
        "overlay/up.py:2: `from edge.app import build_node`: overlay may import only cdn_core, "
        "controlplane (DESIGN.md: never overlay → edge)",
        "router/app.py:1: `from controlplane.connect import connect`: router is handed its "
        "control-plane client: only composition roots (cdn_cli, infra, loadtest) import "
        "controlplane.connect",
    ]
