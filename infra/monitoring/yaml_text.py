"""A small block-style YAML emitter for the plain data our monitoring files are made of.

Mappings with string keys, lists, strings, integers, floats and booleans; nothing else. A
string is written plain only when no YAML reader could take it for anything but that string
(no number, boolean, null, or indicator character). Other one-line printable ASCII strings are
single-quoted (``'`` doubled), which keeps PromQL's double quotes readable; anything else is
written as a JSON string, also a valid YAML double-quoted scalar (YAML 1.2 is a JSON superset).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_PRINTABLE = re.compile(r"[ -~]*")
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"})

Data = Mapping[str, "Data"] | Sequence["Data"] | str | int | float | bool


def dump(value: Data) -> str:
    """The YAML text of ``value`` (a mapping at the top), ending with a newline."""
    return "\n".join(_lines(value, 0)) + "\n"


def scalar(value: object) -> str:
    """One scalar as YAML text; raises TypeError for anything that is not a plain scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _string(value: str) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    if _PRINTABLE.fullmatch(value):
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)


def _lines(value: Data, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        lines: list[str] = []
        for key, item in value.items():
            lines += _entry(f"{pad}{scalar(key)}:", item, indent + 2)
        return lines
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            lines += _list_item(item, indent)
        return lines
    return [pad + scalar(value)]


def _entry(head: str, item: Data, nested_indent: int) -> list[str]:
    if _is_collection(item) and item:
        return [head, *_lines(item, nested_indent)]
    return [f"{head} {_lines(item, 0)[0]}"]


def _list_item(item: Data, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(item, Mapping) and item:
        inner = _lines(item, indent + 2)
        return [pad + "- " + inner[0][indent + 2 :], *inner[1:]]
    if _is_collection(item) and item:
        return [pad + "-", *_lines(item, indent + 2)]
    return [pad + "- " + _lines(item, 0)[0]]


def _is_collection(value: Data) -> bool:
    return isinstance(value, Mapping) or (
        isinstance(value, Sequence) and not isinstance(value, str)
    )
