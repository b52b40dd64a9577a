"""User edits of an Anatomy: paint, erase, merge, split — new values, provenance recorded."""

from __future__ import annotations

import numpy as np
import pytest

from surgplan.imaging.anatomy_edits import brush_mask, merge, paint, split


def test_paint_grows_a_vertebra_in_the_slice_only_and_records_it(small_phantom_truth):
    a = small_phantom_truth
    c = a.centroid_lps("L3") + np.array([0.0, -40.0, 0.0])  # in front of the body
    before = a.mask("L3")
    b = paint(a, "L3", c, 4.0, normal_lps=(0, 0, 1))
    added = b.mask("L3") & ~before
    assert added.any() and not (before & ~b.mask("L3")).any()
    k = np.nonzero(added)[0]
    assert k.min() == k.max()  # one axial slice: the one the user sees
    assert b.structure("L3").provenance == "edited" and "painted" in b.structure("L3").notes
    assert a.structure("L3").provenance != "edited" and before.sum() == a.mask("L3").sum()
    assert not b.parts[added].any()  # painted voxels have no part code
    assert any("L3" in f and "painted" in f for f in b.findings)


def test_paint_a_vertebra_takes_voxels_from_its_neighbour(small_phantom_truth):
    a = small_phantom_truth
    lo = a.centroid_lps("L4")
    hi = a.centroid_lps("L3")
    # A ball on L4's upper endplate region, near L3: paint L3 there.
    p = lo + 0.6 * (hi - lo)
    m = brush_mask(a, p, 6.0)
    assert m is not None
    b = paint(a, "L4", p, 6.0)
    b = paint(b, "L3", lo, 5.0)
    assert b.structure("L4").provenance == "edited"
    assert "lost" in b.structure("L4").notes
    assert (b.mask("L3") & b.mask("L4")).sum() == 0


def test_erase_and_no_op(small_phantom_truth):
    a = small_phantom_truth
    c = a.centroid_lps("L2")
    b = paint(a, "L2", c, 5.0, erase=True)
    assert b.mask("L2").sum() < a.mask("L2").sum()
    far = c + np.array([0.0, -150.0, 0.0])
    assert paint(a, "L2", far, 3.0, erase=True) is a  # nothing of L2 there: same value
    with pytest.raises(KeyError, match="L9"):
        paint(a, "L9", c, 3.0)
    with pytest.raises(ValueError, match="radius"):
        paint(a, "L2", c, 0.0)


def test_merge_then_split_restores_two_vertebrae(small_phantom_truth):
    a = small_phantom_truth
    n4, n5 = int(a.mask("L4").sum()), int(a.mask("L5").sum())
    m = merge(a, "L4", "L5")
    assert "L5" not in m.names and int(m.mask("L4").sum()) == n4 + n5
    assert m.structure("L4").provenance == "edited"
    # Split at the L4-L5 disc, the lower part named L5 again (normal pointing inferior).
    disc = a.centroid_lps("disc L4-L5")
    s = split(m, "L4", disc, (0.0, 0.0, -1.0), "L5")
    assert s.vertebra_names.index("L4") < s.vertebra_names.index("L5")
    overlap = (s.mask("L5") & a.mask("L5")).sum() / a.mask("L5").sum()
    assert overlap > 0.8
    assert s.structure("L5").provenance == "edited"
    with pytest.raises(ValueError, match="already used"):
        split(s, "L4", disc, (0, 0, 1), "L5")
    with pytest.raises(ValueError, match="does not cut"):
        split(s, "L4", disc + np.array([0, 0, 300.0]), (0, 0, 1), "L6")
    with pytest.raises(ValueError, match="only vertebrae"):
        merge(a, "L4", "aorta")
