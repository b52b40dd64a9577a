"""The spine on T2-weighted MR: intensity scale, CSF column, body curve, disc planes.

On T2 the cerebrospinal fluid is the brightest thing in the spine, vertebral
marrow is intermediate, cortex, ligaments and annulus are dark, and healthy
discs are bright (degenerated ones dark).  Nothing is calibrated: every level
below is measured on the scan itself — the scale from percentiles inside the
patient's outline, the marrow level from the column in front of the CSF.
All arrays are on an LPS-aligned isotropic :class:`WorkGrid` (``array[z, y, x]``,
+y posterior, +z superior), so "axial slice" and "anterior" mean the same
thing for sagittal and axial acquisitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from surgplan.imaging.segment.canal import CanalTrack
from surgplan.imaging.segment.discs import DiscPlane, column_profile
from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.spine_curve import SpineCurve, curve_from_polylines

#: Share of the way from the median to the 99th percentile of the patient's
#: signal above which a voxel may be CSF (T2: CSF ≈ 1.8–4 × marrow).
CSF_LEVEL = 0.35
#: ... and at least this multiple of that median.
CSF_MIN_RATIO = 1.25
#: Canal cross-section limits on an axial slice (mm, mm²): the dural sac is
#: ≈ 10–20 mm deep and 15–30 mm wide; fat layers and bowel are wider or larger.
CSF_MAX_WIDTH_MM = 36.0
CSF_MAX_DEPTH_MM = 30.0
CSF_MIN_AREA_MM2 = 20.0
CSF_MAX_AREA_MM2 = 700.0
#: Marrow-like signal for the body walk: this share of the marrow level and up.
BODY_LOW = 0.7


@dataclass(frozen=True)
class MrScale:
    """Per-scan intensity scale.

    Attributes
    ----------
    median : float
        Median signal inside the patient's outline (scanner units).
    p99 : float
        99th percentile inside the outline.
    csf : float
        Threshold above which a voxel may be CSF (scanner units).
    """

    median: float
    p99: float
    csf: float


def patient_outline(img_s: np.ndarray) -> np.ndarray:
    """Voxels of the patient: above Otsu's threshold, largest component, holes filled.

    Parameters
    ----------
    img_s : numpy.ndarray
        Smoothed MR signal on the work grid.
    """
    thr = sitk.OtsuThresholdImageFilter()
    thr.SetInsideValue(0)
    thr.SetOutsideValue(1)
    sample = img_s[:: max(1, img_s.shape[0] // 40)]
    thr.Execute(sitk.GetImageFromArray(np.ascontiguousarray(sample)))
    # Otsu splits air from tissue; half of it still keeps dark cortex and flow voids
    mask = img_s > 0.5 * thr.GetThreshold()
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    out = lab == int(np.argmax(sizes))
    return ndi.binary_fill_holes(out)


def bias_corrected(img_s: np.ndarray, outline: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The image divided by its smooth coil-shading field (N4, on an ≈ 8 mm grid).

    Surface coils make the signal fall off with depth: across one vertebral
    body the marrow can change by 15–20 %, as much as its contrast with the
    cortex.  N4 (Tustison 2010) estimates that multiplicative field inside the
    outline; on an 8 mm grid it takes about a second.
    """
    shrink = max(1, int(round(8.0 / spacing_mm)))
    img = sitk.GetImageFromArray(np.ascontiguousarray(img_s, np.float32))
    mask = sitk.GetImageFromArray(outline.astype(np.uint8))
    small = sitk.Shrink(img, [shrink] * 3)
    small_mask = sitk.Shrink(mask, [shrink] * 3)
    if sitk.GetArrayViewFromImage(small_mask).sum() < 64:
        return img_s
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([15, 15])
    n4.Execute(small + 1.0, small_mask)
    log_bias = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img))
    return (img_s / np.exp(log_bias)).astype(np.float32)


