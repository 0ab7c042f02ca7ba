"""cdn_core stays pure (DESIGN.md): every module imports only the standard library and
cdn_core itself, so no event loop, socket library or server framework can leak in."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import cdn_core

PACKAGE_DIR = Path(cdn_core.__file__).parent
FORBIDDEN_STDLIB = {"asyncio", "socket", "selectors", "ssl", "threading", "subprocess"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_package_has_modules():
    assert len(list(PACKAGE_DIR.glob("*.py"))) > 5


def test_cdn_core_imports_only_stdlib_and_itself():
    allowed = set(sys.stdlib_module_names) - FORBIDDEN_STDLIB | {"cdn_core", "__future__"}
    offenders = {
        path.name: sorted(imported_roots(path) - allowed)
        for path in sorted(PACKAGE_DIR.glob("*.py"))
        if imported_roots(path) - allowed
    }
    assert offenders == {}


def test_checker_detects_foreign_imports(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("import aiohttp\nfrom redis.asyncio import Redis\nfrom . import x\n")
    assert imported_roots(module) == {"aiohttp", "redis"}
