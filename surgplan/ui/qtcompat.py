"""Work-arounds for defects of the installed Qt binding, detected at run time.

PySide6 6.12.0 on CPython 3.11 loses one reference to ``True`` on every
``Signal.emit()`` called from Python (measured: N emits lower
``sys.getrefcount(True)`` by N).  After a few thousand emits — a progress bar,
a drag — the interpreter aborts with "bool_dealloc: deallocating True or
False".  :func:`emit` emits and gives the reference back when, and only when,
the binding is found to have the defect.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    fired = Signal(int)


def _emit_steals_true() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.fired.emit(0)
    lost = before - sys.getrefcount(True)
    ctypes.pythonapi.Py_IncRef.argtypes = [ctypes.py_object]
    for _ in range(max(lost, 0)):
        ctypes.pythonapi.Py_IncRef(True)  # give back what the probe itself lost
    return lost >= 8


#: True when ``Signal.emit`` from Python leaks a reference to ``True``.
EMIT_STEALS_TRUE = _emit_steals_true()


def emit(signal, *args) -> None:
    """``signal.emit(*args)``, compensating the binding's reference leak if it has one."""
    signal.emit(*args)
    if EMIT_STEALS_TRUE:
        ctypes.pythonapi.Py_IncRef(True)
