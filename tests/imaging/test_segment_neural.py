"""Dural sac, canal and modelled exiting roots of ``segment_ct`` on the phantom."""

from __future__ import annotations

import numpy as np
import pytest

from surgplan.imaging.anatomy import VertebraFrame
from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.neural import (
    centre_line_distance_mm, model_neural, polyline_distance_mm, resample_polyline,
)
from surgplan.imaging.segment.parts import ArchGeometry
from surgplan.imaging.segment.spine_curve import SpineCurve
from surgplan.imaging.structures import (
    SIDES, colour_of, foramen_name, kind_of, level_of, root_name,
)
from tests.imaging.segment_cache import matched_truth, segmented

LUMBAR = ("L1", "L2", "L3", "L4", "L5")


@pytest.fixture(scope="module")
def seg(small_phantom):
    return segmented(small_phantom)


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _lps(anatomy, mask):
    return np.argwhere(mask)[:, ::-1] @ anatomy.ijk_to_lps[:3, :3].T + anatomy.ijk_to_lps[:3, 3]


def test_dural_sac_is_segmented_inside_the_canal(seg, small_phantom_truth):
    sac = seg.structure("dural sac")
    assert sac.provenance == "segmented" and sac.kind == "dural sac"
    d = _dice(seg.mask("dural sac"), small_phantom_truth.mask("dural sac"))
    # issue 3's target is 0.85; measured 0.92 on this grid (0.86 while the fat-and-cortex
    # ring at the canal wall, which reads like CSF, was counted as sac)
    assert d >= 0.88, d
    # the canal label is the epidural space around the sac: never bone, never the sac
    canal = seg.mask("spinal canal")
    assert canal.any() and not np.any(canal & (seg.vertebrae > 0))
    truth_canal = small_phantom_truth.mask("spinal canal") | small_phantom_truth.mask("dural sac")
    assert _dice(canal | seg.mask("dural sac"), truth_canal) >= 0.75


def test_roots_are_modelled_under_each_pedicle(seg, small_phantom, small_phantom_truth):
    dists = []
    match = matched_truth(seg, small_phantom_truth)
    for name in [n for n in seg.vertebra_names if n in LUMBAR and match.get(n) in LUMBAR]:
        for side in SIDES:
            rn = root_name(name, side)
            s = seg.structure(rn)
            assert s.kind == "nerve root" and s.provenance == "modelled"
            assert "51°" in s.notes and "ANATOMY.md" in s.notes
            root = seg.mask(rn)
            ped = seg.part_mask(f"pedicle {side}", name)
            frame = seg.structure(name).frame
            rc = _lps(seg, root)
            pc = _lps(seg, ped).mean(0)
            # exits below its pedicle, on its side, and runs out laterally
            assert np.median((rc - pc) @ frame.si) < 0
            sign = 1 if side == "left" else -1
            assert np.median((rc - frame.origin_lps) @ frame.lr) * sign > 10
            true_line = small_phantom.landmarks.roots[root_name(match[name], side)].points_lps
            d = centre_line_distance_mm(resample_polyline(np.asarray(true_line)[:4], 1.0), rc)
            assert np.isfinite(d).mean() > 0.8, rn
            assert np.nanmean(d) < 3.5, (rn, np.nanmean(d))
            dists.append(np.nanmean(d))
    assert len(dists) >= 8
    assert np.mean(dists) < 2.5, dists  # measured 1.5 mm on this grid


