"""Disc planes from the intensity profile along the spine curve.

Inside the body column, bone (cancellous ≈ 90–250 HU, endplates brighter) alternates
with discs (≈ 60–80 HU).  The mean CT number over a 9 mm disc perpendicular to
the curve therefore dips at every disc; the dips are ≥ 24 mm apart (a lumbar
body is 25–30 mm high).  Each dip is then refined into a plane: the tilt and
offset that make a 12 mm patch darkest, i.e. that lie inside the disc (wedge
discs such as L5–S1 are far from perpendicular to the curve).

The disc masks (:func:`label_discs`) are the soft tissue between the two endplates
that face each other, no wider than they are; :func:`refine_discs_on_input` settles
their edges against the endplates at the input's resolution.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.spine_curve import SpineCurve


@dataclass(frozen=True)
class DiscPlane:
    """A disc mid-plane.

    Attributes
    ----------
    point_lps : numpy.ndarray
        Centre of the disc (LPS mm).
    normal : numpy.ndarray
        Unit normal pointing cranially.
    s_mm : float
        Arc length of the dip along the curve (mm).
    depth_hu : float
        Prominence of the dip (HU): how clearly the disc shows.
    endplate_hu : float
        CT number halfway between the disc and the bone beside it (HU).
    thickness_mm : float
        Height of the disc at its centre (mm): the width of the dip where the
        profile along the curve is darker than ``endplate_hu``.
    disc_hu : float
        Mean CT number at the middle of the dip (HU): the disc's own level, from
        which its edge against the endplates is the half-maximum.
    """

    point_lps: np.ndarray
    normal: np.ndarray
    s_mm: float
    depth_hu: float
    endplate_hu: float = 100.0
    thickness_mm: float = 8.0
    disc_hu: float = 75.0

    def signed_mm(self, pts_lps: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of points above (+) / below (−) the plane."""
        return (np.asarray(pts_lps) - self.point_lps) @ self.normal


def _disk(radius_mm: float, step_mm: float):
    r = np.arange(-radius_mm, radius_mm + 1e-9, step_mm)
    a, b = np.meshgrid(r, r)
    m = a**2 + b**2 <= radius_mm**2
    return a[m], b[m]


def column_profile(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, radius_mm: float = 9.0):
    """Mean HU over a disc of ``radius_mm`` perpendicular to the curve at each point."""
    a, b = _disk(radius_mm, grid.spacing_mm)
    pts = (curve.points_lps[:, None, :] + a[None, :, None] * curve.u[:, None, :]
           + b[None, :, None] * curve.v[:, None, :])
    idx = grid.lps_to_index(pts).reshape(-1, 3).T
    vals = ndi.map_coordinates(hu_s, idx, order=1, cval=np.nan).reshape(pts.shape[:2])
    with warnings.catch_warnings():
        # points whose whole disc lies outside the grid stay NaN, said by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        prof = np.nanmean(vals, axis=1)
    return prof


#: How much brighter (HU) the endplates on *both* sides of a dip must be.
MIN_DISC_SCORE_HU = 20.0
#: A disc is soft tissue: dips darker than this are fat or air beyond the column (HU).
MIN_DISC_HU = 20.0
MIN_DISC_SPACING_MM = 24.0


def disc_score(prof: np.ndarray, step_mm: float, reach_mm: float = 10.0) -> np.ndarray:
    """Disc evidence per curve point: the darker side's endplate rise (HU).

    A disc is 8–18 mm thick and lies between two bright endplates, so within
    ≈ 10 mm on both sides of its middle the profile climbs steeply (a reach of
    only 5 mm misses the endplates of a 14 mm disc).  The middle of a body is
    also a local minimum (cancellous bone between denser endplates), but its
    rise is smaller and it lies 12–15 mm from the discs, which then win the
    :data:`MIN_DISC_SPACING_MM` contest.  Taking the *lower* of the two sides'
    maxima rejects one-sided edges (the ends of the column).
    """
    n = len(prof)
    k = max(1, int(round(reach_mm / step_mm)))
    k0 = max(1, int(round(2.0 / step_mm)))
    pad = np.concatenate([np.full(k, -np.inf), prof, np.full(k, -np.inf)])
    left = np.full(n, -np.inf)
    right = np.full(n, -np.inf)
    for d in range(k0, k + 1):
        left = np.maximum(left, pad[k - d: k - d + n])
        right = np.maximum(right, pad[k + d: k + d + n])
    out = np.minimum(left, right) - prof
    out[~np.isfinite(out)] = 0.0
    return out


