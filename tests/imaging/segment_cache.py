"""``segment_ct`` of the shared small phantom, computed once per test session.

Both the parts and the neural tests read the same segmentation; a module-level
cache keeps it to one run (≈ 8 s) without touching the shared conftest.
"""

from __future__ import annotations

_CACHE: dict = {}


def segmented(case):
    """``segment_ct(case.ct)``, cached by the case object."""
    key = id(case)
    if key not in _CACHE:
        from surgplan.imaging.segment import segment_ct

        _CACHE[key] = (case, segment_ct(case.ct))
    return _CACHE[key][1]


def matched_truth(seg, truth) -> dict:
    """``our vertebra name → true vertebra name`` by largest overlap.

    The parts and neural tests measure their own steps, not the naming (tested in
    ``test_segment_ct``), so they compare each vertebra with the one it covers.
    """
    import numpy as np

    out = {}
    for name in seg.vertebra_names:
        counts = np.bincount(truth.vertebrae[seg.mask(name)].ravel(),
                             minlength=len(truth.vertebra_names) + 1)
        counts[0] = 0
        if counts.any():
            out[name] = truth.vertebra_names[int(np.argmax(counts)) - 1]
    return out
