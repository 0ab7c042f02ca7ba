"""cdn_core stays pure (DESIGN.md): every module imports only the standard library and
cdn_core itself, so no event loop, socket library or server framework can leak in; nor a clock
(``time``, ``datetime``: ``now`` is always passed in) or the process environment and files
(``os``). Path arithmetic uses ``posixpath``, whose string functions read nothing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import cdn_core

PACKAGE_DIR = Path(cdn_core.__file__).parent
FORBIDDEN_STDLIB = {
    "asyncio",
    "socket",
    "selectors",
    "ssl",
    "threading",
    "subprocess",
    "time",
    "datetime",
    "os",
}


ALLOWED = set(sys.stdlib_module_names) - FORBIDDEN_STDLIB | {"cdn_core", "__future__"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def foreign_imports(path: Path) -> list[str]:
    return sorted(imported_roots(path) - ALLOWED)


def test_package_has_modules():
    assert len(list(PACKAGE_DIR.glob("*.py"))) > 5


def test_cdn_core_imports_only_stdlib_and_itself():
    offenders = {
        path.name: foreign_imports(path)
        for path in sorted(PACKAGE_DIR.glob("*.py"))
        if foreign_imports(path)
    }
    assert offenders == {}


def test_checker_detects_foreign_imports(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("import aiohttp\nfrom redis.asyncio import Redis\nfrom . import x\n")
    assert imported_roots(module) == {"aiohttp", "redis"}


def test_clock_and_environment_are_refused(tmp_path):
    module = tmp_path / "clocky.py"
    module.write_text(
        "import time\nimport os.path\nfrom datetime import datetime\nimport posixpath, re\n"
    )
    assert foreign_imports(module) == ["datetime", "os", "time"]