def find_disc_planes(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve) -> list:
    """Disc planes along ``curve``, caudal to cranial (see the module doc)."""
    prof = column_profile(hu_s, grid, curve)
    valid = np.isfinite(prof)
    if valid.sum() < 10:
        return []
    p = np.where(valid, prof, np.nanmax(prof[valid]))
    p = ndi.gaussian_filter1d(p, 1.5 / curve.step_mm)
    score = disc_score(p, curve.step_mm)
    # disc centres are a body height plus a disc apart: ≥ 24 mm from T10 down
    # (bodies ≥ 20 mm, discs ≥ 5 mm).  A weaker dip closer than that to a
    # stronger one is the less dense middle of a body, not a disc.
    dist = int(round(MIN_DISC_SPACING_MM / curve.step_mm))
    peaks, props = find_peaks(score, distance=dist, height=MIN_DISC_SCORE_HU)
    props["prominences"] = props["peak_heights"]
    planes = []
    a, b = _disk(12.0, grid.spacing_mm)
    for pk, prom in zip(peaks, props["prominences"]):
        if not valid[pk] or p[pk] < MIN_DISC_HU:
            continue
        best = None
        for tilt_ap in np.radians(np.arange(-25, 26, 5)):
            for tilt_lr in np.radians((-8, 0, 8)):
                t, u, v = curve.t[pk], curve.u[pk], curve.v[pk]
                n = t * np.cos(tilt_ap) * np.cos(tilt_lr) + v * np.sin(tilt_ap) + u * np.sin(tilt_lr)
                n /= np.linalg.norm(n)
                e1 = np.cross(n, v)
                e1 /= np.linalg.norm(e1)
                e2 = np.cross(e1, n)
                for off in np.arange(-6.0, 6.1, 1.5):
                    c = curve.points_lps[pk] + off * curve.t[pk]
                    pts = c + a[:, None] * e1 + b[:, None] * e2
                    val = ndi.map_coordinates(hu_s, grid.lps_to_index(pts).T, order=1, cval=1e4)
                    # small penalty for tilt: prefer the curve's normal when the dip is flat
                    score = float(np.mean(val)) + 8.0 * (abs(tilt_ap) + abs(tilt_lr))
                    if best is None or score < best[0]:
                        best = (score, c, n)
        # halfway between the disc and the bone on either side (HU)
        k = int(round(12.0 / curve.step_mm))
        sides = np.concatenate([p[max(pk - 2 * k, 0): max(pk - k, 0)], p[pk + k: pk + 2 * k]])
        bone_level = float(np.median(sides)) if len(sides) else p[pk] + 40.0
        endplate = float(np.clip(0.5 * (p[pk] + bone_level), 90.0, 140.0))
        planes.append(DiscPlane(best[1], best[2], float(pk * curve.step_mm), float(prom), endplate,
                                _dip_width_mm(p, pk, endplate, curve.step_mm), float(p[pk])))
    return planes


def _dip_width_mm(prof: np.ndarray, k: int, level_hu: float, step_mm: float) -> float:
    """Width (mm) of the run of ``prof`` below ``level_hu`` around index ``k``.

    Clipped to 4–20 mm: thinner is a degenerate disc whose bony rims touch at
    this resolution, thicker is the profile leaving the column, not a disc.
    """
    lo = hi = k
    while lo > 0 and prof[lo - 1] < level_hu:
        lo -= 1
    while hi + 1 < len(prof) and prof[hi + 1] < level_hu:
        hi += 1
    return float(np.clip((hi - lo + 1) * step_mm, 4.0, 20.0))


# --- disc masks ---------------------------------------------------------------------------------

