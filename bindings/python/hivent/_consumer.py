"""Consumers: subclasses of hivent.Consumer with a process() method."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

from . import capi
from ._args import check_seconds, check_text, wait_ms
from ._config import build_conf, defaults, merge_options, overlay_options
from ._event import Event
from ._errors import HiventError
from ._notices import (
    DRAIN_MAX,
    NOTICE_ERROR,
    NOTICE_EVENT,
    NOTICE_STATE,
    call_safely,
    error_class,
    handle_common,
    logger,
    register,
    unregister,
)

# Maximum wait in one hivent_consumer_next() call: run() returns to Python
# at least this often, so signal handlers and stop() take effect.
WAKE_INTERVAL_MS = 200

# Maximum length of a dead-letter reason sent to the server, in characters.
_REASON_MAX = 1000
# libhivent's maximum length of a topic or service name, in UTF-8 bytes.
_NAME_MAX = 255
# libhivent's limit on partitions per service; the core raises above it,
# but a count above the C int range could not reach that check.
_MAX_PARTITIONS = 4096


def failure_reason(result: Any) -> Optional[str]:
    """Return the dead-letter reason for a process() return value, or None for success.

    Failures: False, an exception instance, or a tuple ("error", reason).
    Everything else (None, True, any other value) is success.
    """
    if result is False:
        return "process() returned False"
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "error":
        return str(result[1])
    return None


class Consumer:
    """Base class for consumers.

    A subclass sets the class attributes ``topic`` (an event name or "*"),
    ``name`` (the service, whose instances share the partitions),
    ``partition_count`` and optionally ``version`` (deliver only that event
    version), and defines ``process(self, event)``.

    The options given to :func:`hivent.configure` are the defaults, read
    when the consumer starts.  The ``config`` dict and keyword arguments
    given here win over them, except that a None value keeps the
    configured one.  ``env`` (read HIVENT_* variables under all of these)
    defaults to the ``env`` given to configure(), else True.

    process() succeeds by returning normally.  Raising an exception (logged
    with its traceback), returning False, an exception instance or
    ("error", reason) sends the event to the dead-letter queue.  Optional
    hooks ``event_processing_succeeded(event)`` and
    ``event_processing_failed(event, reason)`` run after each outcome.
    """

    topic: ClassVar[str]
    name: ClassVar[str]
    partition_count: ClassVar[int]
    version: ClassVar[Optional[int]] = None

    def __init__(
        self,
        config: Optional[Mapping[str, Any]] = None,
        /,
        *,
        env: Optional[bool] = None,
        on_state: Optional[Callable[[str, int, int], Any]] = None,
        on_error: Optional[Callable[[BaseException], Any]] = None,
        **options: Any,
    ) -> None:
        self._check_class_attributes()
        self.options: Dict[str, Any] = merge_options(config, options)
        if self.version is not None:
            self.options.setdefault("consumer.version", self.version)
        self._env = env
        self._on_state = on_state
        self._on_error = on_error
        self._handle: Any = None
        self._closed = False
        self._inherited = False
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._poll_lock = threading.RLock()
        self._failure: Optional[HiventError] = None
        self._failure_error_seen = False
        # Thread id while process() runs, to reject a nested poll() or run().
        self._processing_thread: Optional[int] = None
        self.processed = 0
        self.failed = 0

    def _check_class_attributes(self) -> None:
        cls = type(self)
        for attr in ("topic", "name"):
            value = getattr(cls, attr, None)
            if not isinstance(value, str):
                raise TypeError(f"{cls.__name__}.{attr} must be a non-empty str, not {value!r}")
            check_text(f"{cls.__name__}.{attr}", value)
            size = len(value.encode("utf-8"))
            if not 1 <= size <= _NAME_MAX:
                raise ValueError(f"{cls.__name__}.{attr} must be 1 to {_NAME_MAX} bytes in "
                                 f"UTF-8, not {size}: {value[:40]!r}")
        if ":" in cls.name:
            raise ValueError(f"{cls.__name__}.name must not contain ':' because queue names "
                             f"are SERVICE:PARTITION, not {cls.name!r}")
        count = getattr(cls, "partition_count", None)
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"{cls.__name__}.partition_count must be an int, not {count!r}")
        if not 1 <= count <= _MAX_PARTITIONS:
            raise ValueError(f"{cls.__name__}.partition_count must be from 1 to "
                             f"{_MAX_PARTITIONS}, not {count}")
        version = getattr(cls, "version", None)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise TypeError(f"{cls.__name__}.version must be an int or None, not {version!r}")

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} topic={self.topic!r} name={self.name!r} "
                f"partitions={self.partition_count} state={self.state}>")

    def process(self, event: Event) -> Any:
        """Handle one event; override in a subclass."""
        raise NotImplementedError(f"{type(self).__name__} must define process(self, event)")

    # ---- life cycle ----

    def start(self) -> None:
        """Create the core consumer, which connects and joins in the background.

        Takes the options of hivent.configure() in effect now, under the
        consumer's own.  run() and poll() call this; calling it again does
        nothing.
        """
        self._check_usable()
        if self._handle is not None:
            return
        configured, configured_env = defaults()
        env = configured_env if self._env is None else self._env
        conf = build_conf(overlay_options(configured, self.options), env)
        try:
            self._handle = capi.hivent_consumer_new(
                conf, self.topic, self.name, self.partition_count
            )
        except BaseException:
            capi.hivent_conf_destroy(conf)
            raise
        register(self)

    def stop(self) -> None:
        """Make run() return within 200 ms.  Safe from any thread and from signal handlers."""
        self._stop.set()

    def run(self, timeout: Optional[float] = None, *, handle_signals: bool = True) -> None:
        """Process events until stop(), SIGINT or SIGTERM, then close the consumer.

        Waits with the GIL released and wakes at least every 200 ms.  With
        ``handle_signals`` (and when called on the main thread) SIGINT and
        SIGTERM call stop() while run() is active.  With ``timeout``
        (seconds) run() returns after that time and leaves the consumer
        open, so it can run again.

        Raises :class:`hivent.Failed` once the connection has failed for
        good: the reconnect attempts (max_reconnect_tries) are used up, or
        every join was rejected.  The message is the core's and names the
        last error.  The consumer is closed before the exception propagates.
        """
        self._check_not_in_process("run()")
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        self.start()
        self._stop.clear()
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        with _StopSignals([self] if handle_signals else []):
            try:
                timed_out = self._run_until(deadline)
            except BaseException:
                self.close()
                raise
        if self._failure is not None:
            self._await_failure_error()
            self.close()
            raise self._failure
        if not timed_out:
            self.close()

    def _await_failure_error(self) -> None:
        """Dispatch the error notice that follows the failed state notice, for on_error."""
        deadline = time.monotonic() + WAKE_INTERVAL_MS / 1000
        while not self._failure_error_seen and self._handle is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._poll_once(max(int(left * 1000), 1))

    def _run_until(self, deadline: Optional[float]) -> bool:
        """Poll until stop() or a failure; return True when @deadline passed first."""
        while not self._stop.is_set() and self._failure is None:
            wait_ms = WAKE_INTERVAL_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                wait_ms = min(wait_ms, max(int(left * 1000), 1))
            self._poll_once(wait_ms)
        return False

    def poll(self, timeout: float = 0) -> int:
        """Dispatch pending notices, waiting up to ``timeout`` seconds for the first.

        Returns the number handled.  For applications with their own loop;
        fileno() gives a descriptor that is readable while notices wait.
        Raises hivent.State when called from inside process().
        """
        self._check_not_in_process("poll()")
        self.start()
        return self._poll_once(wait_ms("timeout", timeout))

    def fileno(self) -> int:
        """Return a descriptor readable while notices are pending (for select/poll)."""
        self.start()
        return capi.hivent_consumer_fd(self._handle)

    def close(self, timeout: float = 5.0) -> None:
        """Leave the channel and free the consumer; unacknowledged events are redelivered.

        Waits up to ``timeout`` seconds for the server to confirm.  Closing
        twice does nothing.
        """
        close_ms = wait_ms("timeout", timeout)
        with self._poll_lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            handle, self._handle = self._handle, None
        if handle is None:
            return
        unregister(self)
        if not self._inherited:
            try:
                capi.hivent_consumer_close(handle, close_ms)
            except Exception as exc:
                logger.warning("consumer %s: close did not complete: %s", self.name, exc)
        capi.hivent_consumer_destroy(handle)

    @property
    def state(self) -> str:
        """Connection state: connecting, connected, backoff, failed or closed (also before start())."""
        if self._handle is None or self._inherited:
            return "closed"
        return capi.hivent_state_name(capi.hivent_consumer_state(self._handle))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failure(self) -> Optional[HiventError]:
        """The Failed error once the connection has failed for good, else None."""
        return self._failure

    def _check_usable(self) -> None:
        if self._inherited:
            raise error_class("HIVENT_ERR_FORKED")(
                f"this consumer was created in process {self._pid} and inherited through "
                f"fork(); create a new consumer in process {os.getpid()}",
                capi.HIVENT_ERR_FORKED,
            )
        if self._closed:
            raise error_class("HIVENT_ERR_DESTROYED")(
                "the consumer is closed", capi.HIVENT_ERR_DESTROYED
            )

    def _check_not_in_process(self, what: str) -> None:
        # A nested dispatch would run process() for later events of the
        # same partition before the current one returns, breaking order.
        if self._processing_thread == threading.get_ident():
            raise error_class("HIVENT_ERR_STATE")(
                f"consumer {self.name}: {what} called from inside process(). Return from "
                "process(), and the running loop dispatches the next event",
                capi.HIVENT_ERR_STATE,
            )

    def _mark_inherited(self) -> None:
        if self._pid == os.getpid():
            return
        self._inherited = True
        self._poll_lock = threading.RLock()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # A consumer dropped without close() leaves its channel, so the
        # server gives its partitions to the other consumers of the service.
        if getattr(self, "_handle", None) is None:
            return
        try:
            self.close()
        except Exception:
            pass

    # ---- dispatching ----

    def _poll_once(self, timeout_ms: int) -> int:
        self._check_usable()
        with self._poll_lock:
            handled = 0
            while self._handle is not None and handled <= DRAIN_MAX:
                notice = capi.hivent_consumer_next(self._handle, timeout_ms if handled == 0 else 0)
                if notice is None:
                    break
                try:
                    self._handle_notice(notice)
                finally:
                    capi.hivent_notice_destroy(notice)
                handled += 1
            return handled

    def _handle_notice(self, notice: Any) -> None:
        try:
            fields = capi.notice_fields(notice)
        except ValueError as exc:
            # Only an event whose payload is not valid MessagePack gets here.
            logger.error("consumer %s: undecodable event: %s", self.name, exc)
            self._reject(capi.hivent_notice_event(notice), None, f"undecodable payload: {exc}")
            return
        if fields[0] != NOTICE_EVENT:
            self._note_failure(fields)
            handle_common(fields, f"consumer {self.name}", self._on_state, self._on_error)
            return
        event = Event.from_fields(fields[4])
        reason = self._call_process(event)
        event_ptr = capi.hivent_notice_event(notice)
        if reason is None:
            self._ack(event_ptr, event)
        else:
            self._reject(event_ptr, event, reason)

    def _note_failure(self, fields: Tuple[Any, ...]) -> None:
        # The core posts a failed state notice, then a HIVENT_ERR_FAILED
        # error notice, both with a message naming the last error.  The
        # failed state is final, so the first of them decides.
        kind, code, message = fields[0], fields[1], fields[2]
        failed_error = kind == NOTICE_ERROR and code == capi.HIVENT_ERR_FAILED
        if failed_error:
            self._failure_error_seen = True
        failed_state = kind == NOTICE_STATE and fields[5] == capi.HIVENT_STATE_FAILED
        if not (failed_state or failed_error) or self._failure is not None:
            return
        self._failure = error_class("HIVENT_ERR_FAILED")(
            message or capi.hivent_err_str(capi.HIVENT_ERR_FAILED), capi.HIVENT_ERR_FAILED
        )

    def _call_process(self, event: Event) -> Optional[str]:
        outer = self._processing_thread
        self._processing_thread = threading.get_ident()
        try:
            result = self.process(event)
        except Exception as exc:
            logger.exception("consumer %s: process() raised for event %s (uuid %s, queue %s)",
                             self.name, event.name, event.uuid, event.queue)
            return f"{type(exc).__name__}: {exc}"
        finally:
            self._processing_thread = outer
        reason = failure_reason(result)
        if reason is not None:
            logger.warning("consumer %s: process() failed for event %s (uuid %s, queue %s): %s",
                           self.name, event.name, event.uuid, event.queue, reason)
        return reason

    def _ack(self, event_ptr: Any, event: Event) -> None:
        if self._closed_in_process(event.uuid):
            return
        try:
            capi.hivent_consumer_ack(self._handle, event_ptr)
        except Exception as exc:
            logger.warning("consumer %s: ack of event %s failed, it will be redelivered: %s",
                           self.name, event.uuid, exc)
            return
        self.processed += 1
        hook = getattr(self, "event_processing_succeeded", None)
        if hook is not None:
            call_safely(hook, "event_processing_succeeded", event)

    def _reject(self, event_ptr: Any, event: Optional[Event], reason: str) -> None:
        # The reason is a C string in UTF-8: NUL and lone surrogates become escapes.
        reason = reason[:_REASON_MAX].replace("\0", "\\0")
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        self.failed += 1
        if self._closed_in_process(event.uuid if event else "?"):
            return
        try:
            capi.hivent_consumer_reject(self._handle, event_ptr, reason)
        except Exception as exc:
            logger.warning("consumer %s: dead-lettering event %s failed, it will be "
                           "redelivered: %s", self.name, event.uuid if event else "?", exc)
        hook = getattr(self, "event_processing_failed", None)
        if hook is not None and event is not None:
            call_safely(hook, "event_processing_failed", event, reason)


    def _closed_in_process(self, uuid: str) -> bool:
        """Log and return True when process() closed the consumer, so @uuid cannot be settled."""
        if self._handle is not None:
            return False
        logger.warning("consumer %s: closed inside process(), so event %s is neither "
                       "acknowledged nor dead-lettered; the server redelivers it",
                       self.name, uuid)
        return True


class _StopSignals:
    """Context that makes SIGINT and SIGTERM stop the given consumers, on the main thread only."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, consumers: List[Consumer]) -> None:
        self.consumers = consumers
        self.previous: List[Tuple[int, Any]] = []

    def __enter__(self) -> "_StopSignals":
        if not self.consumers or threading.current_thread() is not threading.main_thread():
            return self
        for signum in self.SIGNALS:
            self.previous.append((signum, signal.signal(signum, self._handler)))
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        logger.info("received %s, stopping %d consumer(s)", signal.Signals(signum).name,
                    len(self.consumers))
        for consumer in self.consumers:
            consumer.stop()

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self.previous:
            signal.signal(signum, handler)
        self.previous.clear()


