"""Names from anchors: the sacrum (counted up from) and the ribs of T12.

The sacrum is the lowest segment when it is fused (no disc below it in view)
and wide: the ilia meet it at the sacroiliac joints, so there is bone far lateral
to it (> 45 mm from the midline) at its own level.  A vertebra bears ribs when
thin bone lies far lateral (> 70 mm, beyond any transverse process) and posterolateral at its level, away from
the pelvis.  Counting up from the sacrum names the lumbar spine as surgeons do;
the ribs check the count.  Every disagreement is said, never silently resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi


#: Lateral distance (mm) from the body centre beyond which bone is ilium or rib.
ILIUM_LATERAL_MM = 45.0
RIB_LATERAL_MM = 70.0
#: Bone volume (ml) lateral to a segment that counts as ilium / rib.
ILIUM_ML = 3.0
RIB_ML = 1.0


@dataclass(frozen=True)
class Naming:
    """Names of the segments (caudal → cranial) and what the anchors said."""

    names: tuple
    provisional: tuple
    findings: tuple
    sacrum_found: bool
    rib_levels: tuple


def lateral_bone_ml(bone: np.ndarray, pts: np.ndarray, seg, lateral_mm: float,
                    voxel_ml: float, below_mm: float = 0.0, posterior_only: bool = False) -> float:
    """Bone volume (ml) at the segment's level, farther than ``lateral_mm`` from its axis."""
    d = pts - seg.centre_lps
    a_t, a_u, a_v = d @ seg.t, d @ seg.u, d @ seg.v
    lo = -below_mm if seg.lower is None else None
    m = np.abs(a_u) > lateral_mm
    if seg.lower is not None:
        m &= seg.lower.signed_mm(pts) > 0
    else:
        m &= a_t > lo
    if seg.upper is not None:
        m &= seg.upper.signed_mm(pts) < 0
    else:
        m &= a_t < 15.0
    m &= np.abs(a_u) < 130.0
    if posterior_only:
        m &= a_v > -15.0
    return float(np.count_nonzero(bone & m)) * voxel_ml


#: Bone for the rib search (HU, smoothed).
RIB_HU = 180.0
#: A rib is a thin bone: the part of it beside the spine in view holds less than this (ml).
RIB_MAX_ML = 60.0
#: Contact with a vertebra: bone within this distance (mm) of its label.
RIB_CONTACT_MM = 4.5


