"""Producer client."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import select
import threading
import time
import weakref
from concurrent.futures import Future, _base
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from . import capi
from ._args import check_seconds, check_text, timeout_ms
from ._config import build_conf, defaults, merge_options, overlay_options
from ._event import Event
from ._notices import (
    DRAIN_MAX,
    NOTICE_DELIVERY,
    call_safely,
    error_class,
    handle_common,
    logger,
    make_error,
    register,
    unregister,
)

DeliveryCallback = Callable[[Optional[BaseException], Optional[Event]], Any]

# Event.from_packed_fields() without the extra call: the payload of a
# delivered event stays MessagePack bytes until it is read.
_event_from_fields = Event.from_fields

# The wrapped C function itself, without the pass-through Python function
# that SWIG's proxy module defines around it.
_emit_async = getattr(capi, "_capi", capi).hivent_emit_async


# Guards the creation of an _EmitFuture's condition against the
# dispatcher resolving the future at the same time.
_condition_lock = threading.Lock()


class _EmitFuture(Future):
    """The Future of one emit: it starts running, so cancel() returns False.

    Most emit futures are resolved before anybody waits on them, so the
    threading.Condition that every Future method uses is created only on
    first use, and :meth:`_finish` resolves a future that has none without
    taking any lock but one global one.  Both steps run under
    _condition_lock: a future either gets its result before its condition
    exists, and every later waiter sees the finished state, or after, and
    then goes through Future.set_result() with its waiters and callbacks.
    """

    def __init__(self) -> None:
        self._lazy_condition: Optional[threading.Condition] = None
        self._state = _base.RUNNING
        self._result = None
        self._exception = None
        self._waiters: list = []
        self._done_callbacks: list = []

    @property  # type: ignore[override]
    def _condition(self) -> threading.Condition:
        with _condition_lock:
            if self._lazy_condition is None:
                self._lazy_condition = threading.Condition()
            return self._lazy_condition

    def _finish(self, result: Any, exception: Optional[BaseException]) -> None:
        """Resolve the future with @result, or with @exception when it is not None."""
        with _condition_lock:
            if self._lazy_condition is None:
                self._result = result
                self._exception = exception
                self._state = _base.FINISHED
                return
        if exception is None:
            self.set_result(result)
        else:
            self.set_exception(exception)


# Maximum time the dispatcher thread waits in one select() call; close()
# wakes it at once through its wake pipe.  A sync emit waits in slices of
# this length too, so signal handlers (KeyboardInterrupt) run within about
# 200 ms.
_DISPATCH_WAIT_MS = 200


def _timeout_ms(timeout: Optional[float]) -> int:
    """Convert a timeout in seconds (None = no limit) to the core's milliseconds (-1 = no limit)."""
    return timeout_ms("timeout", timeout)


