"""Spinal canal and exiting nerve roots on T2 MR, around the segmented bodies and sac.

*Canal.*  On T2 the canal is the bright CSF of the dural sac with the epidural
fat around it (bright on fast spin echo too), bounded in front by the bodies'
posterior wall and behind by the dark ligamentum flavum and laminae.  Per
vertebra the front is the body's measured back wall, the back is measured by a
walk from the sac backwards to the first dark tissue, and the half-width is
the sac's own measured half-width plus the lateral recess, at least half the
interpedicular distance of the level (ANATOMY.md).  These stations, in the
vertebra's frame, make the same elliptic tube as on CT
(:func:`surgplan.imaging.segment.neural.canal_tube`), minus bodies and discs.

*Exiting roots.*  On a parasagittal T2 slice through a foramen the root is a
dark oval in bright foraminal fat under the pedicle, but only where the slices
are thin and close: a 4–5 mm sagittal series puts one or two slices across a
5 mm foramen, and the pedicles (marrow signal) are not outlined here.  So the
roots are *modelled* as on CT (:func:`surgplan.imaging.segment.neural.root_model`)
from the measured bodies, disc planes and sac, with the pedicle placed at the
top of the body (13–15 mm high, ANATOMY.md) and the pedicle width of its level.
Each root's foraminal stretch is then looked for on the image near that
course (:func:`fit_root`): a dark line in a ring of bright fat.  Where it shows,
the root follows it and is ``segmented`` there; elsewhere it stays ``modelled``
and the note says why.

*S1 roots.*  The traversing roots at L5-S1 are modelled as on CT
(:func:`surgplan.imaging.segment.neural.s1_root_model`) from the S1 body's
endplate, the L5-S1 disc and the sac; their stretch down the lateral recess,
a dark cord between the bright CSF and the epidural fat, is looked for across
the recess (left-right and front-back, never leaving the canal) in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.neural import (
    RootModel, canal_tube, paint_tube, root_model, root_source, s1_root_model,
)
from surgplan.imaging.segment.parts import SIDE_SIGN, ArchGeometry, segment_frame

#: Pedicle width (mm, outer cortex) by level: L1 ≈ 8 → L5 ≈ 16 (ANATOMY.md).
PEDICLE_WIDTH_MM = {"T10": 7.0, "T11": 7.5, "T12": 8.0, "L1": 8.0, "L2": 9.0, "L3": 10.5,
                    "L4": 13.0, "L5": 16.0, "L6": 16.0}
#: Half the interpedicular distance (mm): L1 ≈ 21–23 → L5 ≈ 26–27 mm (ANATOMY.md).
CANAL_HALF_MIN_MM = {"T10": 9.0, "T11": 9.5, "T12": 10.0, "L1": 11.0, "L2": 11.5, "L3": 12.0,
                     "L4": 12.5, "L5": 13.0, "L6": 13.0}
#: Pedicle height (mm): 13–15 (ANATOMY.md); it springs from the top of the body.
PEDICLE_HEIGHT_MM = 14.0
#: Canal AP depth (mm) where the walk behind the sac finds no dark wall: L5 15.6 ± 2.1.
CANAL_AP_MM = 15.6
#: Lateral recess beyond the sac's edge (mm): the root sleeves and epidural fat.
RECESS_MM = 2.0
#: Ligamentum flavum and laminae are dark on T2: below this share of the marrow level.
DARK_SHARE = 0.6
#: A root "shows" where its foraminal stretch is this much darker than the fat ring.
ROOT_CONTRAST = 0.15


@dataclass(frozen=True)
class MrNeural:
    """Canal and roots on the MR working grid.

    Attributes
    ----------
    canal : numpy.ndarray
        bool, the spinal canal (sac, epidural space and roots inside it).
    canal_notes : str
        How the canal was bounded, for the user.
    roots : dict
        ``name → bool mask``.
    root_models : dict
        ``name → RootModel``.
    root_notes : dict
        ``name → note`` (model, sources, and what the image showed).
    root_seen : dict
        ``name → True`` for the roots whose foraminal stretch was found on the
        image (provenance ``segmented``); the others are ``modelled``.
    """

    canal: np.ndarray
    canal_notes: str
    roots: Dict[str, np.ndarray]
    root_models: Dict[str, RootModel]
    root_notes: Dict[str, str]
    root_seen: Dict[str, bool]


def mr_arches(img: np.ndarray, grid: WorkGrid, segs: list, names: tuple, walls: dict,
              discs: list, sac: np.ndarray, marrow: float) -> Dict[str, ArchGeometry]:
    """Each named body's canal and pedicle geometry, measured where MR shows it.

    Parameters
    ----------
    img : numpy.ndarray
        Bias-corrected, smoothed T2 on ``grid`` (``[z, y, x]``).
    segs : list of Segment
        Caudal → cranial, as from ``segments_from_planes``.
    names : tuple of str
        Name of each segment ('' when unnamed).
    walls : dict
        ``{segment index (1-based): (front, back, right, left)}`` mm from its centre.
    discs : list of MrDisc
    sac : numpy.ndarray
        bool, the dural sac on ``grid``.
    marrow : float
        Marrow signal level (scanner units).

    Returns
    -------
    dict
        ``name → ArchGeometry`` (frame and distances in mm, as on CT).  Its
        ``measured`` says what came from the image: ``canal back`` and ``sac
        width`` when measured; the pedicles are always from the level's sizes.
    """
    half_disc = {id(d.plane): d.half_height_mm for d in discs}
    sac_pts = grid.index_to_lps(np.argwhere(sac)) if sac.any() else np.zeros((0, 3))
    sac_tree = cKDTree(sac_pts) if len(sac_pts) else None
    out = {}
    for n, sg in enumerate(segs, start=1):
        name = names[n - 1] if n - 1 < len(names) else ""
        if not name or n not in walls:
            continue
        frame = segment_frame(sg)
        o = frame.origin_lps
        w_lo = np.nan if sg.lower is None else float((sg.lower.point_lps - o) @ frame.si)
        w_hi = np.nan if sg.upper is None else float((sg.upper.point_lps - o) @ frame.si)
        disc_below = 2.0 * half_disc.get(id(sg.lower), np.nan) if sg.lower is not None else np.nan
        front, back, right, left = walls[n]
        found = []
        # --- the sac's half-width per side, over the middle of the body ---------------------
        sac_half = {}
        if sac_tree is not None:
            near = sac_tree.query_ball_point(o + sg.canal_offset_mm * frame.ap, 25.0)
            d = sac_pts[near] - o
            d = d[np.abs(d @ frame.si) <= 4.0]
            if len(d) >= 10:
                for side in SIDE_SIGN:
                    du = d @ frame.lr * SIDE_SIGN[side]
                    if (du > 0).any():
                        sac_half[side] = float(np.percentile(du[du > 0], 98))
        if sac_half:
            found.append("sac width")
        canal_half = {}
        for side in SIDE_SIGN:
            sh = sac_half.get(side, CANAL_HALF_MIN_MM.get(name, 12.0) - RECESS_MM)
            canal_half[side] = max(sh + RECESS_MM, CANAL_HALF_MIN_MM.get(name, 12.0))
        # --- canal back: the first dark tissue behind the CSF -----------------------------
        canal_back = _canal_back_mm(img, grid, frame, sg.canal_offset_mm, back, marrow)
        if np.isfinite(canal_back):
            found.append("canal back")
        else:
            canal_back = back + CANAL_AP_MM
        canal_back = float(np.clip(canal_back, back + 8.0, back + 25.0))
        # --- pedicles: from the top of the body, the width of the level -------------------
        top = (w_hi - half_disc.get(id(sg.upper), 2.0)) if np.isfinite(w_hi) else 12.0
        band = (top - PEDICLE_HEIGHT_MM, top)
        pw = PEDICLE_WIDTH_MM.get(name, 10.0)
        out[name] = ArchGeometry(
            name, frame, w_lo, w_hi, float(back), canal_back, canal_half,
            {s: band for s in SIDE_SIGN}, {s: canal_half[s] + pw for s in SIDE_SIGN},
            0.5 * float(right + left), tuple(found), disc_below)
    return out


def _canal_back_mm(img: np.ndarray, grid: WorkGrid, frame, canal_offset_mm: float,
                   body_back_mm: float, marrow: float) -> float:
    """Distance (mm, along ``frame.ap``) from the body centre to the canal's back wall.

    Rays from the body's back wall go backwards through the CSF and the epidural
    fat; the wall is where the signal falls below :data:`DARK_SHARE` × marrow
    for 1.5 mm (ligamentum flavum, lamina), behind the sac's centre.  The median
    over 15 rays (±6 mm along the spine, ±3 mm across); NaN when fewer than
    half of them find it.
    """
    steps = np.arange(max(body_back_mm, 0.0), body_back_mm + 30.0, 0.5)
    a, b = np.meshgrid(np.arange(-6.0, 6.1, 3.0), np.array([-3.0, 0.0, 3.0]))
    pts = (frame.origin_lps[None, None, :] + steps[:, None, None] * frame.ap
           + a.ravel()[None, :, None] * frame.si + b.ravel()[None, :, None] * frame.lr)
    val = ndi.map_coordinates(img, grid.lps_to_index(pts).reshape(-1, 3).T, order=1,
                              cval=np.nan).reshape(len(steps), -1)
    dark = val < DARK_SHARE * marrow
    k = int(round(1.5 / 0.5))
    run = np.ones_like(dark)
    for i in range(k):
        run[: len(steps) - i] &= dark[i:]
        run[len(steps) - i:] = False
    run &= (steps >= canal_offset_mm)[:, None]
    hit = run.any(axis=0)
    if hit.sum() < 0.5 * hit.size:
        return float("nan")
    return float(np.median(steps[np.argmax(run[:, hit], axis=0)]))


def model_mr_neural(img: np.ndarray, grid: WorkGrid, curve, arches: Dict[str, ArchGeometry],
                    sac: np.ndarray, taken: np.ndarray) -> MrNeural:
    """The canal tube and the modelled exiting roots on the MR working grid.

    Parameters
    ----------
    img : numpy.ndarray
        Bias-corrected, smoothed T2 on ``grid``.
    curve : SpineCurve
    arches : dict
        ``name → ArchGeometry`` from :func:`mr_arches`.
    sac : numpy.ndarray
        bool, the segmented dural sac.
    taken : numpy.ndarray
        bool, bodies and discs.
    """
    shape = img.shape
    empty = MrNeural(np.zeros(shape, bool), "", {}, {}, {}, {})
    if not arches:
        return empty
    tube = canal_tube(grid, curve, arches, shape)[0]
    canal = (tube | sac) & ~taken
    n_back = sum("canal back" in g.measured for g in arches.values())
    canal_notes = (f"on MR: in front the bodies' posterior wall, behind the first dark tissue "
                   f"behind the CSF (ligamentum flavum, laminae; measured at {n_back} of "
                   f"{len(arches)} levels, else a canal depth of {CANAL_AP_MM} mm), across the "
                   f"sac's width plus the lateral recess, at least half the interpedicular "
                   "distance of the level (ANATOMY.md); between the stations interpolated")
    roots, models, notes, found = {}, {}, {}, {}
    for name, g in arches.items():
        for side in SIDE_SIGN:
            sac_half = g.canal_half_mm[side] - RECESS_MM
            if name == "S1":
                # mr_arches puts the band's top on the endplate (its w_upper is the disc)
                rm = s1_root_model(g, side, sac_half,
                                   endplate_w_mm=g.pedicle_band_mm[side][1])
                # the recess stretch (points 1-2) moves across the recess, inside the canal
                across = ((g.frame.lr, FIT_LR_MM), (g.frame.ap, FIT_AP_S1_MM))
                fitted, ratio = fit_root(img, grid, rm, g, stretch=(1, 3), across=across,
                                         carry=(1, 3), inside=canal,
                                         ring_percentile=RECESS_RING_PERCENTILE)
            else:
                rm = root_model(g, side, sac_half)
                fitted, ratio = fit_root(img, grid, rm, g)
            if fitted is not None:
                rm = fitted
            m = paint_tube(grid, shape, rm.points_lps, rm.radii_mm) & ~sac & ~taken
            if not m.any():
                continue
            roots[rm.name] = m
            models[rm.name] = rm
            source = root_source(rm.name).format(d=rm.diameter_mm)
            if name == "S1":
                where, around = "the lateral recess", "the bright CSF and epidural fat"
            else:
                where, around = "the foramen", "the bright foraminal fat"
            if fitted is not None:
                found[rm.name] = True
                notes[rm.name] = (
                    f"segmented in {where}: a dark tube in {around} ({ratio:.2f} of their "
                    "signal) found near the modelled course and followed there; the rest "
                    "modelled (" + source + ")")
            else:
                notes[rm.name] = (source.replace(
                    "segmented pedicle and canal", "bodies, disc planes and dural sac segmented "
                    "on MR (pedicle at the top of the body, width of its level)").replace(
                    "segmented S1, L5-S1 disc and dural sac", "S1 body, L5-S1 disc and dural "
                    "sac segmented on MR")
                    + f"; the image shows no dark root in {around} near that course "
                    "(slices too thick or too far apart, or nothing bright around it)")
    return MrNeural(canal, canal_notes, roots, models, notes, found)


#: Search for the root's foraminal stretch (mm): shifts along the spine and front/back.
FIT_SI_MM = np.arange(-6.0, 6.1, 1.0)
FIT_AP_MM = np.arange(-4.0, 4.1, 1.0)
#: Search for the S1 root's recess stretch (mm): across the recess and front/back.
FIT_LR_MM = np.arange(-4.0, 4.1, 1.0)
FIT_AP_S1_MM = np.arange(-3.0, 3.1, 1.0)
#: In the lateral recess the ring around the S1 root is half bright (CSF medially, fat
#: behind) and half dark (bone laterally, disc in front): its upper quartile is the bright side.
RECESS_RING_PERCENTILE = 75.0
#: Share of a shifted stretch's centre line that must stay inside ``inside`` (the canal).
FIT_INSIDE_SHARE = 0.9


def fit_root(img: np.ndarray, grid: WorkGrid, rm: RootModel, g: ArchGeometry,
             stretch: Tuple[int, int] = (1, 4), across=None,
             carry: Tuple[int, Optional[int]] = (1, None),
             inside: Optional[np.ndarray] = None, ring_percentile: float = 50.0):
    """Move the modelled root's foraminal stretch onto the dark root the image shows.

    The stretch from under the pedicle to the foramen's exit (points 1–3 of the
    model) is shifted along the spine (±6 mm) and front/back (±4 mm); at each
    shift the signal on its centre line is compared with a ring 2.5 mm outside
    it (the foraminal fat).  The darkest ratio wins if it is below
    1 − :data:`ROOT_CONTRAST`; the shift then carries the stretch and the rest
    of the root beyond it, the dura end stays.

    Parameters
    ----------
    stretch : (int, int)
        Model points ``[a, b)`` whose polyline is looked for.
    across : sequence of (unit vector LPS, offsets mm), optional
        The two directions and offsets searched; by default ``g.frame.si`` ×
        :data:`FIT_SI_MM` and ``g.frame.ap`` × :data:`FIT_AP_MM`.
    carry : (int, int or None)
        Model points ``[a, b)`` the winning shift moves (by default the stretch
        and everything beyond it).
    inside : numpy.ndarray, optional
        bool on ``grid``: shifts whose centre line leaves it (more than
        1 − :data:`FIT_INSIDE_SHARE` of it) are not considered, so that the S1
        root's recess stretch cannot settle in the dark cortex of the bone
        beside the canal.
    ring_percentile : float
        Which percentile of the ring's signal the centre is compared with: the
        median in the foramen, where fat surrounds the root; higher in the
        lateral recess, where only the CSF and fat of one half of the ring are
        bright and bone and disc make the other half dark.

    Returns
    -------
    (RootModel or None, float)
        The fitted root and its centre/ring ratio, or None (and the best ratio
        seen) when the image does not show it.
    """
    pts, radii = rm.points_lps, rm.radii_mm
    a, b = stretch
    line = _dense(pts[a:b], 0.5)
    ring_r = float(radii[a:b].max()) + 2.5
    t = np.gradient(line, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    e1 = np.cross(t, g.frame.ap)
    bad = np.linalg.norm(e1, axis=1) < 1e-6
    e1[bad] = np.cross(t[bad], g.frame.si)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(t, e1)
    ang = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
    ring = ring_r * (np.cos(ang)[None, :, None] * e1[:, None, :]
                     + np.sin(ang)[None, :, None] * e2[:, None, :])
    if across is None:
        across = ((g.frame.si, FIT_SI_MM), (g.frame.ap, FIT_AP_MM))
    (e_a, off_a), (e_b, off_b) = across
    shifts = np.array([x * np.asarray(e_a) + y * np.asarray(e_b) for x in off_a for y in off_b])
    centre = line[None, :, :] + shifts[:, None, :]
    around = centre[:, :, None, :] + ring[None, :, :, :]
    sample = lambda p: ndi.map_coordinates(  # noqa: E731
        img, grid.lps_to_index(p.reshape(-1, 3)).T, order=1, cval=np.nan).reshape(p.shape[:-1])
    c = np.nanmean(sample(centre), axis=1)
    r = np.nanpercentile(sample(around).reshape(len(shifts), -1), ring_percentile, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(r > 0, c / r, np.nan)
    if inside is not None:
        idx = grid.lps_to_index(centre.reshape(-1, 3)).T
        share = ndi.map_coordinates(inside.astype(np.float32), idx, order=0,
                                    cval=0.0).reshape(centre.shape[:2]).mean(axis=1)
        ratio = np.where(share >= FIT_INSIDE_SHARE, ratio, np.nan)
    if not np.isfinite(ratio).any():
        return None, float("nan")
    k = int(np.nanargmin(ratio))
    best = float(ratio[k])
    if not (best < 1.0 - ROOT_CONTRAST):
        return None, best
    moved = pts.copy()
    moved[carry[0]:carry[1]] += shifts[k]
    return RootModel(rm.name, moved, radii, rm.diameter_mm), best


def _dense(pts: np.ndarray, step_mm: float) -> np.ndarray:
    """Points every ≈ ``step_mm`` along a polyline (LPS mm)."""
    out = [pts[:1]]
    for a, b in zip(pts[:-1], pts[1:]):
        m = max(int(np.ceil(np.linalg.norm(b - a) / step_mm)), 1)
        out.append(a + np.linspace(0.0, 1.0, m + 1)[1:, None] * (b - a))
    return np.concatenate(out)
