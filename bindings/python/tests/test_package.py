"""Installed package layout: type stubs and the generated exception classes."""

from __future__ import annotations

import ast
from pathlib import Path

import hivent
from hivent import _errors, capi

PACKAGE = Path(hivent.__file__).parent


def test_typed_marker_and_stubs_installed():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "__init__.pyi").is_file()
    assert (PACKAGE / "memory.pyi").is_file()


def test_stub_lists_every_error_class():
    tree = ast.parse((PACKAGE / "__init__.pyi").read_text())
    stubbed = {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id == "HiventError" for base in node.bases)
    }
    generated = {cls.__name__ for cls in _errors.ERROR_CLASSES.values()}
    assert stubbed == generated


def test_error_class_per_core_code():
    codes = [capi.hivent_err_code_at(i) for i in range(capi.hivent_err_count())]
    for code in codes:
        if code == 0:
            continue
        cls = _errors.ERROR_CLASSES[code]
        assert issubclass(cls, hivent.HiventError)
        assert cls.code == code
        assert cls.symbol == capi.hivent_err_name(code)
        assert getattr(hivent, cls.__name__) is cls


def test_error_class_names():
    assert hivent.TimedOut.symbol == "HIVENT_ERR_TIMED_OUT"
    assert hivent.QueueFull.symbol == "HIVENT_ERR_QUEUE_FULL"
    assert issubclass(hivent.TimedOut, TimeoutError)
    assert issubclass(hivent.InvalidValue, ValueError)


def test_core_error_raises_registered_class():
    conf = capi.hivent_conf_new()
    try:
        try:
            capi.hivent_conf_set(conf, "server.port", "not a port")
        except hivent.InvalidValue as exc:
            assert exc.code == capi.HIVENT_ERR_INVALID_VALUE
            assert "server.port" in str(exc)
        else:
            raise AssertionError("conf_set accepted an invalid port")
    finally:
        capi.hivent_conf_destroy(conf)


def test_version_matches_core():
    assert hivent.__version__ == capi.hivent_version_str()
    capi.hivent_version_check(capi.HIVENT_VERSION)