class Client:
    """A producer connection to hiventd (or to the memory transport).

    Options are the core's configuration keys.  Keyword arguments (nested
    dicts give dotted keys: ``server={"host": ...}``) win over the dict,
    which wins over the options given to :func:`hivent.configure`, which
    win over HIVENT_* environment variables.  An option given as None
    keeps the value below it.  ``env`` (read HIVENT_* variables) defaults to the
    ``env`` given to configure(), else True.  ``options`` holds the dict
    and keyword arguments only.

    Delivery reports of :meth:`emit_async` are dispatched on a background
    Python thread (``dispatch="thread"``, the default), or only inside
    :meth:`poll`, :meth:`flush` and :meth:`close` on the calling thread
    (``dispatch="manual"``).  Callbacks never run on a core I/O thread.
    """

    def __init__(
        self,
        config: Optional[Mapping[str, Any]] = None,
        /,
        *,
        env: Optional[bool] = None,
        dispatch: str = "thread",
        on_state: Optional[Callable[[str, int, int], Any]] = None,
        on_error: Optional[Callable[[BaseException], Any]] = None,
        **options: Any,
    ) -> None:
        if dispatch not in ("thread", "manual"):
            raise ValueError(f"dispatch must be 'thread' or 'manual', not {dispatch!r}")
        self._handle: Any = None
        self._closed = True
        self.options: Dict[str, Any] = merge_options(config, options)
        configured, configured_env = defaults()
        conf = build_conf(overlay_options(configured, self.options),
                          configured_env if env is None else env)
        try:
            self._flush_timeout = int(capi.hivent_conf_get(conf, "flush_timeout")) / 1000
            # close() waits for outstanding emits itself, up to its own
            # timeout, so the core client gets flush_timeout 0 and its
            # destroy fails the rest at once instead of waiting again.
            capi.hivent_conf_set(conf, "flush_timeout", "0")
            self._handle = capi.hivent_client_new(conf)
        except BaseException:
            capi.hivent_conf_destroy(conf)
            raise
        self._closed = False
        self._inherited = False
        self._pid = os.getpid()
        self._dispatch = dispatch
        self._on_state = on_state
        self._on_error = on_error
        self._ids = itertools.count(1)
        self._pending: Dict[int, Tuple[_EmitFuture, Optional[DeliveryCallback]]] = {}
        # Ids of sync emits whose caller stopped waiting (timeout or an
        # exception such as KeyboardInterrupt); their results are dropped.
        self._abandoned: Set[int] = set()
        self._in_callback = 0  # results being resolved, no longer in _pending
        # Notices taken from the core whose handling an exception such as
        # KeyboardInterrupt cut short; the next poll handles them first.
        self._backlog: list = []
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._poll_lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        # close() writes a byte to _wake_write so the dispatcher thread
        # leaves its select() at once instead of after its wait slice.
        self._wake_read = self._wake_write = -1
        register(self)
        if dispatch == "thread":
            self._wake_read, self._wake_write = os.pipe()
            os.set_blocking(self._wake_write, False)
            # The thread holds only a weak reference, so a Client dropped
            # without close() is still collected, and __del__ closes it.
            self._thread = threading.Thread(
                target=_dispatch_loop,
                args=(weakref.ref(self), self._stop, self._wake_read,
                      capi.hivent_client_fd(self._handle)),
                name=f"hivent-client-{id(self):x}", daemon=True,
            )
            self._thread.start()

    def __repr__(self) -> str:
        status = "closed" if self._closed else self.state
        return f"<hivent.Client {status} pending={len(self._pending)}>"

    # ---- emitting ----

    def emit(
        self,
        name: str,
        payload: Optional[Dict[str, Any]] = None,
        *,
        version: int = 1,
        cid: Optional[str] = None,
        key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Event:
        """Emit an event, wait for the server's reply and return the published event.

        ``timeout`` is in seconds.  With None the wait ends when the core
        reports a result: request_timeout after the event was sent, or the
        failed state.  Raises TimedOut, QueueFull, Failed, InvalidArg and
        the other HiventError subclasses.  A payload that cannot be
        converted raises TypeError (such as a dict key that is not str),
        OverflowError or ValueError (such as a lone surrogate in a str),
        naming the field.

        The event is queued once and never sent again by this call.  The
        wait runs in slices of at most 200 ms, so a signal handler (Ctrl-C
        raising KeyboardInterrupt) interrupts it within about 200 ms.  After
        a TimedOut or an interruption the event stays queued and may still
        be published; its result is then dropped.  With
        ``dispatch="manual"`` (or inside a delivery callback) emit()
        dispatches pending notices while it waits, as flush() does.
        """
        self._check_usable()
        self._check_emit_args(name, version, cid, key)
        limit_ms = _timeout_ms(timeout)  # rejects a negative timeout before queueing
        deadline = None if timeout is None else time.monotonic() + timeout
        msg_id, future = self._queue_emit(name, payload, version, cid, key, None)
        try:
            self._wait_for_result(future, deadline)
        except BaseException:
            self._abandon(msg_id)
            raise
        # A result being dispatched right now is no longer pending, and its
        # future completes at once, so only a still pending emit timed out.
        if not future.done() and self._abandon(msg_id):
            raise error_class("HIVENT_ERR_TIMED_OUT")(
                f"no reply to emit of {name} within {limit_ms} ms", capi.HIVENT_ERR_TIMED_OUT
            )
        return future.result()

    def _wait_for_result(self, future: "Future[Event]", deadline: Optional[float]) -> None:
        """Wait in slices until @future is resolved or @deadline (monotonic seconds) passed."""
        while not future.done():
            wait = _DISPATCH_WAIT_MS / 1000
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, left)
            if self._thread is not None and self._thread is not threading.current_thread():
                concurrent.futures.wait([future], timeout=wait)
            else:
                # Manual dispatch, or emit() called from a callback on the
                # dispatcher thread: nobody else resolves the future.
                self._poll_once(max(int(wait * 1000), 1))

    def _abandon(self, msg_id: int) -> bool:
        """Stop tracking a pending emit so its result is dropped; False when it was not pending."""
        with self._lock:
            if self._pending.pop(msg_id, None) is None:
                return False
            self._abandoned.add(msg_id)
            if not self._pending and not self._in_callback:
                self._drained.notify_all()
            return True

    def emit_async(
        self,
        name: str,
        payload: Optional[Dict[str, Any]] = None,
        *,
        version: int = 1,
        cid: Optional[str] = None,
        key: Optional[str] = None,
        callback: Optional[DeliveryCallback] = None,
    ) -> "Future[Event]":
        """Queue an event and return a Future of the published event.

        ``callback(error, event)``, when given, runs on the dispatching
        thread once the result is known: error is None on success, else
        the HiventError (event is then the event as sent).  An exception in
        the callback is logged with its traceback.  Errors known at once
        (invalid arguments, full queue, failed state) raise here.
        """
        if self._closed or self._inherited:
            self._check_usable()
        # Common case checked inline: str name and key without NUL, no cid.
        if not (type(name) is str and "\0" not in name and cid is None
                and (key is None or (type(key) is str and "\0" not in key))
                and type(version) is int):
            self._check_emit_args(name, version, cid, key)
        future = _EmitFuture()
        msg_id = next(self._ids)
        with self._lock:
            self._pending[msg_id] = (future, callback)
        try:
            _emit_async(self._handle, name, payload, version, cid, key, msg_id)
        except BaseException:
            with self._lock:
                self._pending.pop(msg_id, None)
                self._drained.notify_all()
            raise
        return future

    def _queue_emit(self, name: str, payload: Optional[Dict[str, Any]], version: int,
                    cid: Optional[str], key: Optional[str],
                    callback: Optional[DeliveryCallback]) -> Tuple[int, "Future[Event]"]:
        """Queue an emit in the core and return its id and the Future of its result."""
        future: "Future[Event]" = _EmitFuture()
        msg_id = next(self._ids)
        with self._lock:
            self._pending[msg_id] = (future, callback)
        try:
            capi.hivent_emit_async(self._handle, name, payload, version, cid, key, msg_id)
        except BaseException:
            with self._lock:
                self._pending.pop(msg_id, None)
                self._drained.notify_all()
            raise
        return msg_id, future

    @staticmethod
    def _check_emit_args(name: str, version: int, cid: Optional[str], key: Optional[str]) -> None:
        check_text("name", name)
        check_text("cid", cid)
        check_text("key", key)
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be int, not {type(version).__name__}")
        if not -2**63 <= version < 2**63:
            raise OverflowError(f"version must fit in a signed 64-bit integer, not {version}")

    # ---- dispatching ----

    def poll(self, timeout: float = 0) -> int:
        """Dispatch pending notices, waiting up to ``timeout`` seconds for the first.

        Returns the number handled.  With ``dispatch="thread"`` the
        background thread dispatches, and this returns 0 at once.
        """
        self._check_usable()
        if self._thread is not None:
            return 0
        return self._poll_once(_timeout_ms(timeout))

    def flush(self, timeout: Optional[float] = None) -> int:
        """Wait until every asynchronous emit has its result and its callback ran.

        ``timeout`` is in seconds (None: no limit).  Returns the number of
        emits still outstanding (0 when all completed).
        """
        self._check_usable()
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        if self._thread is not None and self._thread is not threading.current_thread():
            return self._wait_drained(deadline)
        # Manual dispatch, or flush() called from a callback on the
        # dispatcher thread, which must dispatch the remaining results itself.
        return self._flush_manual(deadline)

    def _flush_manual(self, deadline: Optional[float]) -> int:
        while True:
            with self._lock:
                remaining = len(self._pending)
            if remaining == 0:
                return 0
            wait_ms = _DISPATCH_WAIT_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return remaining
                wait_ms = min(wait_ms, max(int(left * 1000), 1))
            self._poll_once(wait_ms)

    def _wait_drained(self, deadline: Optional[float]) -> int:
        with self._lock:
            while self._pending or self._in_callback:
                if deadline is None:
                    self._drained.wait(_DISPATCH_WAIT_MS / 1000)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._drained.wait(min(left, _DISPATCH_WAIT_MS / 1000))
            return len(self._pending) + self._in_callback

    def _poll_once(self, timeout_ms: int) -> int:
        with self._poll_lock:
            handled = 0
            if self._handle is None:
                return 0
            # Results taken from _pending but not resolved yet count in
            # _in_callback, so flush() waits for them; they are counted
            # down once per batch instead of once per notice.
            taken = 0
            batch = self._backlog
            if batch:
                self._backlog = []
            else:
                batch = capi.client_drain(self._handle, timeout_ms, DRAIN_MAX + 1)
            try:
                # A callback that closes the client leaves the rest of the
                # batch to close(), which already failed them.
                for fields in batch:
                    handled += 1
                    if fields[0] != NOTICE_DELIVERY:
                        handle_common(fields, "client", self._on_state, self._on_error)
                    else:
                        entry = self._take_pending(fields[3])
                        if entry is not None:
                            taken += 1
                            self._resolve(entry, fields)
                    if self._handle is None:
                        break
            except BaseException:
                self._backlog = batch[handled:] + self._backlog
                raise
            finally:
                if taken:
                    with self._lock:
                        self._in_callback -= taken
                        if not self._pending and not self._in_callback:
                            self._drained.notify_all()
            return handled

    def _take_pending(self, msg_id: int) -> Optional[Tuple[_EmitFuture, Optional[DeliveryCallback]]]:
        """Remove and return the entry of emit @msg_id, counting it in _in_callback.

        Returns None (and logs) when the emit is not pending.
        """
        with self._lock:
            entry = self._pending.pop(msg_id, None)
            if entry is not None:
                self._in_callback += 1
                return entry
            abandoned = msg_id in self._abandoned
            self._abandoned.discard(msg_id)
        if abandoned:
            logger.debug("dropped the result of emit id %d: its emit() stopped waiting", msg_id)
        else:
            logger.warning("delivery report for unknown emit id %d", msg_id)
        return None

    @staticmethod
    def _resolve(entry: Tuple[_EmitFuture, Optional[DeliveryCallback]],
                 fields: Tuple[Any, ...]) -> None:
        future, callback = entry
        event = _event_from_fields(fields[4]) if fields[4] is not None else None
        error = make_error(fields[1], fields[2]) if fields[1] else None
        future._finish(event, error)
        if callback is not None:
            # call_safely() inlined: this runs once per delivery.
            try:
                callback(error, event)
            except Exception:
                logger.exception("delivery callback %r raised", callback)

    # ---- state ----

    @property
    def state(self) -> str:
        """Connection state: connecting, connected, backoff, failed or closed."""
        if self._closed:
            return "closed"
        self._check_usable()
        return capi.hivent_state_name(capi.hivent_client_state(self._handle))

    @property
    def outstanding(self) -> int:
        """Number of emits whose result has not been dispatched yet.

        Asynchronous emits, and sync emits while their emit() call waits.
        """
        with self._lock:
            return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_usable(self) -> None:
        if self._inherited:
            raise error_class("HIVENT_ERR_FORKED")(
                f"this client was created in process {self._pid} and inherited through "
                f"fork(); create a new hivent.Client in process {os.getpid()}",
                capi.HIVENT_ERR_FORKED,
            )
        if self._closed:
            raise error_class("HIVENT_ERR_DESTROYED")(
                "the client is closed", capi.HIVENT_ERR_DESTROYED
            )

    def _mark_inherited(self) -> None:
        """Called in a forked child: the core handle and the dispatcher belong to the parent."""
        if self._pid == os.getpid():
            return
        self._inherited = True
        self._thread = None
        self._in_callback = 0
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._poll_lock = threading.RLock()

    # ---- closing ----

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush outstanding emits for up to ``timeout`` seconds, fail the rest and free the client.

        With None the wait is the flush_timeout option; with 0 close()
        returns without waiting for the server.  The futures still pending
        then fail with Destroyed and their callbacks run with that error,
        so the event may or may not have been published.  Closing twice
        does nothing.  In a process that inherited the client through
        fork(), close() only releases the Python object.
        """
        if self._closed:
            return
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        self._closed = True
        unregister(self)
        if self._inherited:
            capi.hivent_client_destroy(self._handle)
            self._handle = None
            self._close_wake_pipe()
            return
        if self._thread is not None:
            self._stop.set()
            try:
                os.write(self._wake_write, b"\0")
            except BlockingIOError:
                pass  # the pipe is full, so the thread is awake already
            if self._thread is not threading.current_thread():
                self._thread.join()
            self._thread = None
        self._close_wake_pipe()
        if timeout is None:
            timeout = self._flush_timeout
        timeout = max(timeout, 0)
        # Results are dispatched here, on the closing thread: the core drops
        # the delivery notices that hivent_client_destroy() produces, so
        # whatever is still pending after this flush fails with Destroyed.
        self._flush_manual(time.monotonic() + timeout)
        # Notices already queued (a state change or a log line that the
        # stopped dispatcher did not take) would be dropped by destroy.
        self._poll_once(0)
        capi.hivent_client_destroy(self._handle)
        self._handle = None
        self._fail_pending(timeout)

    def _close_wake_pipe(self) -> None:
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1

    def _fail_pending(self, waited: float) -> None:
        with self._lock:
            pending = list(self._pending.items())
            self._pending.clear()
            self._drained.notify_all()
        if not pending:
            return
        logger.warning("client closed with %d emits outstanding after waiting %.3f s, "
                       "so they fail with Destroyed", len(pending), waited)
        destroyed = error_class("HIVENT_ERR_DESTROYED")
        for msg_id, (future, callback) in pending:
            error = destroyed(f"client closed before the result of emit {msg_id} arrived; "
                              "the event may still have been delivered",
                              capi.HIVENT_ERR_DESTROYED)
            future._finish(None, error)
            if callback is not None:
                call_safely(callback, "delivery callback", error, None)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        try:
            self.close()
        except Exception:
            pass


def _dispatch_loop(client_ref: "weakref.ref[Client]", stop: threading.Event,
                   wake_fd: int, notice_fd: int) -> None:
    """Dispatch the notices of the client behind @client_ref until @stop is set.

    Waits in select() on the client's notice descriptor and on @wake_fd
    (written by close()) holding no reference to the client, and takes a
    strong reference only while it dispatches.
    """
    while not stop.is_set():
        try:
            select.select([notice_fd, wake_fd], [], [], _DISPATCH_WAIT_MS / 1000)
        except OSError:
            return  # the descriptors were closed, so the client is gone
        if stop.is_set():
            return
        client = client_ref()
        if client is None:
            return
        failed = False
        try:
            client._poll_once(0)
        except Exception:
            # _poll_once() handles callback errors itself, so this is a
            # failure of the binding; keep dispatching the other notices.
            logger.exception("hivent client dispatcher failed")
            failed = True
        # Dropping the last reference here runs __del__, and so close(), on
        # this thread, which close() allows for.
        del client
        if failed:
            time.sleep(_DISPATCH_WAIT_MS / 1000)
