"""Notice handling shared by clients and consumers, and the fork registry."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any, Callable, Optional, Tuple

from . import capi
from ._errors import ERROR_CLASSES, HiventError

logger = logging.getLogger("hivent")

NOTICE_DELIVERY = 1
NOTICE_EVENT = 2
NOTICE_STATE = 3
NOTICE_ERROR = 4
NOTICE_LOG = 5

# Notices handled per poll call after the first one, so one busy handle
# cannot keep its poll thread from returning.
DRAIN_MAX = 1000

# syslog level (0 emergency .. 7 debug) -> logging level
_LOG_LEVELS = {
    0: logging.CRITICAL,
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,
    6: logging.INFO,
    7: logging.DEBUG,
}

NoticeFields = Tuple[Any, ...]


def error_class(symbol: str) -> type:
    """Return the exception class of a core error symbol such as HIVENT_ERR_FORKED."""
    for cls in ERROR_CLASSES.values():
        if cls.symbol == symbol:
            return cls
    return HiventError


def make_error(code: int, message: str) -> HiventError:
    if not message:
        message = capi.hivent_err_str(code)
    return ERROR_CLASSES.get(code, HiventError)(message, code)


def log_notice(fields: NoticeFields, handle_name: str) -> None:
    """Forward a log notice to logger "hivent"."""
    level = _LOG_LEVELS.get(fields[8], logging.INFO)
    logger.log(level, "%s [%s] %s", handle_name, fields[9], fields[10])


def handle_common(
    fields: NoticeFields,
    handle_name: str,
    on_state: Optional[Callable[..., Any]],
    on_error: Optional[Callable[..., Any]],
) -> None:
    """Handle a state, error or log notice: log it and call the user's callback."""
    kind = fields[0]
    if kind == NOTICE_LOG:
        log_notice(fields, handle_name)
    elif kind == NOTICE_STATE:
        state = capi.hivent_state_name(fields[5])
        attempt, next_ms = fields[6], fields[7]
        if fields[1]:
            logger.info("%s state %s (attempt %d, next attempt in %d ms): %s",
                        handle_name, state, attempt, next_ms, fields[2])
        else:
            logger.info("%s state %s", handle_name, state)
        if on_state is not None:
            call_safely(on_state, "state callback", state, attempt, next_ms)
    elif kind == NOTICE_ERROR:
        # Not logged here: libhivent logs the same sentence at error level
        # (facility "conn") before it posts an error notice.
        error = make_error(fields[1], fields[2])
        if on_error is not None:
            call_safely(on_error, "error callback", error)


def call_safely(callback: Callable[..., Any], what: str, *args: Any) -> None:
    """Call a user callback, logging an Exception with its traceback instead of raising it.

    KeyboardInterrupt and SystemExit propagate.
    """
    try:
        callback(*args)
    except Exception:
        logger.exception("%s %r raised", what, callback)


# ---- live handles, for fork() and interpreter exit ----

_handles: "weakref.WeakSet[Any]" = weakref.WeakSet()
_handles_lock = threading.Lock()
_after_fork_hooks: list = []


def register(handle: Any) -> None:
    with _handles_lock:
        _handles.add(handle)


def unregister(handle: Any) -> None:
    with _handles_lock:
        _handles.discard(handle)


def on_fork_child(hook: Callable[[], None]) -> None:
    """Run @hook in the child after os.fork(), after the handles are marked."""
    _after_fork_hooks.append(hook)


def _after_fork_in_child() -> None:
    global _handles_lock
    _handles_lock = threading.Lock()
    for handle in list(_handles):
        handle._mark_inherited()
    for hook in _after_fork_hooks:
        hook()


def _close_all_at_exit() -> None:
    for handle in list(_handles):
        if handle._pid != os.getpid():
            continue
        try:
            handle.close()
        except Exception:
            logger.exception("closing %r at exit failed", handle)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
