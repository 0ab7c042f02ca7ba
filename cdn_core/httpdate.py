"""HTTP-date (RFC 9110 §5.6.7): parse the three accepted formats, generate IMF-fixdate.

Recipients are lenient about case (RFC 9110 §5.6.7): weekday, month and the ``GMT`` zone
match in any case (``sUN, 06 nOV 1994 08:49:37 gMT``); any other zone or shape is invalid.
An HTTP-date that cannot be parsed is ``None``: callers decide what that means (an invalid
``Expires`` means "already expired", RFC 9111 §5.3; an invalid ``If-Modified-Since`` is ignored).
"""

from __future__ import annotations

import calendar
import functools
import re
from email.utils import formatdate

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_TIME = r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
_IMF_FIXDATE = re.compile(
    r"[A-Za-z]{3}, (?P<d>\d{2}) (?P<mo>[A-Za-z]{3}) (?P<y>\d{4}) " + _TIME + r" (?i:GMT)"
)
_RFC850 = re.compile(
    r"[A-Za-z]{6,9}, (?P<d>\d{2})-(?P<mo>[A-Za-z]{3})-(?P<y>\d{2}) " + _TIME + r" (?i:GMT)"
)
_ASCTIME = re.compile(r"[A-Za-z]{3} (?P<mo>[A-Za-z]{3}) (?P<d>[ \d]\d) " + _TIME + r" (?P<y>\d{4})")
# Parsed dates are memoised (a stored head's Date is read on every hit); longer values (invalid
# unless padded with whitespace) are parsed each time so the memo stays small.
_MEMO_MAX_CHARS = 64


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch for an HTTP-date (RFC 9110 §5.6.7), or None when invalid.

    Args:
        value: the field value (IMF-fixdate, obsolete RFC 850 or asctime format), or None.

    Returns:
        The timestamp in seconds, or None if the value is absent or not a valid HTTP-date.
    """
    if value is None:
        return None
    if len(value) > _MEMO_MAX_CHARS:
        return _parse(value)
    return _parse_memo(value)


def _parse(value: str) -> float | None:
    text = value.strip()
    for pattern in (_IMF_FIXDATE, _RFC850, _ASCTIME):
        match = pattern.fullmatch(text)
        if match is not None:
            return _timestamp(match)
    return None


_parse_memo = functools.lru_cache(maxsize=4096)(_parse)


def _timestamp(match: re.Match[str]) -> float | None:
    month = _MONTHS.get(match["mo"].lower())
    if month is None:
        return None
    year = int(match["y"])
    if len(match["y"]) == 2:
        # RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past;
        # resolved against a fixed pivot so parsing stays pure.
        year += 1900 if year >= 70 else 2000
    fields = (year, month, int(match["d"]), int(match["h"]), int(match["mi"]), int(match["s"]))
    try:
        parts = (*fields, 0, 0, 0)
        if not (1 <= fields[2] <= calendar.monthrange(year, month)[1]):
            return None
        if fields[3] > 23 or fields[4] > 59 or fields[5] > 60:
            return None
        return float(calendar.timegm(parts))
    except (ValueError, OverflowError):  # year 0000 and the like
        return None


def format_http_date(timestamp: float) -> str:
    """The IMF-fixdate of ``timestamp`` (RFC 9110 §5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)
