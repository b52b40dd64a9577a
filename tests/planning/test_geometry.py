"""Analytic checks of the risk engine: distances, angles, volumes, probabilities, conflicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from surgplan.imaging.anatomy import Anatomy, Structure, VertebraFrame
from surgplan.imaging.structures import PART_CODES
from surgplan.planning import (PlanningContext, Tool, Trajectory, entry_risk_map, evaluate,
                               plan_conflicts)
from surgplan.planning.context import signed_distance_field
from surgplan.planning.metrics import (contact_probabilities, gertzbein_robbins,
                                       line_angles_deg)
from surgplan.planning.propose import segment_distance

SP = 1.0  # mm


def _box_anatomy(with_sac=True, with_body=True):
    """A 1 mm grid, 120 × 120 × 120 mm: an L4 bone slab (lamina part), a disc, a 'dural sac' box.

    Grid origin at (-60, -60, -60) mm; identity axes (LPS).
    """
    n = 120
    aff = np.eye(4)
    aff[:3, 3] = -60.0
    vert = np.zeros((n, n, n), np.uint16)
    struct = np.zeros((n, n, n), np.uint16)
    parts = np.zeros((n, n, n), np.uint8)
    # the slab: y in [10, 20) mm → j 70..79, x, z in [-20, 20)
    vert[40:80, 70:80, 40:80] = 1
    parts[40:80, 70:80, 40:80] = PART_CODES["lamina"]
    # disc L4-L5 at the centre: a 20 mm cube
    struct[50:70, 50:60, 50:70] = 2
    items = [Structure("L4", 1, "vertebrae", "vertebra", "segmented", False, "", np.zeros(3),
                       VertebraFrame(np.zeros(3), np.array([0, 0, 1.0]), np.array([0, 1.0, 0]),
                                     np.array([1.0, 0, 0]))),
             Structure("disc L4-L5", 2, "structures", "disc", "segmented")]
    if with_sac:
        # dural sac: x ≥ 10 mm (i ≥ 70), a box
        struct[40:80, 40:80, 70:90] = 3
        items.append(Structure("dural sac", 3, "structures", "dural sac", "modelled"))
    if with_body:
        body = np.zeros((n, n, n), bool)
        body[5:115, 5:115, 5:115] = True
        struct[body & (struct == 0) & (vert == 0)] = 4
        items.append(Structure("body", 4, "structures", "body", "segmented"))
    return Anatomy((n, n, n), aff, vert, struct, tuple(items), (), parts)


@pytest.fixture(scope="module")
def box_ctx():
    return PlanningContext.build(_box_anatomy())


TOOL = Tool("t", 4.0, 300.0)


def test_clearance_is_measured_from_the_tool_surface(box_ctx):
    # a path along y at x = 0: the sac's first voxel centre is at x = 10 mm, its face at
    # 9.5 mm → clearance 9.5 − 2 = 7.5 mm
    tr = Trajectory("intradiscal", "L4-L5", "left", TOOL, (0.0, 50.0, 0.0), (0.0, 0.0, 0.0))
    m = evaluate(box_ctx, tr)
    sac = m.structure("dural sac")
    assert sac.assessed and sac.provenance == "modelled"
    assert sac.clearance_mm == pytest.approx(7.5, abs=0.3)
    # shift the path 5 mm toward the sac: 2.5 mm clearance
    tr2 = Trajectory("intradiscal", "L4-L5", "left", TOOL, (5.0, 50.0, 0.0), (5.0, 0.0, 0.0))
    assert evaluate(box_ctx, tr2).structure("dural sac").clearance_mm == pytest.approx(2.5,
                                                                                       abs=0.3)


def test_path_through_a_no_go_structure_is_infeasible_and_says_so(box_ctx):
    tr = Trajectory("intradiscal", "L4-L5", "left", TOOL, (15.0, 50.0, 0.0), (15.0, 0.0, 0.0))
    m = evaluate(box_ctx, tr)
    assert m.category == "infeasible"
    assert any("dural sac" in r and "crosses" in r for r in m.risk.reasons)


def test_length_runs_from_the_skin_and_reach_is_checked(box_ctx):
    # body outline ends at y = 55 mm (voxel 114 centre + half); the entry lies outside
    tr = Trajectory("intradiscal", "L4-L5", "left", TOOL, (0.0, 58.0, 0.0), (0.0, 0.0, 0.0))
    m = evaluate(box_ctx, tr)
    assert m.length_mm == pytest.approx(54.0, abs=1.0)
    assert m.reaches
    short = Trajectory("intradiscal", "L4-L5", "left", Tool("short", 1.0, 30.0),
                       (0.0, 58.0, 0.0), (0.0, 0.0, 0.0))
    ms = evaluate(box_ctx, short)
    assert not ms.reaches and ms.category == "infeasible"
    assert any("working length" in r for r in ms.risk.reasons)


def test_bone_volume_of_the_cylinder_through_a_slab(box_ctx):
    # the 10 mm lamina slab crossed square by a 4 mm tool: π r² t = π·4·10 mm³ = 0.1257 ml
    tr = Trajectory("intradiscal", "L4-L5", "left", TOOL, (0.0, 50.0, 0.0), (0.0, 0.0, 0.0))
    m = evaluate(box_ctx, tr)
    assert m.bone_removed_ml["L4 lamina"] == pytest.approx(math.pi * 4 * 10 / 1000, rel=0.08)
    # obliquely at 45° in the axial plane the path in the slab is √2 longer
    tr45 = Trajectory("intradiscal", "L4-L5", "left", TOOL, (-40.0, 40.0, 0.0),
                      (0.0, 0.0, 0.0))
    v45 = evaluate(box_ctx, tr45).bone_removed_ml["L4 lamina"]
    assert v45 == pytest.approx(math.pi * 4 * 10 * math.sqrt(2) / 1000, rel=0.1)


def test_missing_structures_are_reported_not_invented():
    ctx = PlanningContext.build(_box_anatomy(with_sac=False))
    tr = Trajectory("intradiscal", "L4-L5", "left", TOOL, (0.0, 50.0, 0.0), (0.0, 0.0, 0.0))
    m = evaluate(ctx, tr)
    sac = m.structure("dural sac")
    assert not sac.assessed and sac.clearance_mm is None
    assert "dural sac not in the anatomy: its risk is not assessed" in m.risk.reasons
    assert m.category != "low"
    d = m.to_dict()
    assert {s["name"] for s in d["risk"]["structures"]} >= {"dural sac", "aorta"}


def test_no_body_outline_is_said_clearly():
    ctx = PlanningContext.build(_box_anatomy(with_body=False))
    assert len(ctx.skin_vertices_lps) == 0
    assert "no body outline" in ctx.skin_note
    from surgplan.core.errors import PlanningError
    from surgplan.planning import propose

    with pytest.raises(PlanningError, match="no body outline"):
        propose(ctx, "intradiscal", "L4-L5", "left")


def test_angles_in_patient_and_vertebra_axes():
    lr, ap, si = np.eye(3)
    # tool pointing anteriorly (−y), 30° medially from the left (−x), 10° caudally
    d = np.array([-math.sin(math.radians(30)), -math.cos(math.radians(30)), 0.0])
    d = d * math.cos(math.radians(10)) + np.array([0, 0, -math.sin(math.radians(10))])
    a = line_angles_deg(d, lr, ap, si, +1.0)
    assert a["medial_tilt"] == pytest.approx(30.0, abs=1e-6)
    assert a["caudal_tilt"] == pytest.approx(math.degrees(math.atan2(
        math.sin(math.radians(10)), math.cos(math.radians(10)) * math.cos(math.radians(30)))))
    assert a["axial"] == pytest.approx(10.0, abs=1e-6)
    assert a["sagittal"] == pytest.approx(math.degrees(math.asin(
        math.sin(math.radians(30)) * math.cos(math.radians(10)))))
    # the same line from the right side points laterally: negative medial tilt
    assert line_angles_deg(d, lr, ap, si, -1.0)["medial_tilt"] == pytest.approx(-30.0)
    # a rotated vertebra frame: the same tool is straight along its AP axis
    rot = np.array([math.cos(math.radians(30)), -math.sin(math.radians(30)), 0])
    ap2 = -np.array([-math.sin(math.radians(30)), -math.cos(math.radians(30)), 0.0])
    lr2 = np.cross(ap2, si)
    flat = np.array([-math.sin(math.radians(30)), -math.cos(math.radians(30)), 0.0])
    assert line_angles_deg(flat, lr2, ap2, si, 1.0)["medial_tilt"] == pytest.approx(0.0,
                                                                                    abs=1e-6)
    del rot


def _half_space_field(first_voxel_x_mm: int):
    """A wall filling x ≥ the given voxel centre (its face half a voxel before it)."""
    n = 80
    aff = np.eye(4)
    aff[:3, 3] = -40.0
    m = np.zeros((n, n, n), bool)
    m[:, :, 40 + first_voxel_x_mm:] = True
    return signed_distance_field(m, aff, "wall", cap_mm=30.0)


@pytest.mark.parametrize("first_voxel", [2, 3, 4])
def test_contact_probability_matches_the_closed_form(first_voxel):
    # a tool of radius 1 along z at x = 0, a wall whose face is at x = face; tip offset
    # N(0, σ²) per axis, no tilt: P = Φ(−(face − r) / √(σ² + s²))
    f = _half_space_field(first_voxel)
    face = first_voxel - 0.5
    sigma, soft = 1.5, 0.25
    p = contact_probabilities({"wall": f}, np.array([0.0, 0.0, -10.0]),
                              np.array([0.0, 0.0, -1.0]), 20.0, 1.0, sigma, 0.0,
                              n_samples=4000, softness_mm=soft)["wall"]
    expected = float(ndtr(-(face - 1.0) / math.hypot(sigma, soft)))
    assert p == pytest.approx(expected, abs=0.025)
    # tilt only, pivoting at the tip: the far end moves by L·θ
    p2 = contact_probabilities({"wall": f}, np.array([0.0, 0.0, -10.0]),
                               np.array([0.0, 0.0, -1.0]), 20.0, 1.0, 0.0, 3.0,
                               n_samples=4000, softness_mm=soft)["wall"]
    s_end = 20.0 * math.radians(3.0)
    assert p2 == pytest.approx(float(ndtr(-(face - 1.0) / math.hypot(s_end, soft))), abs=0.03)


def test_gertzbein_robbins_grades():
    assert [gertzbein_robbins(b) for b in (0.0, 1.9, 2.0, 3.9, 4.0, 5.9, 6.0, 9.0)] == \
        ["A", "B", "C", "C", "D", "D", "E", "E"]


def test_segment_distance_and_conflicts():
    assert segment_distance((0, 0, 0), (10, 0, 0), (5, 3, -5), (5, 3, 5)) == pytest.approx(3.0)
    # closest points beyond the segments' ends: end point to end point
    assert segment_distance((0, 0, 0), (1, 0, 0), (4, 4, 0), (4, 8, 0)) == pytest.approx(5.0)
    t = Tool("c", 2.0, 200.0)
    a = Trajectory("teld", "L4-L5", "left", t, (50, 80, 0), (10, 10, 0))
    b = Trajectory("teld", "L3-L4", "left", t, (50, 80, 3), (10, 10, 3))  # 3 mm apart
    c = Trajectory("teld", "L4-L5", "right", t, (-50, 80, 0), (-10, 10, 0))
    out = plan_conflicts([a, b, c])
    names = {(x.first, x.second) for x in out}
    assert (a.name, b.name) in names
    assert all(c.name not in pair for pair in names)
    gap = next(x for x in out if "pass within" in x.message or "cross" in x.message)
    assert gap.distance_mm == pytest.approx(1.0, abs=1e-6)


def test_entry_risk_map_marks_paths_through_the_sac(box_ctx):
    verts = np.array([[0.0, 50.0, 0.0], [30.0, 15.0, 0.0], [-20.0, 50.0, 0.0]])
    risk = entry_risk_map(box_ctx, "intradiscal", (0.0, 0.0, 0.0), verts, level="L4-L5",
                          side="left", tool=TOOL)
    assert risk.shape == (3,) and risk.dtype == np.float32
    assert risk[1] == 1.0
    assert 0.0 <= risk[0] < 1.0 and 0.0 <= risk[2] < 1.0


def test_unmeasured_values_are_null_in_json():
    import json

    from surgplan.planning.metrics import PedicleFit

    fit = PedicleFit("L4", "left", float("nan"), 6.5, False, 0.0, "A", 0.2, 0.7, 0.1, "masks")
    d = fit.to_dict()
    assert d["isthmus_width_mm"] is None
    json.dumps(d, allow_nan=False)