#: A disc reaches at most this far (mm) from its centre in its plane: a lumbosacral
#: disc is ≈ 50 mm wide; the endplates bound each disc more closely.
DISC_RADIUS_MM = 30.0
#: Below this (HU) a voxel at the disc's rim is fat, not annulus.
DISC_RIM_MIN_HU = 20.0
#: Cortex brighter than this (HU) does not raise the disc/endplate half-maximum
#: further: blurred endplate cortex stays below it, metal (screws, cages) does not.
ENDPLATE_PEAK_CAP_HU = 1200.0
#: How far (mm) from the mid-plane an endplate may lie: the front of a lordotic
#: lumbosacral disc is ≈ 19 mm high (ANATOMY.md), so its endplates are ≤ 12 mm off.
ENDPLATE_REACH_MM = 14.0
#: Inside the footprint, this far (mm) from its rim, a disc voxel may read anything
#: below the endplate level: a degenerate disc holds vacuum gas (≈ −500 HU).
GAS_MARGIN_MM = 4.0
#: How far (mm) a cell's endplate may lie beyond the plane fitted to the endplate
#: (the rounded rim of an endplate), and how far inside the rim (mm) the cells lie
#: that the plane is fitted on.
RIM_SLACK_MM = 2.0
RIM_INSET_MM = 4.5


