"""A long session emits signals by the ten thousand (progress, drags): it must not crash."""

import sys


def test_many_emits_keep_the_reference_count_of_true():
    from surgplan.ui.qtcompat import _Probe, emit

    probe = _Probe()
    seen = []
    probe.fired.connect(seen.append)
    before = sys.getrefcount(True)
    for n in range(20_000):
        emit(probe.fired, n)
    assert len(seen) == 20_000
    # Without the compensation PySide6 6.12 on CPython 3.11 loses 20 000 references
    # here and aborts ("bool_dealloc") once True's count reaches zero.
    assert abs(sys.getrefcount(True) - before) < 10