def _straight_canal(csf_ellipse: bool):
    """A straight spine along +z on a 1 mm grid: canal 24 × 16 mm, everything inside at CSF
    density, or fat with a 20 × 12 mm CSF ellipse (the sac) in it."""
    grid = WorkGrid(np.array([-40.0, -20.0, 0.0]), 1.0, (90, 80, 81))
    z = np.arange(5.0, 85.0, 1.0)
    n = len(z)
    pts = np.stack([np.zeros(n), np.zeros(n), z], axis=1)
    ex, ey, ez = np.eye(3)
    curve = SpineCurve(pts, np.tile(ez, (n, 1)), np.tile(ex, (n, 1)), np.tile(ey, (n, 1)),
                       pts + [0.0, 24.0, 0.0], 1.0)
    arches = {}
    for name, zc in (("L3", 25.0), ("L4", 60.0)):
        f = VertebraFrame(np.array([0.0, 0.0, zc]), ez, ey, ex)
        arches[name] = ArchGeometry(name, f, -15.0, 15.0, 16.0, 32.0, {"left": 12.0, "right": 12.0},
                                    {"left": (-1.0, 13.0), "right": (-1.0, 13.0)},
                                    {"left": 24.0, "right": 24.0}, 20.0, ("canal walls",), 12.0)
    zz, yy, xx = np.indices(grid.shape)
    lps = grid.index_to_lps(np.stack([zz, yy, xx], -1))
    x, y = lps[..., 0], lps[..., 1]
    hu = np.full(grid.shape, 40.0, np.float32)  # muscle around
    canal = (np.abs(x) / 12.0) ** 2.5 + (np.abs(y - 24.0) / 8.0) ** 2.5 <= 1.0
    hu[canal] = 8.0
    truth = canal.copy()
    if csf_ellipse:
        hu[canal] = -90.0
        truth = (x / 10.0) ** 2 + ((y - 23.0) / 6.0) ** 2 <= 1.0
        hu[truth] = 8.0
    bone = ~canal & (np.abs(x) < 30) & (y > 10) & (y < 42)
    hu[bone] = 400.0
    return hu, grid, curve, arches, bone, truth


def test_sac_is_segmented_where_fat_surrounds_it():
    hu, grid, curve, arches, bone, truth = _straight_canal(csf_ellipse=True)
    res = model_neural(hu, grid, curve, arches, bone.astype(np.uint8))
    assert res.sac_modelled_share == 0.0 and res.labels()[0][2] == "segmented"
    assert _dice(res.sac, truth) > 0.9
    assert not np.any(res.sac & bone) and np.all(res.canal[res.sac])


def test_sac_is_modelled_where_csf_cannot_be_told_from_fat():
    """No fat seen in the canal (tight canal, blurred or noisy scan): the sac is modelled, and says
    so."""
    hu, grid, curve, arches, bone, canal = _straight_canal(csf_ellipse=False)
    res = model_neural(hu, grid, curve, arches, bone.astype(np.uint8))
    name, mask, prov, notes = res.labels()[0]
    assert name == "dural sac" and prov == "modelled" and res.sac_modelled_share == 1.0
    assert "modelled" in notes and "152 mm²" in notes
    # the model: 152 mm² per cross-section, in the canal, never in bone
    area = mask[40].sum() * grid.spacing_mm ** 2
    assert 152 * 0.8 < area < 152 * 1.2
    assert np.all(canal[mask]) and not np.any(mask & bone)
    # the roots are modelled from the pedicles either way: below the pedicle, lateral
    rm = res.root_models["nerve root L3 left"]
    assert rm.points_lps[1][2] < 25.0 - 1.0 and rm.points_lps[-1][0] > 30.0
    assert rm.diameter_mm == pytest.approx(4.5)