def _endplate_plane(height: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Plane fitted to ``height`` (mm) over ``cells``, evaluated on the whole cell grid.

    Least squares, then once more without the cells more than 2 mm off the first
    fit (a notch, an osteophyte, a Schmorl node).
    """
    a, b = np.nonzero(cells)
    h = height[a, b].astype(float)
    design = np.column_stack([np.ones(len(a)), a, b])
    coef = np.linalg.lstsq(design, h, rcond=None)[0]
    keep = np.abs(design @ coef - h) <= 2.0
    if keep.sum() >= 6:
        coef = np.linalg.lstsq(design[keep], h[keep], rcond=None)[0]
    ga, gb = np.indices(height.shape)
    return coef[0] + coef[1] * ga + coef[2] * gb


def label_discs(hu_s: np.ndarray, grid: WorkGrid, segs: list, vert: np.ndarray) -> dict:
    """Disc masks: the soft tissue between the two endplates that face each other.

    A disc fills the space between the lower body's superior endplate and the upper
    body's inferior endplate, and it is no wider than they are: the psoas, the
    vessels and the fat beside it read the same as the annulus, so its rim is
    decided by the endplates, not by its density.  Seen along the disc plane's
    normal, every cell of a grid in that plane gets the height of the lower
    endplate (top of the lower vertebra's body) and of the upper endplate (bottom
    of the upper one); the disc is what lies between the two, is not bone, and is
    darker than the half-maximum between the disc and the endplate's cortex.  The
    footprint is the cells where both endplates are found, closed and filled (a
    concave rim or a missed voxel), plus one cell of annulus beyond the rim where
    the heights are those of the nearest cell.  Within
    :data:`GAS_MARGIN_MM` of the rim's inside anything darker than bone is disc
    (vacuum gas of a degenerate disc); at the rim, fat (< :data:`DISC_RIM_MIN_HU`)
    is not.

    Parameters
    ----------
    hu_s : numpy.ndarray
        CT (HU) on ``grid``, lightly smoothed.
    grid : WorkGrid
        The working grid (LPS-aligned, isotropic).
    segs : list of Segment
        Vertebra spans, caudal to cranial (``vertebrae.segments_from_planes``).
    vert : numpy.ndarray
        Vertebra labels on ``grid``: segment ``n`` (1-based) has value ``n``.

    Returns
    -------
    dict
        ``{index_of_lower_segment: bool mask on grid}`` for each plane with a
        body on both sides (segments are 1-based, caudal to cranial).
    """
    out = {}
    shape = hu_s.shape
    step = grid.spacing_mm
    for n in range(1, len(segs)):
        lower, upper = segs[n - 1], segs[n]
        plane = lower.upper
        if plane is None or upper.lower is not plane:
            continue
        zc = grid.lps_to_index(plane.point_lps)[0]
        reach = DISC_RADIUS_MM + ENDPLATE_REACH_MM
        z0 = int(np.clip(np.floor(zc - reach / step), 0, shape[0]))
        z1 = int(np.clip(np.ceil(zc + reach / step) + 1, 0, shape[0]))
        if z1 <= z0:
            continue
        m = _disc_between_endplates(hu_s[z0:z1], vert[z0:z1], grid, z0, plane, lower, upper, n)
        if m is not None and m.any():
            full = np.zeros(shape, bool)
            full[z0:z1] = m
            out[n] = full
    return out


def _disc_between_endplates(hu, vert, grid, z0, plane, lower, upper, n):
    """One disc on the slab ``[z0:z0 + len(hu)]`` of the grid (see :func:`label_discs`)."""
    step = grid.spacing_mm
    sub = hu.shape
    zyx = np.indices(sub, dtype=np.float32).reshape(3, -1).T
    zyx[:, 0] += z0
    d = grid.index_to_lps(zyx).astype(np.float32) - plane.point_lps.astype(np.float32)
    del zyx
    nrm = plane.normal.astype(np.float32)
    e1 = np.cross(plane.normal, lower.v)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(plane.normal, e1)
    along = d @ nrm
    c1 = d @ e1.astype(np.float32)
    c2 = d @ e2.astype(np.float32)
    back = d @ lower.v.astype(np.float32)
    del d
    off = 0.5 * (lower.canal_offset_mm + upper.canal_offset_mm)
    r = int(np.ceil(DISC_RADIUS_MM / step))
    i1 = np.round(c1 / step).astype(np.int32)
    i2 = np.round(c2 / step).astype(np.int32)
    # the bodies only: in front of their posterior wall (≈ 5 mm in front of the
    # canal's centre), within a disc's radius of its centre
    near = ((np.abs(along) < ENDPLATE_REACH_MM) & (np.abs(i1) <= r) & (np.abs(i2) <= r)
            & (c1 * c1 + c2 * c2 < DISC_RADIUS_MM**2) & (back < off - 5.0))
    lab = vert.ravel()
    cell = (i1 + r) * (2 * r + 1) + (i2 + r)
    ncell = (2 * r + 1) ** 2
    top = np.full(ncell, -np.inf, np.float32)   # lower endplate (top of the lower body)
    bot = np.full(ncell, np.inf, np.float32)    # upper endplate (bottom of the upper body)
    lo = near & (lab == n)
    hi = near & (lab == n + 1)
    np.maximum.at(top, cell[lo], along[lo])
    np.minimum.at(bot, cell[hi], along[hi])
    top = top.reshape(2 * r + 1, 2 * r + 1)
    bot = bot.reshape(2 * r + 1, 2 * r + 1)
    both = np.isfinite(top) & np.isfinite(bot) & (bot > top)
    if not both.any():
        return None
    # the cells are as fine as the voxels, so a tilted plane leaves some empty:
    # close and fill, then one cell of annulus beyond the endplates' rim
    fp = ndi.binary_fill_holes(ndi.binary_closing(np.pad(both, 2), iterations=2)[2:-2, 2:-2])
    rim_in = ndi.binary_erosion(fp, iterations=max(1, int(round(GAS_MARGIN_MM / step))))
    fp = ndi.binary_dilation(fp)
    # at the rim of a body the cortex curves away from the disc, a worn or
    # irregular rim is set back, and a coarse voxel grid makes it ragged: a cell
    # there may see the body's wall millimetres beyond the endplate, and the disc
    # would run up the wall.  Each endplate is near a plane (tilted for a wedge
    # disc, 1–2 mm concave): fitted on the cells inside the rim, it bounds every
    # cell's endplate to within RIM_SLACK_MM beyond it.
    inner = ndi.binary_erosion(both, iterations=max(1, int(round(RIM_INSET_MM / step))))
    if np.count_nonzero(inner) < 6:
        inner = both
    top = np.where(both, np.maximum(top, _endplate_plane(top, inner) - RIM_SLACK_MM), np.nan)
    bot = np.where(both, np.minimum(bot, _endplate_plane(bot, inner) + RIM_SLACK_MM), np.nan)
    # every footprint cell takes the heights of the nearest cell where both were seen
    _, (ia, ib) = ndi.distance_transform_edt(~both, return_indices=True)
    top = top[ia, ib]
    bot = bot[ia, ib]
    ok = near & fp[np.clip(i1 + r, 0, 2 * r), np.clip(i2 + r, 0, 2 * r)]
    idx = np.flatnonzero(ok)
    ci, cj = i1[idx] + r, i2[idx] + r
    a = along[idx]
    h = hu.ravel()[idx]
    # the disc's edge against an endplate is the half-maximum between the disc
    # and the endplate's cortex, as every other bone edge
    size = 2 * max(1, int(round(2.5 / step))) + 1
    if not len(idx):
        return None
    # the brightest voxel within 2.5 mm, on the box around the candidates only
    zyx = np.unravel_index(idx, sub)
    box = tuple(slice(max(int(c.min()) - size, 0), int(c.max()) + size + 1) for c in zyx)
    peak_box = ndi.maximum_filter(hu[box], size=size)
    peak = np.minimum(peak_box[tuple(c - b.start for c, b in zip(zyx, box))], ENDPLATE_PEAK_CAP_HU)
    del peak_box, zyx
    level = np.maximum(plane.endplate_hu, 0.5 * (peak + plane.disc_hu))
    keep = ((a > top[ci, cj]) & (a < bot[ci, cj]) & (lab[idx] == 0) & (h < level)
            & ((h >= DISC_RIM_MIN_HU) | rim_in[ci, cj]))
    m = np.zeros(hu.size, bool)
    m[idx[keep]] = True
    m = m.reshape(sub)
    cl, k = ndi.label(m)
    if k > 1:
        sizes = np.bincount(cl.ravel())
        sizes[0] = 0
        m = cl == int(np.argmax(sizes))
    # a disc is solid: a bright fleck inside it (calcified nucleus, noise) is disc
    return ndi.binary_fill_holes(m) & (vert == 0)


def refine_discs_on_input(structures: np.ndarray, disc_values, hu: np.ndarray, spacing_kji_mm,
                          vertebrae: np.ndarray, work_mm: float) -> np.ndarray:
    """Settle the discs' edges against the endplates at the input's own resolution.

    The discs come back from the working grid by nearest neighbour, a staircase
    of ``work_mm`` steps, while the endplate a disc lies on is a sheet of cortex
    ≈ 1 mm thick: at a finer input the disc's last voxel before the cortex
    (blurred with it, 150–250 HU) is lost or the cortex is taken.  Within half a
    working voxel of each disc's edge, on the side of a vertebra only (its rim
    against the psoas is left as the endplates' footprint drew it), a voxel is
    disc when it is darker than the half-maximum between the disc's own median
    and the brightest cortex within 2.5 mm, and is neither vertebra nor another
    structure.

    Parameters
    ----------
    structures : numpy.ndarray
        Structure labels on the input grid ``[k, j, i]`` (the discs among them).
    disc_values : iterable of int
        The label values of the discs in ``structures``.
    hu : numpy.ndarray
        The input CT (HU), same shape.
    spacing_kji_mm : sequence of float
        Voxel size along k, j, i (mm).
    vertebrae : numpy.ndarray
        Vertebra labels on the input grid (after their own edges were settled).
    work_mm : float
        Voxel edge of the working grid the discs were found on (mm).

    Returns
    -------
    numpy.ndarray
        ``structures`` with the discs' edges re-decided (a new array when changed).
    """
    sp = np.asarray(spacing_kji_mm, float)
    values = [int(v) for v in disc_values]
    if np.all(sp >= 0.9 * work_mm) or not values:
        return structures
    out = structures
    reach = max(1, int(round(0.5 * work_mm / sp.min())))
    size = [2 * max(1, int(round(2.5 / s))) + 1 for s in sp]
    for value in values:
        disc = structures == value
        if not disc.any():
            continue
        nz = [np.nonzero(np.any(disc, axis=a))[0] for a in ((1, 2), (0, 2), (0, 1))]
        pad = np.ceil(4.0 / sp).astype(int)
        box = tuple(slice(max(int(z[0]) - p, 0), int(z[-1]) + p + 1) for z, p in zip(nz, pad))
        m = disc[box]
        h = ndi.gaussian_filter(np.asarray(hu[box], np.float32), 0.5 * work_mm / 1.5 / sp)
        disc_hu = float(np.median(h[ndi.binary_erosion(m, iterations=reach)] if
                                  ndi.binary_erosion(m, iterations=reach).any() else h[m]))
        peak = np.minimum(ndi.maximum_filter(h, size=size), ENDPLATE_PEAK_CAP_HU)
        dark = h < 0.5 * (peak + disc_hu)
        del peak
        bone = vertebrae[box] > 0
        by_bone = ndi.binary_dilation(bone, iterations=2 * reach)
        band = ndi.binary_dilation(m, iterations=reach) & ~ndi.binary_erosion(m, iterations=reach)
        s = structures[box]
        new = m.copy()
        new[band & m & by_bone & ~dark] = False
        new[band & ~m & by_bone & dark & ~bone & (s == 0)] = True
        if out is structures:
            out = structures.copy()
        o = out[box]
        o[m & ~new] = 0
        o[new & ~m] = value
    return out
