"""Python binding of libhivent, the C client of the Hivent event bus.

Emit with a default client configured by :func:`configure` (or HIVENT_*
environment variables)::

    import hivent
    hivent.configure(client_id="billing", server={"host": "127.0.0.1", "port": 4000})
    event = hivent.emit("invoice:paid", {"id": 42}, version=1)

or with explicit :class:`Client` objects.  Consume by subclassing
:class:`Consumer`.  Logs go to the logging module under logger "hivent".
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Mapping, Optional

from . import capi
from ._errors import ERROR_CLASSES, ExtType, HiventError
from ._event import Event
from ._client import Client
from ._consumer import Consumer, run
from ._config import known_keys
from . import _config
from ._notices import logger as _logger, on_fork_child
from . import memory

__version__ = capi.hivent_version_str()

# One exception class per core error code: TimedOut, QueueFull, Forked, ...
for _cls in ERROR_CLASSES.values():
    globals()[_cls.__name__] = _cls
del _cls

__all__ = [
    "Client", "Consumer", "Event", "ExtType", "HiventError", "configure", "client",
    "emit", "emit_async", "flush", "close", "run", "memory", "pack", "unpack",
    "known_keys", "__version__",
] + [cls.__name__ for cls in ERROR_CLASSES.values()]

_default_lock = threading.Lock()
_default_client: Optional[Client] = None


def configure(config: Optional[Mapping[str, Any]] = None, /, *, env: bool = True,
              **options: Any) -> None:
    """Set the options of the default client and the default options of consumers.

    Takes the same options as :class:`Client`.  The default client, used
    by emit(), emit_async() and flush(), takes exactly these options.  A
    :class:`Client` created afterwards, and a :class:`Consumer` when it
    starts, take them under the options given to the object itself, and
    ``env`` unless the object sets its own.  A default client that
    already exists is closed (flushing its emits) and replaced on next
    use.  Invalid options raise here.
    """
    global _default_client

    merged = _config.merge_options(config, options)
    capi.hivent_conf_destroy(_config.build_conf(merged, env))  # validates the options
    with _default_lock:
        old, _default_client = _default_client, None
        _config.set_defaults(merged, env)
    if old is not None:
        old.close()


def client() -> Client:
    """Return the default client, creating it on first use.

    A default client in the failed state (its reconnect attempts used up)
    is closed and replaced by a new one, with a warning in the log.
    """
    global _default_client
    failed = None
    with _default_lock:
        if _default_client is not None and not _default_client.closed \
                and _default_client.state == "failed":
            failed, _default_client = _default_client, None
        if _default_client is None or _default_client.closed:
            options, env = _config.defaults()
            _default_client = Client(options, env=env)
        current = _default_client
    if failed is not None:
        _logger.warning("default client failed after its reconnect attempts were used up, "
                        "so it was replaced by a new client")
        failed.close(0)
    return current


def emit(name: str, payload: Optional[Dict[str, Any]] = None, *, version: int = 1,
         cid: Optional[str] = None, key: Optional[str] = None,
         timeout: Optional[float] = None) -> Event:
    """Emit with the default client and return the published event (see Client.emit)."""
    return client().emit(name, payload, version=version, cid=cid, key=key, timeout=timeout)


def emit_async(name: str, payload: Optional[Dict[str, Any]] = None, *, version: int = 1,
               cid: Optional[str] = None, key: Optional[str] = None, callback: Any = None):
    """Queue an emit on the default client and return a Future (see Client.emit_async)."""
    return client().emit_async(name, payload, version=version, cid=cid, key=key,
                               callback=callback)


def flush(timeout: Optional[float] = None) -> int:
    """Wait for the default client's asynchronous emits; return how many are still outstanding."""
    with _default_lock:
        current = _default_client
    if current is None or current.closed:
        return 0
    return current.flush(timeout)


def close(timeout: Optional[float] = None) -> None:
    """Flush and close the default client; the next emit() creates a new one."""
    global _default_client
    with _default_lock:
        current, _default_client = _default_client, None
    if current is not None:
        current.close(timeout)


def pack(value: Any) -> bytes:
    """Return the MessagePack bytes of a value, converted as payloads are.

    Dict keys must be str (TypeError otherwise) and strings must encode as
    UTF-8 (ValueError for a lone surrogate).
    """
    return capi.pack(value)


def unpack(data: bytes) -> Any:
    """Return the value of one MessagePack document; ValueError when malformed."""
    return capi.unpack(data)


def _forget_default_client_in_child() -> None:
    # The inherited default client belongs to the parent; a module-level
    # emit() in the child creates a fresh one.  Explicit Client objects
    # inherited from the parent raise Forked instead.
    global _default_lock, _default_client
    _default_lock = threading.Lock()
    _default_client = None


on_fork_child(_forget_default_client_in_child)