@pytest.mark.realdata
def test_real_ct_has_a_sac_in_the_canal_and_roots_under_the_pedicles(shared_data):
    """The 3 mm abdominal CT: every lumbar root modelled below its pedicle, the sac in the canal."""
    from surgplan.imaging.segment import segment_ct
    from surgplan.imaging.volume_files import read_volume_file

    a = segment_ct(read_volume_file(shared_data / "ct-abdomen-lumbar" / "ct.nii.gz"))
    sac = a.structure("dural sac")
    assert sac.provenance in ("segmented", "modelled") and sac.notes
    sac_m = a.mask("dural sac")
    vox_ml = float(np.prod(a.ijk_spacing_mm)) / 1000.0
    # a lumbar sac of ≈ 150 mm² over ≈ 20 cm: 15–60 ml
    assert 15.0 < sac_m.sum() * vox_ml < 60.0
    assert not np.any(sac_m & (a.vertebrae > 0))
    for name in LUMBAR:
        frame = a.structure(name).frame
        sac_here = _lps(a, sac_m)
        near = np.abs((sac_here - frame.origin_lps) @ frame.si) < 10
        # the sac lies behind the body, in the midline
        off = sac_here[near] - frame.origin_lps
        assert abs(np.median(off @ frame.lr)) < 6.0 and np.median(off @ frame.ap) > 10.0, name
        for side in SIDES:
            root = _lps(a, a.mask(root_name(name, side)))
            ped = _lps(a, a.part_mask(f"pedicle {side}", name))
            assert len(root) and len(ped), (name, side)
            assert np.median((root - ped.mean(0)) @ frame.si) < 0, (name, side)
            sign = 1 if side == "left" else -1
            assert np.median((root - frame.origin_lps) @ frame.lr) * sign > 10, (name, side)


def test_foramina_lie_between_the_pedicles_and_hold_their_roots(seg, small_phantom,
                                                                small_phantom_truth):
    """One foramen per level and side, where the phantom's is, with the exiting root inside it
    still labelled as the root (the inner structure wins)."""
    truth = small_phantom_truth
    match = matched_truth(seg, truth)
    names = [n for n in seg.vertebra_names if n in match]
    dices = []
    for upper, lower in zip(names[:-1], names[1:]):
        for side in SIDES:
            fn = foramen_name(upper, lower, side)
            s = seg.structure(fn)
            assert s.kind == "foramen" and s.provenance in ("segmented", "modelled"), fn
            assert "not a structure to avoid" in s.notes
            m = seg.mask(fn)
            tn = foramen_name(match[upper], match[lower], side)
            dices.append(_dice(m, truth.mask(tn)))
            # between the two pedicles, lateral to the canal, on its side
            fc = _lps(seg, m).mean(0)
            pu = _lps(seg, seg.part_mask(f"pedicle {side}", upper)).mean(0)
            pl = _lps(seg, seg.part_mask(f"pedicle {side}", lower)).mean(0)
            frame = seg.structure(upper).frame
            assert (pl - fc) @ frame.si < 0 < (pu - fc) @ frame.si, fn
            sign = 1 if side == "left" else -1
            assert sign * (fc - frame.origin_lps) @ frame.lr > 10.0, fn
            if lower == "S1" or upper not in LUMBAR:
                continue
            # the true root, from under the pedicle to the foramen's exit, runs through the
            # foramen and is labelled as the root along most of that stretch
            rn = root_name(upper, side)
            line = resample_polyline(np.asarray(
                small_phantom.landmarks.roots[root_name(match[upper], side)].points_lps)[1:3], 1.0)
            ijk = np.rint((line - seg.ijk_to_lps[:3, 3]) @ np.linalg.inv(seg.ijk_to_lps[:3, :3]).T)
            at = seg.structures[tuple(ijk[:, ::-1].astype(int).T)]
            root_v, for_v = seg.structure(rn).label, s.label
            assert np.isin(at, (root_v, for_v)).mean() >= 0.8, (fn, at)
            assert (at == root_v).mean() >= 0.5, (rn, at)
    assert len(dices) >= 10
    # measured on this grid: 0.58 (L5-S1, S1's pedicle width falls back) to 0.85, mean 0.77
    assert min(dices) >= 0.5 and np.mean(dices) >= 0.7, np.round(dices, 2)


def test_foramen_names_kinds_and_colours():
    assert foramen_name("L4", "L5", "left") == "foramen L4-L5 left"
    assert kind_of("foramen L5-S1 right") == "foramen"
    assert level_of("foramen L4-L5 left") == "L4-L5"
    assert colour_of("foramen L4-L5 left") != colour_of("nerve root L4 left")
    with pytest.raises(ValueError, match="side"):
        foramen_name("L4", "L5", "middle")
    with pytest.raises(ValueError, match="not a known structure"):
        kind_of("foramen L4 left")


