"""Structured Field Dictionaries (RFC 8941 §3.2, parsed as §4.2.2 says), strictly.

``CDN-Cache-Control`` is a Dictionary (RFC 9213 §2.1): a field value that fails to parse must
be ignored as a whole, which a tolerant directive splitter cannot tell. :func:`parse_dictionary`
returns the members in order, each an item (a bare value and its parameters) or an inner list,
or raises :class:`StructuredFieldError` naming what is wrong.

Bare values are ``int`` (Integer), ``float`` (Decimal), ``str`` (String), :class:`Token`,
``bytes`` (Byte Sequence) and ``bool`` (Boolean).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cdn_core.errors import CdnError


class StructuredFieldError(CdnError):
    """A field value that is not a valid Structured Field (RFC 8941 §4.2)."""


class Token(str):
    """A Token (RFC 8941 §3.3.4), kept apart from a String."""

    __slots__ = ()


BareItem = int | float | str | Token | bytes | bool
Parameters = tuple[tuple[str, BareItem], ...]


@dataclass(frozen=True, slots=True)
class Item:
    value: BareItem
    params: Parameters = ()


@dataclass(frozen=True, slots=True)
class InnerList:
    items: tuple[Item, ...]
    params: Parameters = ()


Member = Item | InnerList

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_MAX_INTEGER_DIGITS = 15
_MAX_DECIMAL_INTEGER_DIGITS = 12
_MAX_DECIMAL_FRACTION_DIGITS = 3


def parse_dictionary(value: str) -> tuple[tuple[str, Member], ...]:
    """Parse a Dictionary (RFC 8941 §4.2.2); a repeated key keeps its last value.

    Args:
        value: the field value (all field lines joined with ", ").

    Returns:
        The members in order of first appearance.

    Raises:
        StructuredFieldError: the value is not a valid Dictionary.
    """
    parser = _Parser(value.strip(" "))
    members: dict[str, Member] = {}
    while not parser.done():
        key = parser.key()
        if parser.peek() == "=":
            parser.advance()
            member: Member = parser.member()
        else:
            member = Item(True, parser.parameters())
        members[key] = member
        parser.skip_ows()
        if parser.done():
            break
        parser.expect(",")
        parser.skip_ows()
        if parser.done():
            raise StructuredFieldError("a trailing comma ends the dictionary")
    return tuple(members.items())


class _Parser:
    __slots__ = ("_pos", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def done(self) -> bool:
        return self._pos >= len(self._text)

    def peek(self) -> str:
        return self._text[self._pos] if self._pos < len(self._text) else ""

    def advance(self, count: int = 1) -> None:
        self._pos += count

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise StructuredFieldError(f"expected {char!r} at {self._pos}, not {self.peek()!r}")
        self.advance()

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.advance()

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.advance()

    def _match(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        match = pattern.match(self._text, self._pos)
        if match is None:
            raise StructuredFieldError(f"expected {what} at {self._pos}")
        self._pos = match.end()
        return match

    def key(self) -> str:
        return self._match(_KEY, "a key").group()

    def member(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return Item(self.bare_item(), self.parameters())

    def inner_list(self) -> InnerList:
        self.expect("(")
        items: list[Item] = []
        while True:
            self.skip_sp()
            if self.peek() == ")":
                self.advance()
                return InnerList(tuple(items), self.parameters())
            items.append(Item(self.bare_item(), self.parameters()))
            if self.peek() not in (" ", ")"):
                raise StructuredFieldError(f"expected ' ' or ')' at {self._pos}")

    def parameters(self) -> Parameters:
        params: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.advance()
            self.skip_sp()
            name = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.advance()
                value = self.bare_item()
            params[name] = value
        return tuple(params.items())

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char.isdigit():
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "*" or char.isalpha():
            return Token(self._match(_TOKEN, "a token").group())
        raise StructuredFieldError(f"expected an item at {self._pos}, not {char!r}")

    def number(self) -> int | float:
        text = self._match(_NUMBER, "a number").group()
        whole, _, fraction = text.lstrip("-").partition(".")
        if "." not in text:
            if len(whole) > _MAX_INTEGER_DIGITS:
                raise StructuredFieldError("an integer has more than 15 digits")
            return int(text)
        if len(whole) > _MAX_DECIMAL_INTEGER_DIGITS or len(fraction) > (
            _MAX_DECIMAL_FRACTION_DIGITS
        ):
            raise StructuredFieldError("a decimal has too many digits")
        return float(text)

    def string(self) -> str:
        self.expect('"')
        out: list[str] = []
        while not self.done():
            char = self.peek()
            self.advance()
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise StructuredFieldError('a string escapes something other than " or \\')
                out.append(escaped)
                self.advance()
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise StructuredFieldError("a string holds a character that is not printable")
            else:
                out.append(char)
        raise StructuredFieldError("a string is not closed")

    def byte_sequence(self) -> bytes:
        encoded = self._match(_BYTES, "a byte sequence").group(1)
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise StructuredFieldError("a byte sequence is not base64") from None

    def boolean(self) -> bool:
        self.expect("?")
        char = self.peek()
        if char not in ("0", "1"):
            raise StructuredFieldError("a boolean is ?0 or ?1")
        self.advance()
        return char == "1"
