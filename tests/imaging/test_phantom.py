"""The synthetic spine phantom: anatomy a user relies on, sizes from ANATOMY.md,
CT numbers, ground-truth landmarks, options and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from surgplan.core.errors import OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.phantom import PhantomSpec, make_phantom, mr_volume, voxel_index
from surgplan.imaging.structures import kind_of
from tests.imaging.phantom_fixtures import (  # noqa: F401  (fixtures)
    COARSE,
    extent,
    local_points,
    phantom_case,
    phantom_six_lumbar,
)

LUMBAR = ["L1", "L2", "L3", "L4", "L5"]
SP = COARSE.spacing_mm[0]


def _vmask(case, name):
    return case.mask(name)


def _part_mask(case, vertebra, part):
    code = {v: k for k, v in case.part_names.items()}[part]
    return case.mask(vertebra) & (case.parts == code)


def _interior(mask):
    # away from the boundary, where blur mixes neighbouring tissues
    return ndimage.binary_erosion(mask, iterations=1)


# --- structure names -------------------------------------------------------------------------
def test_every_shared_name_is_present_and_known(phantom_case):
    names = set(phantom_case.label_names.values())
    for n in names:
        kind_of(n)  # raises for an unknown name
    expected = {"T12", *LUMBAR, "S1", "disc T12-L1", "disc L4-L5", "disc L5-S1", "spinal canal",
                "dural sac", "ilium left", "ilium right", "psoas left", "psoas right",
                "paraspinal muscle left", "paraspinal muscle right", "aorta",
                "inferior vena cava", "common iliac artery left", "common iliac artery right",
                "common iliac vein left", "common iliac vein right", "kidney left",
                "kidney right", "bowel", "subcutaneous fat", "skin", "rib T12 left",
                "rib T12 right"}
    expected |= {f"nerve root {v} {s}" for v in ["T12", *LUMBAR] for s in ("left", "right")}
    assert expected <= names
    present = set(np.unique(phantom_case.labels).tolist())
    missing = [n for v, n in phantom_case.label_names.items() if v not in present]
    assert not missing, f"labels without voxels: {missing}"


def test_arrays_share_the_ct_grid(phantom_case):
    c = phantom_case
    assert c.ct.array.dtype == np.int16
    assert c.labels.shape == c.parts.shape == c.tissues.shape == c.ct.array.shape
    assert c.ct.metadata.patient_name == "PHANTOM^SPINE"
    assert c.ct.metadata.modality == "CT"
    assert c.ct.frame_of_reference_uid
    assert np.allclose(c.ct.spacing_mm, SP)
    # parts only inside vertebrae
    vert_vals = [c.label_value(n) for n in ["T12", *LUMBAR, "S1"]]
    assert not np.any((c.parts > 0) & ~np.isin(c.labels, vert_vals))


# --- sizes (ANATOMY.md) ---------------------------------------------------------------------
def test_vertebral_body_sizes(phantom_case):
    widths = []
    for nm in LUMBAR:
        lm = phantom_case.landmarks.vertebrae[nm]
        p = local_points(phantom_case, _part_mask(phantom_case, nm, "body"), nm)
        mid = p[np.abs(p[:, 2]) < 3.0]
        width = extent(mid[np.abs(mid[:, 1]) < 3.0][:, 0], SP)
        depth = extent(mid[np.abs(mid[:, 0]) < 3.0][:, 1], SP)
        height = extent(p[(np.abs(p[:, 0]) < 3) & (np.abs(p[:, 1]) < 3)][:, 2], SP)
        assert 33.0 <= width <= 50.0, (nm, width)  # ≈ 36 (L1) → 46 mm (L5)
        assert 27.0 <= depth <= 40.0, (nm, depth)  # 30–36 mm
        assert 22.0 <= height <= 32.0, (nm, height)  # 25–30 mm
        assert abs(width - lm.body_width_mm) <= 2 * SP + 0.5
        widths.append(width)
    assert widths[-1] - widths[0] >= 6.0


def _pedicle_isthmus_width(case, nm, side):
    lm = case.landmarks.vertebrae[nm]
    ped = lm.pedicles[side]
    k, j, i = np.nonzero(_part_mask(case, nm, f"pedicle {side}"))
    lps = case.ct.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    rel = lps - ped.isthmus_center_lps
    t = rel @ ped.direction
    lat = np.cross(ped.direction, lm.frame[2])
    slab = np.abs(t) < SP * 0.75
    return extent((rel @ lat)[slab], SP)


def test_pedicle_widths_grow_from_l1_to_l5(phantom_case):
    w = [_pedicle_isthmus_width(phantom_case, nm, "left") for nm in LUMBAR]
    assert 5.5 <= w[0] <= 11.0, w  # L1 ≈ 8 mm
    assert 13.0 <= w[-1] <= 19.5, w  # L5 ≈ 16 mm
    assert w[-1] - w[0] >= 5.0
    assert all(b >= a - SP for a, b in zip(w, w[1:])), w
    truth = [phantom_case.landmarks.vertebrae[nm].pedicles["left"].isthmus_width_mm
             for nm in LUMBAR]
    assert truth == sorted(truth) and truth[0] == 8.0 and truth[-1] == 16.0
    angles = [phantom_case.landmarks.vertebrae[nm].pedicles["left"].medial_angle_deg
              for nm in LUMBAR]
    assert angles == sorted(angles) and 15 <= angles[3] <= 17 and 19 <= angles[4] <= 24


def test_disc_heights(phantom_case):
    for name, lm in phantom_case.landmarks.discs.items():
        # walk the disc's normal through its centre and count disc voxels
        ts = np.arange(-15, 15, 0.2)
        pts = lm.center_lps + ts[:, None] * lm.normal
        ijk = np.rint(phantom_case.ct.lps_to_index(pts)).astype(int)
        vals = phantom_case.labels[ijk[:, 2], ijk[:, 1], ijk[:, 0]]
        h = float(np.sum(vals == phantom_case.label_value(name)) * 0.2)
        # middle heights 10.0 (L1/2) … 13.8 (L4/5); endplate concavity adds ≈ 2 mm
        lo, hi = (6.0, 14.0) if name == "disc T12-L1" else (8.0, 18.0)
        assert lo <= h <= hi, (name, h)
        assert lm.height_anterior_mm >= lm.height_posterior_mm
    assert 12 <= phantom_case.landmarks.discs["disc L4-L5"].height_mm <= 15


def test_laminae_of_neighbours_never_touch(phantom_case):
    """An interlaminar window (the ligamentum flavum's) opens between every pair of laminae,
    L5-S1 included, where IELD enters; neighbours meet only at the facets and discs."""
    sp = phantom_case.ct.spacing_mm[::-1]
    order = ["T12"] + LUMBAR + ["S1"]
    for upper, lower in zip(order[:-1], order[1:]):
        lam_u = _part_mask(phantom_case, upper, "lamina")
        lam_l = _part_mask(phantom_case, lower, "lamina")
        gap = ndimage.distance_transform_edt(~lam_l, sampling=sp)[lam_u].min()
        assert gap >= 3.0, (upper, lower, gap)


def test_canal_size(phantom_case):
    inside = np.isin(phantom_case.labels, [phantom_case.label_value(n) for n in
                                          ("spinal canal", "dural sac")])
    for nm in LUMBAR:
        p = local_points(phantom_case, inside, nm)
        p = p[(np.abs(p[:, 2]) < 2.0)]
        ap = extent(p[np.abs(p[:, 0]) < 2][:, 1], SP)
        width = extent(p[:, 0], SP)
        assert 13.0 <= ap <= 20.0, (nm, ap)  # AP 15–18 mm
        assert 19.0 <= width <= 31.0, (nm, width)  # 22–28 mm


def test_dural_sac_area_at_l4_l5(phantom_case):
    lm = phantom_case.landmarks.discs["disc L4-L5"]
    k, j, i = np.nonzero(phantom_case.mask("dural sac"))
    lps = phantom_case.ct.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    d = (lps - lm.center_lps) @ lm.normal
    slab = 2.0 * SP
    n = np.sum(np.abs(d) < slab / 2)
    area = n * SP**3 / slab
    assert 100.0 <= area <= 200.0, area  # 152 ± 54 mm² (PMC5728944)


def test_root_diameters_and_course(phantom_case):
    roots = phantom_case.landmarks.roots
    diam = [roots[f"nerve root {v} left"].diameter_mm for v in LUMBAR]
    assert diam == sorted(diam) and diam[0] == pytest.approx(3.5) and diam[-1] == pytest.approx(5.6)
    for v in LUMBAR:
        vl = phantom_case.landmarks.vertebrae[v]
        for side, s in (("left", 1.0), ("right", -1.0)):
            r = roots[f"nerve root {v} {side}"]
            loc = (r.points_lps - vl.centroid_lps) @ vl.frame.T
            # in the foramen the root is just under the pedicle
            ped = vl.pedicles[side]
            ped_w = float((ped.isthmus_center_lps - vl.centroid_lps) @ vl.frame[2])
            under = loc[1]
            assert under[2] < ped_w - ped.isthmus_height_mm / 2, (v, side)
            assert under[2] > ped_w - ped.isthmus_height_mm / 2 - 8.0, (v, side)
            # distally: lateral, anterior and caudal, ≈ 51° to the disc plane (coronal)
            d = loc[-1] - loc[-2]
            assert d[0] * s > 0 and d[1] < 0 and d[2] < 0, (v, side, d)
            ang = np.degrees(np.arctan2(-d[2], abs(d[0])))
            assert 40 <= ang <= 60, (v, side, ang)
            # the painted root: a tube of roughly that diameter (area from volume / length)
            m = phantom_case.mask(r.name)
            length = float(np.sum(np.linalg.norm(np.diff(r.points_lps, axis=0), axis=1)))
            eff = 2 * np.sqrt(m.sum() * SP**3 / length / np.pi)
            assert 0.5 * r.diameter_mm <= eff <= 2.0 * r.diameter_mm, (r.name, eff)
    # in the foramen, the painted pedicle is right above the root (within a few mm)
    for v in LUMBAR:
        vl = phantom_case.landmarks.vertebrae[v]
        r = roots[f"nerve root {v} left"]
        p1 = (r.points_lps[1] - vl.centroid_lps) @ vl.frame.T
        p_ped = local_points(phantom_case, _part_mask(phantom_case, v, "pedicle left"), v)
        col = (np.abs(p_ped[:, 0] - p1[0]) < SP) & (np.abs(p_ped[:, 1] - p1[1]) < SP)
        assert col.any(), v
        gap = p_ped[col, 2].min() - (p1[2] + r.diameter_mm / 2)
        assert -SP <= gap <= 3.0 + SP, (v, gap)


# --- CT numbers --------------------------------------------------------------------------------
def test_tissue_hu_means(phantom_case):
    c = phantom_case
    ct = c.ct.array.astype(float)
    t = {n: k for k, n in c.tissue_names.items()}
    bodies = np.zeros_like(c.labels, bool)
    for nm in LUMBAR:
        bodies |= _part_mask(c, nm, "body")
    bone = _interior(bodies) & (c.tissues == t["cancellous bone"])
    assert 150 <= ct[bone].mean() <= 300
    disc = np.zeros_like(bodies)
    for nm in c.landmarks.discs:
        disc |= c.mask(nm)
    assert 50 <= ct[_interior(disc)].mean() <= 100
    assert ct[_interior(c.mask("dural sac"))].mean() < 20
    assert ct[_interior(c.mask("subcutaneous fat"))].mean() < -50
    gas = _interior(c.tissues == t["gas"])
    assert gas.sum() > 50 and ct[gas].mean() < -900
    assert ct[_interior(c.mask("aorta"))].mean() > 250  # arterial phase
    assert 35 <= ct[_interior(c.mask("psoas left"))].mean() <= 60
    # the thin cortical shell images at a few hundred HU, not 1500
    shell = c.tissues == t["cortical bone"]
    assert 250 <= ct[shell & bodies].mean() <= 900
    air = c.labels == 0
    assert ct[_interior(air)].mean() < -950
    noise = ct[_interior(c.mask("psoas left"))].std()
    assert 8 <= noise <= 25


# --- curvature and landmarks of the surroundings ------------------------------------------------
def _pca_normal(case, name):
    k, j, i = np.nonzero(case.mask(name))
    p = case.ct.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    p -= p.mean(axis=0)
    _, _, vt = np.linalg.svd(p, full_matrices=False)
    n = vt[-1]
    return n if n[2] > 0 else -n


def test_lordosis(phantom_case):
    assert 25 <= phantom_case.landmarks.lordosis_deg <= 50  # recumbent 37 ± 13°
    a = _pca_normal(phantom_case, "disc T12-L1")
    b = _pca_normal(phantom_case, "disc L5-S1")
    ang = np.degrees(np.arccos(np.clip(a @ b, -1, 1)))
    # between the disc mid-planes: the T12–S1 angle minus half of each end segment
    assert 20 <= ang <= 45, ang
    # lordosis: L3 is the most anterior body, the sacrum slopes forward
    ys = {nm: phantom_case.landmarks.vertebrae[nm].centroid_lps[1] for nm in ["T12", *LUMBAR]}
    assert ys["L3"] < ys["T12"] and ys["L3"] < ys["L5"]
    n_s1 = phantom_case.landmarks.vertebrae["S1"].superior_endplate_normal
    assert n_s1[1] < -0.3  # faces anterosuperiorly


def test_aortic_bifurcation_and_iliac_crest_near_l4(phantom_case):
    c = phantom_case
    l4 = c.landmarks.vertebrae["L4"]
    l5 = c.landmarks.vertebrae["L5"]
    top = l4.superior_endplate_center_lps[2]
    bottom = l5.superior_endplate_center_lps[2]  # L4 body or L4/5 disc
    k = np.nonzero(c.mask("aorta"))[0]
    z_low = c.ct.origin_lps[2] + k.min() * SP
    assert bottom - SP <= z_low <= top, (z_low, bottom, top)
    assert bottom <= c.landmarks.aortic_bifurcation_lps[2] <= top
    assert c.landmarks.ivc_confluence_lps[2] < c.landmarks.aortic_bifurcation_lps[2]
    for side in ("left", "right"):
        k = np.nonzero(c.mask(f"ilium {side}"))[0]
        z_top = c.ct.origin_lps[2] + k.max() * SP
        assert bottom - 5 <= z_top <= l4.centroid_lps[2] + 5, (side, z_top)
        assert abs(c.landmarks.iliac_crest_top_lps[side][2] - z_top) <= 4.0
    # aorta left of the midline, IVC right
    for name, sign in (("aorta", 1), ("inferior vena cava", -1)):
        _, _, i = np.nonzero(c.mask(name))
        assert sign * (c.ct.origin_lps[0] + i.mean() * SP) > 5


def test_landmarks_lie_inside_their_structures(phantom_case):
    c = phantom_case
    for nm, lm in c.landmarks.vertebrae.items():
        assert c.label_names[int(c.labels[voxel_index(c, lm.centroid_lps)])] == nm
        assert np.allclose(lm.frame @ lm.frame.T, np.eye(3), atol=1e-9)
        for side, ped in lm.pedicles.items():
            code = {v: k for k, v in c.part_names.items()}[f"pedicle {side}"]
            hits = 0
            for t in np.arange(-3.0, 3.01, 1.0):
                idx = voxel_index(c, ped.isthmus_center_lps + t * ped.direction)
                hits += int(c.parts[idx] == code)
                assert c.label_names[int(c.labels[idx])] == nm
            # nearest-voxel sampling at 1.6 mm may land on the flaring ends (body, lamina)
            assert hits >= 5, (nm, side, hits)
            if nm == "S1":
                continue
            # entry on the posterior bone surface, target at the anterior cortex
            assert (ped.entry_lps - ped.isthmus_center_lps) @ lm.frame[1] > 0
            # the axis leaves the body through its anterior half (anterior cortex)
            assert (ped.target_lps - lm.centroid_lps) @ lm.frame[1] < -lm.body_depth_mm / 4
            assert 35 <= ped.length_mm <= 65, (nm, ped.length_mm)
            near = [c.label_names.get(int(c.labels[voxel_index(c, p)]))
                    for p in (ped.entry_lps + s * ped.direction for s in (-SP, 0.0, SP))]
            assert nm in near, (nm, side, near)


def test_kambin_triangles(phantom_case):
    k = phantom_case.landmarks.kambin
    for lvl in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"):
        for side in ("left", "right"):
            tri = k[(lvl, side)]
            assert tri.corners_lps.shape == (3, 3)
            assert 2.0 <= tri.inscribed_diameter_mm <= 12.0, (lvl, tri.inscribed_diameter_mm)
    assert k[("L4-L5", "left")].inscribed_diameter_mm >= k[("L1-L2", "left")].inscribed_diameter_mm


# --- options -----------------------------------------------------------------------------------
def test_six_lumbar_vertebrae(phantom_six_lumbar):
    names = set(phantom_six_lumbar.label_names.values())
    assert {"L6", "disc L5-L6", "disc L6-S1", "nerve root L6 left"} <= names
    assert phantom_six_lumbar.mask("L6").sum() > 500
    assert 25 <= phantom_six_lumbar.landmarks.lordosis_deg <= 50


def test_same_seed_same_voxels_other_seed_other_noise():
    spec = PhantomSpec(spacing_mm=(2.5, 2.5, 2.5), fov=("L3", "L4"), seed=3)
    a = make_phantom(spec)
    b = make_phantom(spec)
    assert np.array_equal(a.ct.array, b.ct.array)
    assert a.ct.metadata.series_instance_uid == b.ct.metadata.series_instance_uid
    c = make_phantom(PhantomSpec(spacing_mm=(2.5, 2.5, 2.5), fov=("L3", "L4"), seed=4))
    assert np.array_equal(a.labels, c.labels) and np.array_equal(a.parts, c.parts)
    diff = a.ct.array.astype(float) - c.ct.array.astype(float)
    assert diff.std() == pytest.approx(15.0 * np.sqrt(2), rel=0.15)  # only the noise differs
    quiet = make_phantom(PhantomSpec(spacing_mm=(2.5, 2.5, 2.5), fov=("L3", "L4"), noise_hu=0))
    assert np.abs(a.ct.array.astype(float) - quiet.ct.array).mean() == pytest.approx(
        15.0 * np.sqrt(2 / np.pi), rel=0.15)


def test_options_ribs_contrast_and_field_of_view(phantom_case):
    base = dict(spacing_mm=(2.5, 2.5, 2.5))
    no_ribs = make_phantom(PhantomSpec(**base, ribs=False, fov=("T12", "L2")))
    assert not any(n.startswith("rib") for n in no_ribs.label_names.values())
    plain = make_phantom(PhantomSpec(**base, contrast=False, fov=("L2", "L3")))
    aorta = _interior(plain.mask("aorta"))
    assert 25 <= plain.ct.array[aorta].mean() <= 65
    no_sacrum = make_phantom(PhantomSpec(**base, fov=("L3", "L5")))
    s1_top = phantom_case.landmarks.vertebrae["S1"].superior_endplate_center_lps[2]
    assert no_sacrum.ct.bounds_lps()[0][2] > s1_top
    # only the top of S1 behind the tilted L5/S1 disc stays in view
    assert no_sacrum.mask("S1").sum() < 0.1 * phantom_case.mask("S1").sum() * (SP / 2.5) ** 3
    small = make_phantom(PhantomSpec(**base, fov=("L4", "L4"), fov_xy_mm=(160, 160)))
    assert small.ct.array.shape[2] == int(160 / 2.5) + 1
    with pytest.raises(ValueError, match="fov vertebra"):
        make_phantom(PhantomSpec(**base, fov=("T12", "L6")))
    with pytest.raises(ValueError, match="lumbar_count"):
        PhantomSpec(lumbar_count=3)


def test_cancel_and_progress():
    seen = []
    tok = CancelToken()

    def prog(f, msg):
        seen.append(f)
        if len(seen) == 3:
            tok.cancel()

    with pytest.raises(OperationCancelled):
        make_phantom(PhantomSpec(spacing_mm=(3, 3, 3), fov=("L4", "L4")), progress=prog,
                     cancel=tok)
    assert seen == sorted(seen)


def test_mr_volume(phantom_case):
    mr = mr_volume(phantom_case)
    assert mr.array.dtype == np.uint16 and mr.metadata.modality == "MR"
    assert np.array_equal(mr.ijk_to_lps, phantom_case.ct.ijk_to_lps)
    a = mr.array.astype(float)
    t = {n: k for k, n in phantom_case.tissue_names.items()}

    def mean(mask):
        return a[_interior(mask)].mean()

    csf = mean(phantom_case.mask("dural sac"))
    nucleus = mean(phantom_case.tissues == t["disc nucleus"])
    fat = mean(phantom_case.mask("subcutaneous fat"))
    muscle = mean(phantom_case.mask("psoas left"))
    bone = mean((phantom_case.tissues == t["cancellous bone"]) & phantom_case.mask("L3"))
    assert csf > nucleus > bone > muscle
    assert fat > bone
    assert a[phantom_case.tissues == t["cortical bone"]].mean() < bone
    assert a[phantom_case.labels == 0].mean() < 100  # air: noise only (Rician floor)
