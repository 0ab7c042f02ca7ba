"""Structured Field Dictionaries (RFC 8941 §3.2, parsed per §4.2.2): valid and invalid values."""

from __future__ import annotations

import pytest

from cdn_core.structured_field import (
    InnerList,
    Item,
    StructuredFieldError,
    Token,
    parse_dictionary,
)


class TestValid:
    def test_bare_keys_are_true_and_values_typed(self) -> None:
        members = dict(parse_dictionary('no-store, max-age=10, a="x", b=tok, c=?0, d=1.5'))
        assert members["no-store"] == Item(True)
        assert members["max-age"] == Item(10)
        assert members["a"] == Item("x")
        assert members["b"] == Item(Token("tok")) and isinstance(members["b"].value, Token)
        assert members["c"] == Item(False)
        assert members["d"] == Item(1.5)

    def test_negative_numbers_bytes_and_star_tokens(self) -> None:
        members = dict(parse_dictionary("n=-3, bin=:aGk=:, t=*x/y, y=?1"))
        assert members["n"] == Item(-3)
        assert members["bin"] == Item(b"hi")
        assert members["t"] == Item(Token("*x/y"))
        assert members["y"] == Item(True)

    def test_parameters_and_inner_lists(self) -> None:
        members = dict(parse_dictionary('a=1;p;q="v", l=( x "y" 2 );lp=3, e=()'))
        assert members["a"] == Item(1, (("p", True), ("q", "v")))
        assert members["l"] == InnerList((Item(Token("x")), Item("y"), Item(2)), (("lp", 3),))
        assert members["e"] == InnerList(())

    def test_escapes_whitespace_and_repeats(self) -> None:
        members = dict(parse_dictionary('  a="q\\"b\\\\",\tb ,  a=2  '))
        assert members == {"a": Item(2), "b": Item(True)}

    def test_empty_value_is_an_empty_dictionary(self) -> None:
        assert parse_dictionary("") == ()


@pytest.mark.parametrize(
    "value",
    [
        "max-age=10000, &&&&&",  # not a key
        "Max-Age=1",  # keys are lower case
        "a=1,",  # trailing comma
        "a=1 b=2",  # no comma
        "a=",  # no item
        "a=1234567890123456",  # integer over 15 digits
        "a=1234567890123.5",  # decimal integer part over 12 digits
        "a=1.2345",  # decimal fraction over 3 digits
        'a="unclosed',
        'a="bad \\n escape"',
        'a="tab\tinside"',
        "a=:not base64!:",
        "a=:YQ:",  # base64 without its padding
        "a=?2",
        "a=(1 2",  # inner list not closed
        "a=(1,2)",  # members of an inner list are space separated
        "a=1;",  # a parameter without a key
        "a=@",
    ],
)
def test_invalid_dictionaries_are_refused(value: str) -> None:
    with pytest.raises(StructuredFieldError):
        parse_dictionary(value)
