"""Inspection of the in-process memory transport, for application tests.

A client configured with ``server={"host": "memory"}`` (or
HIVENT_SERVER_HOST=memory) emits onto one in-process bus instead of a
server; consumers of matching topics in the same process receive the
events.  These functions read what was emitted::

    hivent.configure(server={"host": "memory"})
    hivent.emit("user:created", {"id": 7})
    assert hivent.memory.includes("user:created", {"id": 7}, {"version": 1})
"""

from __future__ import annotations

import builtins
from typing import Any, Dict, List, Optional

from . import capi
from ._event import Event

__all__ = ["all", "last", "clear", "count", "is_empty", "includes"]


def __dir__() -> List[str]:
    # Only the public functions: the imported helpers stay out of dir().
    return sorted(__all__)


def count() -> int:
    """Return how many events were emitted on the memory bus since the last clear()."""
    return capi.hivent_memory_count()


def all() -> List[Event]:  # noqa: A001 - the name of the reference client's function
    """Return the emitted events, oldest first."""
    events = []
    for index in builtins.range(count()):
        fields = capi.hivent_memory_at(index)
        if fields is None:  # cleared by another thread meanwhile
            break
        events.append(Event.from_fields(fields))
    return events


def last() -> Optional[Event]:
    """Return the newest emitted event, or None."""
    fields = capi.hivent_memory_last()
    return Event.from_fields(fields) if fields is not None else None


def clear() -> None:
    """Forget all emitted events."""
    capi.hivent_memory_clear()


def is_empty() -> bool:
    """Return True when no event was emitted since the last clear()."""
    return count() == 0


def includes(
    name: Optional[str] = None,
    payload: Optional[Dict[str, Any]] = None,
    meta: Optional[Dict[str, Any]] = None,
) -> bool:
    """Return True when an emitted event matches.

    The event must have ``name`` (None matches any), a payload containing
    every field of ``payload`` and meta containing every field of ``meta``
    (for example {"version": 2, "key": "k"}); None matches any.
    """
    return capi.hivent_memory_includes(name, payload, meta)
