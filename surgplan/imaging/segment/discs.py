"""Disc planes from the intensity profile along the spine curve.

Inside the body column, bone (cancellous ≈ 90–250 HU, endplates brighter) alternates
with discs (≈ 60–80 HU).  The mean CT number over a 9 mm disc perpendicular to
the curve therefore dips at every disc; the dips are ≥ 24 mm apart (a lumbar
body is 25–30 mm high).  Each dip is then refined into a plane: the tilt and
offset that make a 12 mm patch darkest, i.e. that lie inside the disc (wedge
discs such as L5–S1 are far from perpendicular to the curve).
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
