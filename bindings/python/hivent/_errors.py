"""Exception hierarchy generated from the core's table of error codes.

Every code in the core's table (``hivent_err_count()`` / ``hivent_err_code_at()``)
gets one subclass of :class:`HiventError`, named from its symbol:
``HIVENT_ERR_TIMED_OUT`` becomes ``TimedOut`` and ``HIVENT_ERR_QUEUE_FULL``
becomes ``QueueFull``.  Some classes also derive from the matching built-in
exception, so ``except TimeoutError`` catches :class:`TimedOut`.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import capi


class HiventError(Exception):
    """Error reported by libhivent.

    ``code`` is the core's error code (negative for local errors, positive
    for errors reported by the server, 0 when the core gave no code) and
    ``symbol`` its name, such as ``"HIVENT_ERR_TIMED_OUT"``.
    """

    code: int = 0
    symbol: str = "HIVENT_ERR_UNKNOWN"

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        Exception.__init__(self, message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class ExtType:
    """A MessagePack extension value: a type ``code`` (-128..127) and ``data`` bytes."""

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes) -> None:
        self.code = code
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExtType):
            return NotImplemented
        return self.code == other.code and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.code, self.data))

    def __repr__(self) -> str:
        return f"ExtType(code={self.code}, data={self.data!r})"


# Built-in exception each code also derives from, by symbol.
_BUILTIN_BASES: Dict[str, Type[Exception]] = {
    "HIVENT_ERR_INVALID_ARG": ValueError,
    "HIVENT_ERR_UNKNOWN_KEY": ValueError,
    "HIVENT_ERR_INVALID_VALUE": ValueError,
    "HIVENT_ERR_PAYLOAD": ValueError,
    "HIVENT_ERR_NO_MEMORY": MemoryError,
    "HIVENT_ERR_TIMED_OUT": TimeoutError,
    "HIVENT_ERR_CONNECTION": ConnectionError,
    "HIVENT_ERR_REFUSED": ConnectionRefusedError,
}


def class_name(symbol: str) -> str:
    """Return the class name for an error symbol: HIVENT_ERR_QUEUE_FULL -> QueueFull."""
    words = symbol.replace("HIVENT_ERR_", "", 1).split("_")
    return "".join(word.capitalize() for word in words if word)


def _build_classes() -> Dict[int, Type[HiventError]]:
    classes: Dict[int, Type[HiventError]] = {}
    for index in range(capi.hivent_err_count()):
        code = capi.hivent_err_code_at(index)
        if code == 0:
            continue
        symbol = capi.hivent_err_name(code)
        bases: tuple = (HiventError,)
        builtin = _BUILTIN_BASES.get(symbol)
        if builtin is not None:
            bases = (HiventError, builtin)
        attrs = {
            "code": code,
            "symbol": symbol,
            "__doc__": capi.hivent_err_str(code),
            "__module__": "hivent",
            "__init__": HiventError.__init__,
            "__str__": HiventError.__str__,
        }
        classes[code] = type(class_name(symbol), bases, attrs)
    return classes


ERROR_CLASSES: Dict[int, Type[HiventError]] = _build_classes()


def error_for(code: int, message: str) -> HiventError:
    """Return the exception instance for a core error code."""
    cls = ERROR_CLASSES.get(code, HiventError)
    return cls(message, code)


HiventError.__module__ = "hivent"
ExtType.__module__ = "hivent"
capi.set_hooks(error_for, ExtType)