def intensity_scale(img_s: np.ndarray, outline: np.ndarray) -> MrScale:
    """Percentiles inside the outline and the CSF threshold derived from them."""
    v = img_s[outline]
    if v.size > 2_000_000:
        v = v[:: v.size // 1_000_000]
    med, p99 = np.percentile(v, [50, 99])
    # CSF is ≈ 1.8–4 × marrow on T2 and well above the median tissue; the floor
    # keeps noise in a flat image (no CSF at all) from passing as fluid
    return MrScale(float(med), float(p99),
                   float(max(med + CSF_LEVEL * (p99 - med), CSF_MIN_RATIO * med)))


def csf_candidates(img_s: np.ndarray, outline: np.ndarray, scale: MrScale, spacing_mm: float):
    """Bright, compact, axial-slice components that could be the dural sac.

    Returns
    -------
    (labels, idx, area_mm2, com) : the in-slice component map, the kept ids,
    their areas (mm²) and centres ``(z, y, x)`` in grid indices.
    """
    bright = (img_s > scale.csf) & outline
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndi.generate_binary_structure(2, 1)
    lab, n = ndi.label(bright, structure=s)
    if n == 0:
        return lab, np.zeros(0, int), np.zeros(0), np.zeros((0, 3))
    objs = ndi.find_objects(lab)
    idx = np.arange(1, n + 1)
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * spacing_mm**2
    com = np.array(ndi.center_of_mass(bright, lab, idx)).reshape(-1, 3)
    ny, nx = img_s.shape[1:]
    keep = np.zeros(n, bool)
    for a, sl in enumerate(objs):
        if sl is None:
            continue
        dy = (sl[1].stop - sl[1].start) * spacing_mm
        dx = (sl[2].stop - sl[2].start) * spacing_mm
        edge = sl[2].start == 0 or sl[2].stop == nx or sl[1].start == 0 or sl[1].stop == ny
        keep[a] = (CSF_MIN_AREA_MM2 <= area[a] <= CSF_MAX_AREA_MM2 and dx <= CSF_MAX_WIDTH_MM
                   and dy <= CSF_MAX_DEPTH_MM and not edge)
    return lab, idx[keep], area[keep], com[keep]


def track_csf(img_s: np.ndarray, outline: np.ndarray, scale: MrScale,
              spacing_mm: float) -> CanalTrack:
    """Follow the dural sac (bright CSF tube) from slice to slice.

    The seed is the candidate with the most support from candidates at nearly
    the same (y, x) within 40 mm up and down (a tube is seen in many slices at
    one place; disc nuclei are bright too but only over ≈ 10 mm, bowel fluid
    moves).  From it the track grows up and down, taking in each slice the
    candidate nearest the last accepted centre, within a few mm.
    """
    lab, idx, area, com = csf_candidates(img_s, outline, scale, spacing_mm)
    empty = CanalTrack(np.zeros(0, int), np.zeros((0, 2)), np.zeros(0),
                       np.zeros(img_s.shape, bool))
    if len(idx) == 0:
        return empty
    zc = np.round(com[:, 0]).astype(int)
    support = np.zeros(len(idx))
    for a in range(len(idx)):
        d = np.linalg.norm((com[:, 1:] - com[a, 1:]) * spacing_mm, axis=1)
        dz = np.abs(com[:, 0] - com[a, 0]) * spacing_mm
        near = (d < 8.0) & (dz < 40.0)
        # count slices, not area: a tube is long, a blob is large
        support[a] = len(np.unique(zc[near]))
    seed = int(np.argmax(support))
    if support[seed] * spacing_mm < 20.0:
        return empty
    chosen = {int(zc[seed]): seed}
    for step in (1, -1):
        last, last_z = com[seed, 1:], zc[seed]
        z = zc[seed] + step
        while 0 <= z < img_s.shape[0]:
            gap_mm = abs(z - last_z) * spacing_mm
            if gap_mm > 25.0:
                break
            here = np.nonzero(zc == z)[0]
            if len(here):
                d = np.linalg.norm((com[here, 1:] - last) * spacing_mm, axis=1)
                ok = d < 5.0 + 0.3 * gap_mm
                if ok.any():
                    best = here[ok][np.argmin(d[ok])]
                    chosen[int(z)] = int(best)
                    last, last_z = com[best, 1:], z
            z += step
    order = sorted(chosen)
    sel = np.array([chosen[z] for z in order])
    mask = np.isin(lab, idx[sel])
    return CanalTrack(np.array(order), com[sel, 1:], area[sel], mask)


def marrow_level(img_s: np.ndarray, track: CanalTrack, spacing_mm: float) -> float:
    """Median signal of the column 8–35 mm in front of the CSF (mostly vertebral bodies).

    Bodies fill ≈ 3/4 of the column's height and discs the rest, so the median
    is the marrow signal whether the discs are bright (healthy) or dark.
    """
    vals = []
    r = int(round(4.0 / spacing_mm))
    for z, (y, x) in zip(track.z, track.yx):
        y0 = int(round(y - 35.0 / spacing_mm))
        y1 = int(round(y - 8.0 / spacing_mm))
        xi = int(round(x))
        if y0 < 0 or xi - r < 0 or xi + r >= img_s.shape[2]:
            continue
        vals.append(img_s[z, y0:y1, xi - r: xi + r + 1].ravel())
    if not vals:
        return float("nan")
    return float(np.median(np.concatenate(vals)))


def fit_mr_curve(img_s: np.ndarray, grid: WorkGrid, track: CanalTrack, marrow: float,
                 scale: MrScale, step_mm: float = 1.0) -> Optional[SpineCurve]:
    """The body-centre curve, placed in front of the CSF column.

    In each axial slice with CSF, a walk forward from the CSF centre (over a
    12 mm wide strip) leaves the bright CSF at its front edge; the marrow-like
    run that follows (from :data:`BODY_LOW` × marrow up to the CSF level) is
    the body or the disc.  Its depth is clipped to 20–36 mm (lumbar bodies are
    28–40 mm deep) so that prevertebral tissue of marrow-like signal cannot
    pull the centre forward.  The centres are smoothed over ≈ 1.5 vertebrae
    (median, then Gaussian), prolonged along the end tangents (45 mm caudally
    to reach the sacrum, 25 mm cranially) and resampled every ``step_mm`` of
    arc length with a frame: ``t`` cranial, ``v`` posterior, ``u`` left.

    Returns
    -------
    SpineCurve or None
        None when fewer than 8 slices show a body in front of the CSF.
    """
    sp = grid.spacing_mm
    half = max(1, int(round(6.0 / sp)))
    reach = int(round(80.0 / sp))
    zs, ys, xs, cys = [], [], [], []
    for z, (cy, cx) in zip(track.z, track.yx):
        yi, xi = int(round(cy)), int(round(cx))
        if not (half <= xi < img_s.shape[2] - half):
            continue
        yy = np.arange(yi, max(yi - reach, -1), -1)
        if len(yy) < 10:
            continue
        prof = img_s[z, yy, xi - half: xi + half + 1].mean(axis=1)
        csf = prof > scale.csf
        k0 = int(np.argmin(csf)) if csf[0] else 0  # first voxel in front of the CSF
        like = (prof >= BODY_LOW * marrow) & (prof < scale.csf)
        like = ndi.binary_closing(like, iterations=max(1, int(round(1.0 / sp))))
        start = k0 + int(np.argmax(like[k0:])) if like[k0:].any() else -1
        if start < 0 or (start - k0) * sp > 8.0:
            continue
        end = start
        while end + 1 < len(like) and like[end + 1]:
            end += 1
        depth = (end - start + 1) * sp
        if depth < 15.0:
            continue
        depth = float(np.clip(depth, 20.0, 36.0))
        zs.append(z)
        ys.append(yy[start] - 0.5 * depth / sp)
        xs.append(cx)
        cys.append(cy)
    if len(zs) < 8:
        return None
    zs = np.array(zs, float)
    order = np.argsort(zs)
    zs = zs[order]
    cols = [np.array(c, float)[order] for c in (xs, ys, cys)]
    zq = np.arange(zs.min(), zs.max() + 1e-9, 0.5)
    win = max(3, int(round(25.0 / sp)) | 1)
    smooth = []
    for c in cols:
        c = ndi.median_filter(c, size=min(win, len(c) | 1 if len(c) % 2 else len(c) - 1),
                              mode="nearest")
        c = np.interp(zq, zs, c)
        smooth.append(ndi.gaussian_filter1d(c, 10.0 / sp / 0.5, mode="nearest"))
    x, y, cy = smooth
    pts = grid.origin_lps + np.stack([x, y, zq], 1) * sp
    can = grid.origin_lps + np.stack([x, cy, zq], 1) * sp
    hi = grid.origin_lps + (np.array(img_s.shape[::-1]) - 1) * sp
    return curve_from_polylines(pts, can, grid.origin_lps, hi, step_mm)


#: Discs are at least this far apart along the curve (mm): a body height (≥ 20 mm
#: from T10 down) plus a disc (≥ 4 mm).
MIN_DISC_SPACING_MM = 22.0
#: Smallest disc contrast against the marrow baseline (share of the marrow level).
MIN_DISC_CONTRAST = 0.10


@dataclass(frozen=True)
class MrDisc:
    """A disc found on the profile: its mid-plane and how it shows.

    Attributes
    ----------
    plane : DiscPlane
        Mid-plane (normal cranial).
    bright : bool
        True when the disc is brighter than marrow (a hydrated disc on T2).
    half_height_mm : float
        Half the disc's height along the curve (mm), from the width of its peak.
    """

    plane: DiscPlane
    bright: bool
    half_height_mm: float


def disc_profile(img_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, marrow: float):
    """Signed disc contrast along the curve: (profile − running median) / marrow.

    The running median over 41 mm follows the marrow (bodies fill ≈ 3/4 of the
    column) through slow shading of the coil; a disc is a 5–18 mm excursion from
    it, bright when hydrated and dark when degenerated.
    """
    prof = column_profile(img_s, grid, curve)
    valid = np.isfinite(prof)
    if valid.sum() < 10:
        return np.zeros(len(prof)), valid
    p = np.where(valid, prof, np.nanmedian(prof[valid]))
    p = ndi.gaussian_filter1d(p, 1.0 / curve.step_mm)
    base = ndi.median_filter(p, size=int(round(41.0 / curve.step_mm)) | 1, mode="nearest")
    return (p - base) / marrow, valid


def find_mr_discs(img_s: np.ndarray, grid: WorkGrid, curve: SpineCurve,
                  marrow: float) -> list:
    """Discs along ``curve``, caudal to cranial, as :class:`MrDisc`."""
    from scipy.signal import peak_widths

    dev, valid = disc_profile(img_s, grid, curve, marrow)
    score = np.abs(dev)
    dist = int(round(MIN_DISC_SPACING_MM / curve.step_mm))
    peaks, props = find_peaks(score, distance=dist, prominence=MIN_DISC_CONTRAST)
    if len(peaks) == 0:
        return []
    widths = peak_widths(score, peaks, rel_height=0.5)[0] * curve.step_mm
    out = []
    a, b = _patch(14.0, grid.spacing_mm)
    for pk, w, prom in zip(peaks, widths, props["prominences"]):
        if not valid[pk]:
            continue
        sign = 1.0 if dev[pk] > 0 else -1.0
        # tilting away from the curve's normal must pay in contrast: a third of
        # the disc's own contrast per radian (a bright nucleus is brightest
        # along an oblique chord, not in the mid-plane)
        tilt_cost = 0.35 * abs(float(dev[pk]))
        best = None
        t, u, v = curve.t[pk], curve.u[pk], curve.v[pk]
        for tilt_ap in np.radians(np.arange(-25, 26, 5)):
            for tilt_lr in np.radians((-8, 0, 8)):
                n = (t * np.cos(tilt_ap) * np.cos(tilt_lr) + v * np.sin(tilt_ap)
                     + u * np.sin(tilt_lr))
                n /= np.linalg.norm(n)
                e1 = np.cross(n, v)
                e1 /= np.linalg.norm(e1)
                e2 = np.cross(e1, n)
                for off in np.arange(-4.5, 4.6, 1.5):
                    c = curve.points_lps[pk] + off * t
                    pts = c + a[:, None] * e1 + b[:, None] * e2
                    val = ndi.map_coordinates(img_s, grid.lps_to_index(pts).T, order=1,
                                              cval=np.nan)
                    if np.isnan(val).mean() > 0.3:
                        continue
                    # the disc is the brightest (or darkest) plane through the dip;
                    # a small tilt penalty keeps the curve's normal when it is flat
                    score_p = sign * float(np.nanmean(val)) / marrow \
                        - tilt_cost * (abs(tilt_ap) + abs(tilt_lr)) - 0.005 * abs(off)
                    if best is None or score_p > best[0]:
                        best = (score_p, c, n)
        if best is None:
            continue
        plane = DiscPlane(best[1], best[2], float(pk * curve.step_mm), float(prom))
        out.append(MrDisc(plane, sign > 0, float(np.clip(w / 2.0, 1.0, 7.0))))
    return out


def _patch(radius_mm: float, step_mm: float):
    """In-plane offsets (mm) of the points of a disc of ``radius_mm`` sampled every ``step_mm``."""
    r = np.arange(-radius_mm, radius_mm + 1e-9, step_mm)
    a, b = np.meshgrid(r, r)
    m = a**2 + b**2 <= radius_mm**2
    return a[m], b[m]


#: Largest distance (mm) of a body voxel from the curve, across (lumbar bodies are
#: 36–46 mm wide) and in front (28–40 mm deep, the curve runs through the middle).
BODY_HALF_WIDTH_MM = 27.0
BODY_FRONT_MM = 28.0
#: Marrow band around a body's own core signal, in robust SDs (with a floor).
BAND_SD = 2.5
BAND_FLOOR = 0.12
#: ... and its floor (share of the marrow level): marrow fades by ≈ 15 % towards the
#: front of a body; the cortex and ligaments are darker still.
WALL_FLOOR = 0.2
#: A wall is where the signal leaves a narrower band (robust SDs) for ≥ 1 mm.
WALL_SD = 1.5
LATERAL_SD = 2.5
#: Width of a body over its depth where a lateral wall does not show: 36/30 (L1)
#: to 46/36 mm (L5) in dry bone (ANATOMY.md), plus partial volume of ≈ one thick
#: sagittal slice (4 mm a side at most) on MR.
WIDTH_PER_DEPTH = 1.5
#: Least half-depth (mm) of the dural sac: the body's back wall lies this far in
#: front of the CSF column's centre or more.
SAC_HALF_DEPTH_MM = 5.0


def label_bodies(img_s: np.ndarray, grid: WorkGrid, segs: list, discs: list, marrow: float,
                 scale: MrScale) -> tuple:
    """Vertebral bodies: 1-based segment index per voxel (0 = none), and their walls.

    For each segment between two disc planes: the signal of a 5 mm core at its
    centre sets a band (median ± 2.5 robust SDs).  Walks from the core find the
    walls in front, behind (where the CSF begins) and at the sides
    (:func:`body_walls`).  The body is the voxels in the band, between the
    endplates (the disc planes moved in by half the disc's height), inside the
    walls rounded to an oval (:data:`SHAPE_POWER`), connected to the core after
    a 2 mm opening (which cuts thin bridges to pedicles, rib heads and psoas),
    with holes filled.

    In front, the wall is also found off the midline (:func:`front_profile`):
    the anterolateral cortex curves back, and the crus and psoas in front of it
    have the marrow's signal on T2.

    Returns
    -------
    (numpy.ndarray, dict, dict)
        uint16 labels on the grid, ``{segment index: (front, back, right,
        left)}`` wall distances (mm) from each body's centre, and ``{segment
        index: (offsets across, front distances)}`` (mm) of :func:`front_profile`.
    """
    out = np.zeros(img_s.shape, np.uint16)
    half = {id(d.plane): d.half_height_mm for d in discs}
    sp = grid.spacing_mm
    all_walls, all_fronts = {}, {}
    for n, sg in enumerate(segs, start=1):
        box = _segment_box(grid, sg, img_s.shape)
        if box is None:
            continue
        sub = img_s[box]
        zyx = np.indices(sub.shape, dtype=np.float32).reshape(3, -1).T
        zyx += np.array([s.start for s in box], np.float32)
        pts = grid.index_to_lps(zyx).astype(np.float32)
        d = pts - sg.centre_lps.astype(np.float32)
        a_t, a_u, a_v = d @ sg.t, d @ sg.u, d @ sg.v
        core = (a_t**2 + a_u**2 + a_v**2) <= 5.0**2
        if core.sum() < 5:
            continue
        vals = sub.ravel()[core]
        med = float(np.median(vals))
        sd = 1.4826 * float(np.median(np.abs(vals - med)))
        width = max(BAND_SD * sd, BAND_FLOOR * marrow)
        lo_v = med - width
        hi_v = min(med + width, scale.csf)
        m = (sub.ravel() >= lo_v) & (sub.ravel() <= hi_v)
        m &= np.abs(a_u) < BODY_HALF_WIDTH_MM
        wall_lo = med - max(WALL_SD * sd, WALL_FLOOR * marrow)
        wall_hi = med + max(WALL_SD * sd, WALL_FLOOR * marrow)
        walls = body_walls(img_s, grid, sg, wall_lo, wall_hi, scale.csf)
        m &= _inside_walls(a_u, a_v, walls, 1.0)
        all_walls[n] = walls
        front_u = front_profile(img_s, grid, sg, walls, wall_lo, wall_hi)
        all_fronts[n] = front_u
        m &= _in_front_profile(a_u, a_v, front_u, 1.0)
        for plane, sign in ((sg.lower, 1.0), (sg.upper, -1.0)):
            if plane is not None:
                m &= sign * plane.signed_mm(pts) > half.get(id(plane), 2.0)
            else:
                m &= sign * a_t > -22.0
        m = m.reshape(sub.shape)
        r = max(1, int(round(2.0 / sp)))
        ball = ndi.generate_binary_structure(3, 1)
        opened = ndi.binary_opening(m, ball, iterations=r)
        lab, k = ndi.label(opened)
        hit = lab.ravel()[core]
        hit = hit[hit > 0]
        if len(hit) == 0:
            continue
        keep = lab == np.bincount(hit).argmax()
        # give back the rim the opening took, but only next to what was kept
        keep = ndi.binary_dilation(keep, ball, iterations=r) & m
        keep = ndi.binary_fill_holes(keep)
        view = out[box]
        view[keep & (view == 0)] = n
    return out, all_walls, all_fronts


#: Thickness (mm) of the cortical shell added outside the flooded marrow.
CORTEX_MM = 1.0
#: Exponent of the superellipse that rounds a body's cross-section between its
#: walls (2 is an ellipse; lumbar bodies are kidney-shaped ovals, a little fuller).
SHAPE_POWER = 2.5


def _inside_walls(a_u: np.ndarray, a_v: np.ndarray, walls: tuple, margin_mm: float) -> np.ndarray:
    """Points (across ``a_u``, back ``a_v``, mm) inside the rounded box of ``walls`` + margin."""
    front, back, right, left = (w + margin_mm for w in walls)
    cv, hv = 0.5 * (back - front), 0.5 * (back + front)
    cu, hu = 0.5 * (left - right), 0.5 * (left + right)
    return (np.abs((a_u - cu) / hu) ** SHAPE_POWER + np.abs((a_v - cv) / hv) ** SHAPE_POWER) <= 1.0


#: Spacing (mm) of the walks forward across a body, and the share of each
#: half-width they cover (further out they start in the pedicle or psoas).
FRONT_STEP_MM = 2.0
FRONT_REACH = 0.75
#: ... and how long (mm) the signal must stay out of the wall band there.
FRONT_RUN_MM = 2.0
#: ... out of this band (robust SDs of the body's core), as wide as the lateral
#: walls': thick sagittal slices blur the anterolateral cortex as they blur those.
FRONT_SD = LATERAL_SD


def front_profile(img_s: np.ndarray, grid: WorkGrid, sg, walls: tuple, lo_v: float,
                  hi_v: float) -> tuple:
    """Front wall distance (mm) at offsets across a body, from walks off the midline.

    A lumbar body is kidney-shaped: beside the midline its anterior cortex
    curves back, and in front of it lie the diaphragmatic crus, the psoas and
    the segmental vessels, of marrow-like signal (crus, psoas) or dark (flow
    voids).  Every :data:`FRONT_STEP_MM` across, five rays (±6 mm along the
    spine) walk forward from the centre's height; the wall is where the signal
    leaves the band [``lo_v``, ``hi_v``] (widened to :data:`FRONT_SD`) for
    :data:`FRONT_RUN_MM`, at least 4 mm out, median over the rays.  The front
    is never further than the midline's, and it only recedes towards the sides
    (a short wall with a longer one further out is a spot inside the marrow).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Offsets along ``sg.u`` (mm) and the front distance at each (mm).
    """
    front, _, right, left = walls
    offs = np.arange(-FRONT_REACH * right, FRONT_REACH * left + 1e-6, FRONT_STEP_MM)
    if len(offs) == 0:
        return np.zeros(1), np.array([front])
    ts = np.arange(-6.0, 6.1, 3.0)
    steps = np.arange(0.0, front + 0.5, 0.5)
    pts = (sg.centre_lps[None, None, None, :] - steps[:, None, None, None] * sg.v
           + offs[None, :, None, None] * sg.u + ts[None, None, :, None] * sg.t)
    val = ndi.map_coordinates(img_s, grid.lps_to_index(pts.reshape(-1, 3)).T, order=1,
                              cval=np.nan).reshape(len(steps), len(offs), len(ts))
    # marrow is patchy (veins, fat, sclerosis): only a clearly dark or bright run
    # is a wall, as for the lateral walls
    pad = 0.5 * (hi_v - lo_v) * (FRONT_SD / WALL_SD - 1.0)
    out = ~((val >= lo_v - pad) & (val <= hi_v + pad))
    run = int(round(FRONT_RUN_MM / 0.5))
    hits = np.ones(out[: len(out) - run + 1].shape, bool)
    for k in range(run):
        hits &= out[k: len(out) - run + 1 + k]
    hits &= steps[: len(hits), None, None] >= 4.0
    dist = np.where(hits.any(axis=0), steps[np.argmax(hits, axis=0)], front)
    dist = np.minimum(np.median(dist, axis=1), front)
    # the front recedes steadily from the midline to the sides: a short wall with
    # a longer one further out is a vein or a fatty patch inside the marrow
    mid = int(np.argmin(np.abs(offs)))
    dist[mid:] = np.maximum.accumulate(dist[mid:][::-1])[::-1]
    dist[: mid + 1] = np.maximum.accumulate(dist[: mid + 1])
    return offs, dist


def _in_front_profile(a_u: np.ndarray, a_v: np.ndarray, front_u: tuple,
                      margin_mm: float) -> np.ndarray:
    """Points (across ``a_u``, back ``a_v``, mm) behind the front profile + margin."""
    offs, dist = front_u
    return a_v >= -(np.interp(a_u, offs, dist) + margin_mm)


def body_walls(img_s: np.ndarray, grid: WorkGrid, sg, lo_v: float, hi_v: float,
               scale_csf: float) -> tuple:
    """(front, back, right, left) wall distances (mm) from a body's centre.

    Behind, the wall falls back on the canal (its offset less 7 mm) when the
    walk sees none.
    """
    # behind, the basivertebral veins interrupt the marrow: the wall is where
    # the CSF begins, less the posterior longitudinal ligament and dura (≈ 2 mm)
    back = _wall_mm(img_s, grid, sg, sg.v, -np.inf, scale_csf, 45.0) - 2.0
    if back >= 43.0:
        back = float(sg.canal_offset_mm - 7.0)
    # the wall lies in front of the CSF column's centre, by at least half a sac's
    # depth: where the CSF in front of the cord is thin (T11, T12) the walk can miss it
    back = min(back, float(sg.canal_offset_mm) - SAC_HALF_DEPTH_MM)
    front = _wall_mm(img_s, grid, sg, -sg.v, lo_v, hi_v, BODY_FRONT_MM)
    # across, the walk may leave the band only where the cortex is: slices of a
    # sagittal series are thick and blur the lateral wall, so the band is wider
    wide = (lo_v - 0.5 * (hi_v - lo_v) * (LATERAL_SD / WALL_SD - 1.0),
            hi_v + 0.5 * (hi_v - lo_v) * (LATERAL_SD / WALL_SD - 1.0))
    right = _wall_mm(img_s, grid, sg, -sg.u, *wide, BODY_HALF_WIDTH_MM)
    left = _wall_mm(img_s, grid, sg, sg.u, *wide, BODY_HALF_WIDTH_MM)
    # a side where no wall was seen would otherwise reach the search limit (a body
    # 54 mm wide, plus the watershed's room): where the psoas has the marrow's signal
    # and thick sagittal slices blur the cortex, the lateral wall shows on neither
    # real scan.  The body's depth is measured well (cortex in front, CSF behind), and
    # lumbar bodies are ≈ 1.2–1.3 × as wide as deep (ANATOMY.md), a slice more on MR.
    half_width = 0.5 * WIDTH_PER_DEPTH * (front + back)
    if right >= BODY_HALF_WIDTH_MM:
        right = min(right, half_width)
    if left >= BODY_HALF_WIDTH_MM:
        left = min(left, half_width)
    return front, back, right, left


def _segment_box(grid: WorkGrid, sg, shape) -> Optional[tuple]:
    """Index box (slices) of the work grid that can hold segment ``sg``'s body."""
    c = grid.lps_to_index(sg.centre_lps)
    r = 45.0 / grid.spacing_mm
    lo = np.maximum(np.floor(c - r).astype(int), 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _wall_mm(img_s: np.ndarray, grid: WorkGrid, sg, direction: np.ndarray, lo_v: float,
             hi_v: float, limit_mm: float) -> float:
    """Distance (mm) from the body centre to its wall along ``direction``.

    Fifteen parallel rays (±6 mm along the spine, ±6 mm across the walk) leave
    the centre; on each the wall is where the signal leaves the band
    [``lo_v``, ``hi_v``] (dark cortex and ligament, bright CSF or fat) for
    1 mm, at least 8 mm out.  The median over the rays ignores a vein or a
    patch of fatty marrow on one of them.  A ray that sees no wall counts as
    ``limit_mm``.
    """
    e1 = sg.t
    e2 = np.cross(direction, sg.t)
    a, b = np.meshgrid(np.arange(-6.0, 6.1, 3.0), np.arange(-6.0, 6.1, 6.0))
    steps = np.arange(0.0, limit_mm, 0.5)
    pts = (sg.centre_lps[None, None, :] + steps[:, None, None] * direction
           + a.ravel()[None, :, None] * e1 + b.ravel()[None, :, None] * e2)
    val = ndi.map_coordinates(img_s, grid.lps_to_index(pts).reshape(-1, 3).T, order=1,
                              cval=np.nan).reshape(len(steps), -1)
    out = ~((val >= lo_v) & (val <= hi_v))  # NaN (outside the grid) counts as out
    hits = out[:-1] & out[1:] & (steps[:-1, None] > 8.0)
    dist = np.where(hits.any(axis=0), steps[np.argmax(hits, axis=0)], limit_mm)
    return float(np.median(dist))


def refine_bodies(img_s: np.ndarray, grid: WorkGrid, segs: list, discs: list,
                  bodies: np.ndarray, walls: dict, scale: MrScale, marrow: float,
                  fronts: Optional[dict] = None) -> np.ndarray:
    """Move each body's outline onto the strongest edges: a marker watershed.

    The band of :func:`label_bodies` misses marrow of uneven signal (veins,
    fatty patches) and stops short of the cortex.  Here the band result, eroded
    by 2 mm, seeds each body; background seeds cover what cannot be body: CSF,
    dark cortex and flow voids (below 0.55 × marrow), and everything outside
    every body's walls (+ 3 mm) and its endplates (the disc cores).  The flood
    over the gradient magnitude meets at the steepest edge; a shell of
    :data:`CORTEX_MM` is then added for the cortex.
    """
    sp = grid.spacing_mm
    r = max(1, int(round(2.0 / sp)))
    ball = ndi.generate_binary_structure(3, 1)
    markers = np.zeros(img_s.shape, np.uint16)
    background = len(segs) + 1
    allowed = np.zeros(img_s.shape, bool)
    half = {id(d.plane): d.half_height_mm for d in discs}
    for n, sg in enumerate(segs, start=1):
        m = bodies == n
        if not m.any():
            continue
        box = _segment_box(grid, sg, img_s.shape)
        sub = np.zeros(img_s[box].shape, bool)
        zyx = np.indices(sub.shape, dtype=np.float32).reshape(3, -1).T
        zyx += np.array([s.start for s in box], np.float32)
        pts = grid.index_to_lps(zyx).astype(np.float32)
        d = pts - sg.centre_lps.astype(np.float32)
        a_t, a_u, a_v = d @ sg.t, d @ sg.u, d @ sg.v
        # inside the walls, plus room for the cortex (≈ 3 mm)
        w = walls[n]
        ok = _inside_walls(a_u, a_v, w, 3.0)
        if fronts and n in fronts:
            ok &= _in_front_profile(a_u, a_v, fronts[n], 3.0)
        for plane, sign in ((sg.lower, 1.0), (sg.upper, -1.0)):
            if plane is not None:
                ok &= sign * plane.signed_mm(pts) > max(half.get(id(plane), 2.0) - 2.5, 0.5)
            else:
                ok &= sign * a_t > -25.0
        view = allowed[box]
        view |= ok.reshape(sub.shape)
        mb = m[box]
        core = ndi.binary_erosion(mb, ball, iterations=r)
        if core.sum() < 20:
            core = mb
        markers[box][core] = n
    dark = img_s < 0.55 * marrow
    bright = img_s > scale.csf
    markers[(~allowed | dark | bright) & (markers == 0)] = background
    grad = sitk.GradientMagnitudeRecursiveGaussian(grid.to_image(img_s.astype(np.float32)),
                                                   sigma=1.0)
    ws = sitk.MorphologicalWatershedFromMarkers(grad, grid.to_image(markers),
                                                markWatershedLine=False, fullyConnected=False)
    lab = sitk.GetArrayFromImage(ws).astype(np.uint16)
    lab[lab == background] = 0
    out = np.zeros_like(lab)
    for n, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or n > len(segs):
            continue
        m = lab[sl] == n
        cl, k = ndi.label(m)
        if k > 1:
            sizes = np.bincount(cl.ravel())
            sizes[0] = 0
            m = cl == int(np.argmax(sizes))
        out[sl][ndi.binary_fill_holes(m)] = n
    # the flood stops on the steepest slope, the inner face of the dark cortex;
    # the body (as anatomists and the reference tracings draw it) includes it
    k = int(round(CORTEX_MM / sp))
    if k > 0:
        for _ in range(k):
            grow = ndi.grey_dilation(out, footprint=ndi.generate_binary_structure(3, 1))
            free = (out == 0) & allowed & ~bright
            out = np.where(free, grow, out).astype(np.uint16)
    return out


def label_mr_discs(img_s: np.ndarray, grid: WorkGrid, segs: list, walls: dict,
                   bodies: np.ndarray) -> dict:
    """Disc masks between vertebral bodies that were both outlined.

    A disc fills the space between two endplates: here, the voxels within
    12 mm of the disc plane, inside the mean outline (walls) of its two
    bodies, that are not body; the largest piece.  That holds for
    bright (hydrated) and dark (degenerated) discs alike.

    Returns
    -------
    dict
        ``{index of the lower segment (1-based): mask}``.
    """
    out = {}
    for n in range(1, len(segs)):
        lower, upper = segs[n - 1], segs[n]
        plane = lower.upper
        if plane is None or upper.lower is not plane or n not in walls or n + 1 not in walls:
            continue
        if not (np.any(bodies == n) and np.any(bodies == n + 1)):
            continue
        c = grid.lps_to_index(plane.point_lps)
        r = 35.0 / grid.spacing_mm
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, img_s.shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        zyx = np.indices(img_s[box].shape, dtype=np.float32).reshape(3, -1).T
        zyx += lo.astype(np.float32)
        pts = grid.index_to_lps(zyx).astype(np.float32)
        d = pts - plane.point_lps.astype(np.float32)
        along = d @ plane.normal
        v = lower.v - (lower.v @ plane.normal) * plane.normal
        v /= np.linalg.norm(v)
        u = np.cross(v, plane.normal)
        w = tuple(0.5 * (a + b) for a, b in zip(walls[n], walls[n + 1]))
        # the plane's point lies on the curve, the walls are measured from the body centres
        m = (np.abs(along) < 12.0) & _inside_walls(d @ u, d @ v, w, 0.0)
        sub_b = bodies[box].ravel()
        # a hydrated nucleus is as bright as CSF: the walls, not the signal, keep the sac out
        m &= sub_b == 0
        m = m.reshape(img_s[box].shape)
        cl, k = ndi.label(m)
        if k == 0:
            continue
        sizes = np.bincount(cl.ravel())
        sizes[0] = 0
        full = np.zeros(img_s.shape, bool)
        full[box] = cl == int(np.argmax(sizes))
        out[n] = full
    return out


def label_dural_sac(img_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, track: CanalTrack,
                    scale: MrScale, taken: np.ndarray) -> np.ndarray:
    """The dural sac: CSF-bright voxels within 14 mm of the canal line, connected to the track.

    Parameters
    ----------
    track : CanalTrack
        On the same grid; its mask seeds the connection (a bright disc or fat
        near the canal is not CSF unless it touches it).
    taken : numpy.ndarray
        Voxels already given to bodies or discs.
    """
    line = np.zeros(img_s.shape, bool)
    idx = np.round(grid.lps_to_index(curve.canal_lps)).astype(int)
    ok = np.all((idx >= 0) & (idx < np.array(img_s.shape)), axis=1)
    idx = idx[ok]
    if len(idx) == 0:
        return line
    line[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    dist = ndi.distance_transform_edt(~line, sampling=grid.spacing_mm)
    m = (dist <= 14.0) & (img_s > scale.csf) & ~taken
    cl, k = ndi.label(m)
    if k == 0:
        return m
    hit = np.unique(cl[track.mask & m])
    return np.isin(cl, hit[hit > 0])
