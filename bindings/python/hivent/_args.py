"""Checks of arguments that reach the core as C numbers or C strings."""

from __future__ import annotations

import math
from typing import Any, Optional

# Largest wait the core takes, in milliseconds (a C int).
_MAX_WAIT_MS = 2**31 - 1


def check_seconds(what: str, value: Any) -> float:
    """Return @value as seconds, raising TypeError or ValueError naming @what."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{what} must be a finite number of seconds, not {value!r}")
    return float(value)


def timeout_ms(what: str, value: Optional[float]) -> int:
    """Convert seconds (None = no limit) to the core's milliseconds (-1 = no limit)."""
    if value is None:
        return -1
    seconds = check_seconds(what, value)
    if seconds < 0:
        raise ValueError(f"{what} must be >= 0 seconds or None, not {value!r}")
    return min(int(seconds * 1000), _MAX_WAIT_MS)


def wait_ms(what: str, value: Any) -> int:
    """Convert seconds to milliseconds, counting a negative wait as 0."""
    return min(max(int(check_seconds(what, value) * 1000), 0), _MAX_WAIT_MS)


def check_text(what: str, value: Optional[str]) -> None:
    """Raise unless @value is None or a str that C and UTF-8 can carry whole.

    A NUL character would cut the C string short, and a lone surrogate has
    no UTF-8 form.  The errors are ValueError and its subclass
    UnicodeEncodeError, naming @what.
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnicodeEncodeError(
            exc.encoding, exc.object, exc.start, exc.end,
            f"{what} contains the lone surrogate U+{ord(value[exc.start]):04X}, "
            "which UTF-8 cannot encode") from None
