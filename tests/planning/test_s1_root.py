"""The traversing root at L5-S1 (S1) is assessed by the L5-S1 plans on the phantom."""

from __future__ import annotations

import pytest

from surgplan.planning import PlanningContext, propose


@pytest.fixture(scope="module")
def ctx(small_phantom, small_phantom_truth):
    return PlanningContext.build(small_phantom_truth, small_phantom.ct)


@pytest.mark.parametrize("side", ["left", "right"])
def test_ield_l5_s1_assesses_the_s1_root(ctx, side):
    """IELD's main dangers are the sac and the traversing root (DOMAIN.md): at L5-S1 the
    S1 root lies behind the posterolateral disc, so the cannula there must retract it
    (touching it is a high risk, not an impossible path), and the plan says so."""
    best = propose(ctx, "ield", "L5-S1", side)[0]
    root = best.structure(f"nerve root S1 {side}")
    assert root.assessed and root.provenance == "segmented"
    assert root.clearance_mm is not None and root.contact_probability is not None
    assert not any("not in the anatomy" in r for r in best.risk.reasons)
    # the 7 mm cannula 8 mm from the midline overlaps the 5.8 mm root (measured −3.9 to
    # −4.3 mm): a retraction, never a path straight down its centre line
    assert -5.8 < root.clearance_mm < 1.0 and best.category == "high"
    assert any(f"nerve root S1 {side}" in r for r in best.risk.reasons)


@pytest.mark.parametrize("side", ["left", "right"])
def test_teld_l5_s1_keeps_clear_of_the_traversing_root(ctx, side):
    """TELD passes through Kambin's triangle, whose medial side is the traversing root: the
    proposal passes beside the S1 root, not through it (measured 2.0–2.9 mm)."""
    best = propose(ctx, "teld", "L5-S1", side)[0]
    root = best.structure(f"nerve root S1 {side}")
    assert root.assessed and root.clearance_mm > 0.5
    assert best.structure(f"nerve root L5 {side}").assessed
