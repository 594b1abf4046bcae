"""Event objects built from the core's event fields."""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional, Tuple

from . import capi

META_KEYS = ("version", "cid", "key", "producer", "uuid", "created_at")


class Event:
    """An event: ``name``, ``payload`` (dict) and ``meta``.

    ``meta`` is a dict with keys version, cid, key, producer, uuid and
    created_at (ISO 8601, UTC); absent values are None.  ``queue``
    ("SERVICE:PARTITION") and ``partition`` are set on consumed events and
    are None otherwise.
    """

    __slots__ = ("name", "_payload", "_packed", "meta", "queue", "partition")

    # Serialises the first decoding of a payload kept as MessagePack bytes.
    _decode_lock = threading.Lock()

    def __init__(
        self,
        name: str,
        payload: Optional[Dict[Any, Any]] = None,
        meta: Optional[Dict[str, Any]] = None,
        queue: Optional[str] = None,
        partition: Optional[int] = None,
    ) -> None:
        self.name = name
        self._payload = payload if payload is not None else {}
        self._packed: Optional[bytes] = None
        self.meta = dict.fromkeys(META_KEYS)
        if meta:
            self.meta.update(meta)
        self.queue = queue
        self.partition = partition

    @classmethod
    def from_fields(cls, fields: Tuple[Any, ...]) -> "Event":
        """Build an event from the tuple returned by capi.event_fields()."""
        name, payload, version, cid, key, producer, uuid, created_at, queue, partition = fields
        event = cls.__new__(cls)
        event.name = name
        if type(payload) is bytes:
            event._payload = None
            event._packed = payload
        else:
            event._payload = payload
            event._packed = None
        event.meta = {
            "version": version,
            "cid": cid,
            "key": key,
            "producer": producer,
            "uuid": uuid,
            "created_at": created_at,
        }
        event.queue = queue
        event.partition = partition if partition is not None and partition >= 0 else None
        return event

    @classmethod
    def from_packed_fields(cls, fields: Tuple[Any, ...]) -> "Event":
        """Build an event from capi.client_drain() fields, whose payload may be
        MessagePack bytes; it is decoded when ``payload`` is first read, so a
        delivery whose event nobody reads builds no dict.  A payload that
        cannot be decoded raises there."""
        return cls.from_fields(fields)

    @property
    def payload(self) -> Dict[Any, Any]:
        if self._packed is not None:
            with Event._decode_lock:
                if self._packed is not None:
                    self._payload = capi.unpack(self._packed)
                    self._packed = None
        return self._payload  # type: ignore[return-value]

    @payload.setter
    def payload(self, value: Dict[Any, Any]) -> None:
        self._payload = value
        self._packed = None

    @property
    def version(self) -> int:
        return self.meta["version"]

    @property
    def cid(self) -> Optional[str]:
        return self.meta["cid"]

    @property
    def key(self) -> Optional[str]:
        return self.meta["key"]

    @property
    def uuid(self) -> Optional[str]:
        return self.meta["uuid"]

    @property
    def producer(self) -> Optional[str]:
        return self.meta["producer"]

    @property
    def created_at(self) -> Optional[str]:
        return self.meta["created_at"]

    def to_dict(self) -> Dict[str, Any]:
        """Return {"name", "payload", "meta"} as plain data (the wire shape of an event)."""
        return {"name": self.name, "payload": self.payload, "meta": dict(self.meta)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (
            self.name == other.name
            and self.payload == other.payload
            and self.meta == other.meta
            and self.queue == other.queue
            and self.partition == other.partition
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Event(name={self.name!r}, payload={self.payload!r}, meta={self.meta!r}, "
            f"queue={self.queue!r}, partition={self.partition!r})"
        )