def run(*consumers: Consumer, timeout: Optional[float] = None, handle_signals: bool = True) -> None:
    """Run several consumers on the calling thread until all stop, then close them.

    Waits in select() on their descriptors (GIL released, at most 200 ms at
    a time).  SIGINT and SIGTERM stop all of them when ``handle_signals``
    is set and this runs on the main thread.  With ``timeout`` (seconds) it
    returns after that time and leaves the consumers open.  When one
    consumer's connection fails for good, it closes all of them and raises
    that consumer's :class:`hivent.Failed`, as Consumer.run() does.
    """
    if not consumers:
        raise ValueError("run() needs at least one consumer")
    for consumer in consumers:
        consumer._check_not_in_process("hivent.run()")
    if timeout is not None:
        timeout = check_seconds("timeout", timeout)
    for consumer in consumers:
        consumer.start()
        consumer._stop.clear()
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    by_fd = {consumer.fileno(): consumer for consumer in consumers}
    with _StopSignals(list(consumers) if handle_signals else []):
        try:
            failed = _first_failed(consumers)
            while failed is None and any(not c._stop.is_set() for c in consumers):
                wait = WAKE_INTERVAL_MS / 1000
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    wait = min(wait, left)
                active = [fd for fd, c in by_fd.items() if not c._stop.is_set()]
                readable, _, _ = select.select(active, [], [], wait)
                for fd in readable:
                    by_fd[fd]._poll_once(0)
                failed = _first_failed(consumers)
        except BaseException:
            for consumer in consumers:
                consumer.close()
            raise
    if failed is not None:
        failed._await_failure_error()
    for consumer in consumers:
        consumer.close()
    if failed is not None:
        raise failed._failure  # type: ignore[misc]


def _first_failed(consumers: Tuple[Consumer, ...]) -> Optional[Consumer]:
    for consumer in consumers:
        if consumer._failure is not None:
            return consumer
    return None