def rib_bearing_segments(hu_s: np.ndarray, body: np.ndarray, vert: np.ndarray, pts: np.ndarray,
                         segs: list, spacing_mm: float) -> tuple:
    """Segments (0-based, caudal → cranial) that carry a rib, from the ribs' heads.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on the working grid ``(z, y, x)``.
    body : numpy.ndarray of bool
        The body outline on the same grid.
    vert : numpy.ndarray
        Vertebra labels on the same grid (1-based segment index, 0 elsewhere).
    pts : numpy.ndarray
        LPS mm of the grid's voxels, ``(n, 3)`` in ravel order.
    segs : list of Segment
        Caudal → cranial.
    spacing_mm : float
        Voxel edge of the grid (mm).

    Notes
    -----
    The twelfth rib slopes down and out: far from the midline it lies at the
    level of L1 or L2, so "bone far lateral at a vertebra's level" names the
    wrong vertebra, and an enhancing kidney or the liver's contrast-filled
    vessels pass that test too.  A rib is instead a bone outside the vertebra
    labels that (1) touches a vertebra behind the front of its body (the head at
    the costovertebral joint, the tubercle at the transverse process), (2)
    reaches more than :data:`RIB_LATERAL_MM` from that vertebra's axis, and (3)
    is thin (< :data:`RIB_MAX_ML` in view; an ilium is far larger).  It belongs to
    the vertebra it touches most.
    """
    if not segs or not vert.any():
        return ()
    # Ribs are cortical bone; at ≥ 180 HU the contrast-enhanced liver, kidneys
    # and muscle stay out, which at 120 HU join everything into one component.
    free = (hu_s >= RIB_HU) & body & (vert == 0)
    comp, n = ndi.label(free, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return ()
    r = max(1, int(round(RIB_CONTACT_MM / spacing_mm)))
    near = ndi.grey_dilation(vert, size=(2 * r + 1,) * 3)
    contact = (comp > 0) & (near > 0)
    flat_comp = comp.ravel()
    sizes = np.bincount(flat_comp, minlength=n + 1) * spacing_mm**3 / 1000.0
    ribs = set()
    for c in np.unique(comp[contact]):
        if c == 0 or sizes[c] > RIB_MAX_ML or sizes[c] < 0.2:
            continue
        touch = near[contact & (comp == c)]
        k = int(np.bincount(touch).argmax()) - 1
        if k < 0:
            continue
        sg = segs[k]
        sel = np.nonzero(flat_comp == c)[0]
        d = pts[sel] - sg.centre_lps
        if np.max(np.abs(d @ sg.u)) < RIB_LATERAL_MM:
            continue
        # the head and tubercle are beside or behind the body's middle, not in front
        cz, cy, cx = np.nonzero(contact & (comp == c))
        head = np.ravel_multi_index((cz, cy, cx), comp.shape)
        if np.median((pts[head] - sg.centre_lps) @ sg.v) < -10.0:
            continue
        ribs.add(k)
    return tuple(sorted(ribs))


def name_segments(bone_flat: np.ndarray, pts: np.ndarray, segs: list, voxel_ml: float,
                  curve_reaches_bottom_of_view: bool,
                  rib_levels: Optional[Sequence[int]] = None) -> Naming:
    """Name segments (caudal → cranial) from the sacrum and rib anchors.

    Parameters
    ----------
    bone_flat : numpy.ndarray of bool
        Dense bone (flattened working grid).
    pts : numpy.ndarray
        LPS mm of the same voxels, ``(n, 3)``.
    segs : list of Segment
        Caudal → cranial.
    voxel_ml : float
        Volume of one voxel (ml).
    curve_reaches_bottom_of_view : bool
        True when the spine runs out of the field caudally (sacrum may be cut away).
    rib_levels : sequence of int, optional
        Segments that carry ribs (:func:`rib_bearing_segments`); without it, bone
        far lateral at a segment's level is taken for a rib.
    """
    findings = []
    n = len(segs)
    if n == 0:
        return Naming((), (), ("no vertebrae were separated, so nothing could be named",), False, ())
    bottom = segs[0]
    ilium = lateral_bone_ml(bone_flat, pts, bottom, ILIUM_LATERAL_MM, voxel_ml, below_mm=50.0)
    # The iliac crests reach the L4 body: ilia beside the lowest segment only mean
    # a sacrum when that segment ends inside the field (fused, not cut off).
    sacrum = bottom.lower is None and ilium >= ILIUM_ML and not curve_reaches_bottom_of_view
    ribs = []
    start = 3 if sacrum else max(1, n // 2)
    for k in range(start, n):
        if rib_levels is not None:
            if k in rib_levels:
                ribs.append(k)
            continue
        ml = lateral_bone_ml(bone_flat, pts, segs[k], RIB_LATERAL_MM, voxel_ml, posterior_only=True)
        if ml >= RIB_ML:
            ribs.append(k)
    t12 = None
    if ribs:
        # the last rib-bearing vertebra: the lowest of a run of ribbed levels
        t12 = min(ribs)
    if sacrum:
        provisional = False
        if t12 is not None:
            lumbar = t12 - 1
            if lumbar == 5:
                findings.append("named by counting up from the sacrum; the last rib-bearing "
                                "vertebra (T12) agrees")
            elif lumbar == 6:
                provisional = True
                findings.append("six lumbar-type vertebrae lie between the last ribbed vertebra and "
                                "the sacrum: an L6 (or a lumbarised S1); named from the sacrum with "
                                "L6, names provisional — check on a full-spine view")
            else:
                provisional = True
                findings.append(f"{lumbar} lumbar-type vertebrae lie between the last ribbed vertebra "
                                "and the sacrum (five expected): sacralisation of L5, a lumbar rib or "
                                "hypoplastic T12 ribs; named from the sacrum, names provisional")
        else:
            provisional = True
            findings.append("the sacrum was found but no rib-bearing vertebra (T12) to confirm the "
                            "count (ribs out of view or hypoplastic); names counted up from the "
                            "sacrum are provisional")
        names, prov = [], []
        lumbar_names = ["S1", "L5", "L4", "L3", "L2", "L1"]
        six = t12 is not None and t12 - 1 == 6
        if six:
            lumbar_names = ["S1", "L6", "L5", "L4", "L3", "L2", "L1"]
        thor = ["T12", "T11", "T10"]
        seq = lumbar_names + thor
        for k in range(n):
            names.append(seq[k] if k < len(seq) else "")
            prov.append(provisional)
    elif t12 is not None:
        findings.append(("the sacrum is out of view" if curve_reaches_bottom_of_view else
                         "the sacrum was not recognised (no ilia beside the lowest segment)")
                        + "; named by counting down from the last rib-bearing vertebra (T12): "
                          "provisional")
        seq = {t12 - j: name for j, name in enumerate(["T12", "L1", "L2", "L3", "L4", "L5"])}
        seq.update({t12 + 1: "T11", t12 + 2: "T10"})
        names = [seq.get(k, "") for k in range(n)]
        prov = [True] * n
    else:
        findings.append(("the sacrum is out of view" if curve_reaches_bottom_of_view else
                         "the sacrum was not recognised") + " and no rib-bearing vertebra was found: "
                        "names assume the lowest vertebra in view is L5 and are provisional — "
                        "rename them")
        seq = ["L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10"]
        names = [seq[k] if k < len(seq) else "" for k in range(n)]
        prov = [True] * n
    return Naming(tuple(names), tuple(prov), tuple(findings), sacrum, tuple(ribs))
