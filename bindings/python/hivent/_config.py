"""Configuration: option dicts and keyword arguments turned into a core conf.

Option names are the core's keys.  Nested dicts give dotted keys, so
``server={"host": "h", "port": 4000}`` sets ``server.host`` and
``server.port``; a dotted key such as ``"queue.max_events"`` may also be
given directly in a dict.  Values may be str, int, float or bool; None
leaves the option at its default.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from . import capi
from ._args import check_text

logger = logging.getLogger("hivent")

# Options set by hivent.configure(): the default client uses them, and
# consumers take them as defaults under their own options.
_defaults_lock = threading.Lock()
_default_options: Dict[str, Any] = {}
_default_env = True


def set_defaults(options: Mapping[str, Any], env: bool) -> None:
    """Store the flat options and the env flag given to hivent.configure()."""
    global _default_options, _default_env
    with _defaults_lock:
        _default_options, _default_env = dict(options), env


def defaults() -> Tuple[Dict[str, Any], bool]:
    """Return a copy of the options given to hivent.configure() and its env flag."""
    with _defaults_lock:
        return dict(_default_options), _default_env


def overlay_options(base: Mapping[str, Any], own: Mapping[str, Any]) -> Dict[str, Any]:
    """Return @base with the options of @own on top; a None in @own keeps the @base value."""
    merged = dict(base)
    merged.update((key, value) for key, value in own.items() if value is not None)
    return merged


def merge_options(config: Optional[Mapping[str, Any]], options: Mapping[str, Any]) -> Dict[str, Any]:
    """Merge a config mapping and keyword options into one flat dict of dotted keys.

    Keyword options win over the mapping.
    """
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, not {type(config).__name__}")
    flat: Dict[str, Any] = {}
    for source in (config or {}, options):
        for key, value in flatten(source):
            flat[key] = value
    return flat


def flatten(options: Mapping[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """Yield (dotted key, value) pairs of a nested options mapping."""
    for key, value in options.items():
        if not isinstance(key, str):
            raise TypeError(f"option names must be str, not {type(key).__name__}: {key!r}")
        full = prefix + key
        if isinstance(value, Mapping):
            yield from flatten(value, full + ".")
        else:
            yield full, value


def option_text(key: str, value: Any) -> str:
    """Return the text the core expects for an option value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TypeError(f"option {key} must be str, int, float or bool, not {type(value).__name__}")


def default_log_level() -> str:
    """Return the core log level matching the effective level of logger "hivent"."""
    return "debug" if logger.isEnabledFor(logging.DEBUG) else "info"


def build_conf(options: Mapping[str, Any], env: bool = True) -> Any:
    """Create a core conf from defaults, then HIVENT_* variables, then @options.

    Logs are routed through notices (log.queue) so they reach the logging
    module.  Raises UnknownKey or InvalidValue naming the key at fault; the
    caller owns the returned conf.
    """
    conf = capi.hivent_conf_new()
    if conf is None:
        raise MemoryError("hivent_conf_new() failed")
    try:
        capi.hivent_conf_set(conf, "log.queue", "true")
        capi.hivent_conf_set(conf, "log_level", default_log_level())
        if env:
            capi.hivent_conf_load_env(conf)
        for key, value in options.items():
            if value is None:
                continue
            check_text("option name", key)
            text = option_text(key, value)
            check_text(f"option {key}", text)
            capi.hivent_conf_set(conf, key, text)
    except BaseException:
        capi.hivent_conf_destroy(conf)
        raise
    return conf


def known_keys() -> Tuple[str, ...]:
    """Return every configuration key the core accepts."""
    return tuple(capi.hivent_conf_key_at(i) for i in range(capi.hivent_conf_key_count()))
