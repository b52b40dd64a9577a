"""The phantom's ground truth as an Anatomy: what the planner and the report test against."""

import numpy as np

from surgplan.imaging.phantom_truth import truth_anatomy
from surgplan.imaging.structures import PART_CODES


def test_truth_anatomy_holds_every_phantom_structure(small_phantom):
    case = small_phantom
    a = truth_anatomy(case)
    assert a.vertebra_names == ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
    for name in ("disc L4-L5", "dural sac", "nerve root L4 left", "ilium right", "aorta", "skin"):
        assert np.array_equal(a.mask(name), case.mask(name)), name
    # Every voxel inside the body carries a label in one of the two maps.
    inside = case.labels > 0
    assert np.array_equal((a.vertebrae > 0) | (a.structures > 0), inside)


def test_truth_parts_and_frames(small_phantom):
    a = truth_anatomy(small_phantom)
    assert a.has_parts
    ped = a.part_mask("pedicle left", "L4")
    assert ped.any() and not (ped & ~a.mask("L4")).any()
    # The left pedicle lies to the patient's left (+x in LPS) of the body centre.
    f = a.structure("L4").frame
    c = a.ijk_to_lps[:3, :3] @ np.argwhere(ped).mean(0)[::-1] + a.ijk_to_lps[:3, 3]
    assert (c - f.origin_lps) @ f.lr > 5.0
    assert (c - f.origin_lps) @ f.ap > 5.0  # and behind the body
    assert set(np.unique(a.parts[a.vertebrae == 0])) == {0}
    assert PART_CODES["body"] in np.unique(a.parts)