def test_root_centre_lines_travel_with_the_anatomy(small_phantom, small_phantom_truth,
                                                   tmp_path):
    """The planner and the report read each root's centre line from the Anatomy, also after
    the segmentation folder is written and read back; a folder written without them (older
    versions) still loads."""
    import json

    from surgplan.imaging.anatomy import Anatomy
    from surgplan.imaging.segmentation_files import read_segmentation, write_segmentation

    truth = small_phantom_truth
    line = small_phantom.landmarks.roots["nerve root L4 left"].points_lps
    assert np.allclose(truth.root_paths["nerve root L4 left"], line)
    assert set(truth.root_paths) == {s.name for s in truth.items if s.kind == "nerve root"}
    out = write_segmentation(truth, small_phantom.ct, tmp_path / "seg", meshes=False)
    back = read_segmentation(out, small_phantom.ct)
    assert set(back.root_paths) == set(truth.root_paths)
    assert np.allclose(back.root_paths["nerve root L4 left"], line)
    table = json.loads((out / "labels.json").read_text())
    del table["root_paths"]
    (out / "labels.json").write_text(json.dumps(table))
    assert dict(read_segmentation(out, small_phantom.ct).root_paths) == {}
    with pytest.raises(ValueError, match="not a nerve root"):
        Anatomy(truth.shape, truth.ijk_to_lps, truth.vertebrae, truth.structures, truth.items,
                root_paths={"dural sac": line})
    with pytest.raises(ValueError, match="two or more finite"):
        Anatomy(truth.shape, truth.ijk_to_lps, truth.vertebrae, truth.structures, truth.items,
                root_paths={"nerve root L4 left": line[:1]})


def test_modelled_root_paths_are_the_painted_roots():
    hu, grid, curve, arches, bone, _ = _straight_canal(csf_ellipse=True)
    res = model_neural(hu, grid, curve, arches, bone.astype(np.uint8))
    paths = res.root_paths()
    assert set(paths) == set(res.roots) and paths
    for name, pts in paths.items():
        # the painted tube runs along the path: its voxels lie within a radius or so of it
        vox = grid.index_to_lps(np.argwhere(res.roots[name]))
        d = polyline_distance_mm(vox, pts)
        assert d.max() <= res.root_models[name].radii_mm.max() + grid.spacing_mm, name


def test_renaming_a_vertebra_renames_its_foramina_and_roots(small_phantom_truth):
    """Transitional anatomy: the user calls L5 'L6'; the foramen and root names follow, so
    the planner still finds the root exiting below that vertebra and the foramen it uses."""
    b = small_phantom_truth.rename("L5", "L6")
    assert "foramen L5-S1 left" not in b.names and "nerve root L5 left" not in b.names
    assert np.array_equal(b.mask("foramen L4-L6 left"),
                          small_phantom_truth.mask("foramen L4-L5 left"))
    assert np.array_equal(b.mask("foramen L6-S1 right"),
                          small_phantom_truth.mask("foramen L5-S1 right"))
    assert np.array_equal(b.mask("nerve root L6 right"),
                          small_phantom_truth.mask("nerve root L5 right"))
    assert np.allclose(b.root_paths["nerve root L6 right"],
                       small_phantom_truth.root_paths["nerve root L5 right"])
    assert "nerve root L5 right" not in b.root_paths


def test_segment_ct_gives_each_root_its_centre_line(seg, small_phantom_truth):
    """The segmentation's Anatomy carries a centre line for every labelled root, running
    along the true root, and keeps it through an edit elsewhere."""
    from surgplan.imaging.anatomy_edits import paint

    roots = [s.name for s in seg.items if s.kind == "nerve root"]
    assert roots and set(seg.root_paths) == set(roots)
    for name in ("nerve root L3 left", "nerve root L4 right"):
        true_line = small_phantom_truth.root_paths[name]
        ours = seg.root_paths[name]
        # the first 20 mm, from the dura through the foramen, where the model is measured
        start = ours[np.cumsum(np.r_[0, np.linalg.norm(np.diff(ours, axis=0), axis=1)]) <= 20]
        assert np.median(polyline_distance_mm(start, true_line)) < 4.0, name
    edited = paint(seg, "L3", seg.centroid_lps("L3"), 3.0)
    assert set(edited.root_paths) == set(roots)



