"""TELD on a real abdominal CT, segmented by SurgPlan itself."""

from __future__ import annotations

import pytest

from surgplan.imaging.loader import load_volume
from surgplan.imaging.segment import segment_ct
from surgplan.planning import PlanningContext, propose


@pytest.mark.realdata
def test_teld_l4_l5_is_proposed_on_both_sides_of_a_real_ct(shared_data):
    vol = load_volume(shared_data / "ct-abdomen-lumbar" / "ct.nii.gz", modality="CT")
    ctx = PlanningContext.build(segment_ct(vol), vol)
    for side in ("left", "right"):
        props = propose(ctx, "teld", "L4-L5", side)
        assert props, side
        best = props[0]
        assert best.category != "infeasible", (side, best.risk.reasons)
        assert best.reaches
        # a transforaminal path comes from behind and the side, pointing medially
        assert best.angles_deg["vertebra"]["medial_tilt"] > 0