def _frame_coords(frame, pts):
    d = np.asarray(pts, float) - frame.origin_lps
    return d @ frame.lr, d @ frame.ap, d @ frame.si


def test_phantom_s1_roots_traverse_the_l5_s1_disc(small_phantom, small_phantom_truth):
    """The phantom's S1 roots: the traversing roots at L5-S1, thicker than L5's, leaving the
    sac just above the disc, down the lateral recess beside the sac, out in front of the
    sacrum through the first anterior sacral foramen; in the labels and the landmarks."""
    truth, lm = small_phantom_truth, small_phantom.landmarks
    s1 = truth.structure("S1").frame
    disc = lm.discs["disc L5-S1"]
    for side in SIDES:
        rn = root_name("S1", side)
        assert kind_of(rn) == "nerve root" and level_of(rn) == "S1"
        assert truth.structure(rn).kind == "nerve root" and rn in truth.root_paths
        root = lm.roots[rn]
        assert root.diameter_mm > lm.roots[root_name("L5", side)].diameter_mm
        sign = 1 if side == "left" else -1
        u, v, w = _frame_coords(s1, root.points_lps)
        # leaves the sac within 5 mm above the disc's centre plane, beside the sac
        w_disc = float((disc.center_lps - s1.origin_lps) @ s1.si)
        assert -3.0 < w[0] - w_disc < 5.0 and 0 < sign * u[0] < 9.0
        # runs down the canal's front (behind the body) and ends in front of the sacrum,
        # lateral, after the anterior foramen ≈ 27 mm out
        assert np.all(v[:3] > s1_depth_half(small_phantom)) and np.all(np.diff(w[:3]) < 0)
        assert v[-1] < 0 and sign * u[4] == pytest.approx(27.0, abs=1.0)
        # painted in the canal beside the sac and again in front of the sacrum (the solid
        # phantom sacrum holds the stretch between)
        ru, rv, rw = _frame_coords(s1, _lps(truth, truth.mask(rn)))
        assert np.count_nonzero(rv > 15) > 50 and np.count_nonzero(rv < 0) > 50
        assert np.all(sign * ru > 0)


def s1_depth_half(case) -> float:
    return case.landmarks.vertebrae["S1"].body_depth_mm / 2


def test_s1_roots_are_modelled_down_the_lateral_recess(seg, small_phantom):
    """segment_ct models both S1 roots from the segmented S1 and sac, close to the truth
    where it matters to IELD and TELD at L5-S1: beside the sac and down the recess."""
    for side in SIDES:
        rn = root_name("S1", side)
        s = seg.structure(rn)
        assert s.kind == "nerve root" and s.provenance == "modelled"
        assert "anterior sacral foramen" in s.notes and "Hasegawa" in s.notes
        ours = seg.root_paths[rn]
        true_line = np.asarray(small_phantom.landmarks.roots[rn].points_lps)
        # the whole modelled course against the true line: measured 0.7 mm median (1.6 mm)
        d = polyline_distance_mm(resample_polyline(ours, 1.0), true_line)
        assert np.median(d) < 1.5 and d.max() < 5.0, (rn, np.median(d), d.max())
        # the painted root's centre in the canal (take-off → foot of the recess):
        # measured 0.9 / 1.5 mm left / right, 14 % of it with no voxel (under the sac)
        vox = _lps(seg, seg.mask(rn))
        dc = centre_line_distance_mm(resample_polyline(true_line[:3], 1.0), vox)
        assert np.isfinite(dc).mean() > 0.7 and np.nanmean(dc) < 2.2, (rn, np.nanmean(dc))
        # never in bone, never in the sac
        m = seg.mask(rn)
        assert not np.any(m & (seg.vertebrae > 0)) and not np.any(m & seg.mask("dural sac"))
