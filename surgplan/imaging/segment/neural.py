"""Spinal canal, dural sac and exiting nerve roots on CT.

*Canal.*  The bony canal of each vertebra was measured with its sub-regions
(:mod:`surgplan.imaging.segment.parts`): the body's posterior wall, the laminar
arch, the pedicles' medial walls.  Those stations, interpolated along the spine
curve, give an elliptic tube (across the discs too, where no bone bounds it);
the canal is that tube minus bone and disc.  It is followed 30 mm beyond the
last vertebra found, cranially, since the canal goes on to the top of the field.

*Dural sac.*  Inside the canal the sac holds CSF (≈ 0–15 HU) and the epidural
space around it fat (≈ −120 to −50 HU), so on CT the sac is the fluid-density
part of the canal wherever fat shows beside it.  Where a cross-section shows no
fat (a tight canal, noise, a blurred 3 mm scan) the sac cannot be told from the
canal there; it is then modelled from the canal: an ellipse 1.5 × wider than
deep in the front of the canal, of the healthy L4/5 area 152 mm² (PMC5728944;
ANATOMY.md), and the structure's provenance says so.

*Exiting roots.*  Modelled, never segmented on CT: for each vertebra and side,
a tube from the lateral edge of the sac at the level of the pedicle's lower
border, under the pedicle through the upper foramen, then anterolaterally and
caudally at 51° to the disc plane, with the diameter of its level (3.5 mm at L1
→ 5.6 mm at L5) and the dorsal root ganglion's swelling in the foramen (MRI
n = 67; Torun 2008; Silverstein 2015; ANATOMY.md / DOMAIN.md).

*S1 roots.*  The traversing roots at L5-S1, modelled as the lumbar ones but on their
own course: the sleeve leaves the sac's lateral edge just above the L5-S1 disc's
mid-plane (the S1 root takes off higher and steeper than any lumbar root:
Hasegawa 1996, MRI of 233 roots), runs down the lateral recess halfway between
the sac's edge and the S1 pedicle's medial wall, passes under the pedicle (20 mm
high from the band's top, the superior endplate: Saluja 2018, 108 sacra) into
the S1 foramen and leaves through the first anterior sacral foramen (27 mm from
the midline: Kim 2023, 3D-CT n = 632; Xu 1996), then runs anterolaterally and
caudally on the front of the sacrum; 5.8 mm thick, the thickest lumbosacral root
(MRI n = 350, Folia Morphol 2022; MR neurography n = 11, Clin Anat 2018).

*Neural foramina.*  A space, not a no-go structure: it holds the exiting root
and fat, and a transforaminal tool passes through it.  Between two vertebrae on
each side (``foramen L4-L5 left``, where ``nerve root L4 left`` exits) it is the
soft tissue bounded above by the upper vertebra's pedicle, below by the lower
one's, in front by the disc and the bodies' posterior wall, behind by the first
bone met going back (the facet joint: the lower vertebra's superior articular
process, and above it the upper one's inferior articular process), medially by
the line of the pedicles' medial walls (the canal) and laterally by the line of
their lateral walls.  Every bound is a segmented wall, so it is ``segmented``
unless a wall had to fall back on average sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.parts import SIDE_SIGN, ArchGeometry
from surgplan.imaging.segment.spine_curve import SpineCurve
from surgplan.imaging.structures import SIDES, VERTEBRA_ORDER, foramen_name, root_name

#: Smoothed HU of CSF / neural tissue (CSF 0–15, roots ≈ 30) against epidural
#: fat (−120 to −50): the midpoint, with room for partial volume.
CSF_MIN_HU = -35.0
#: A canal cross-section "shows fat" when this share of it reads ≤ FAT_MAX_HU.
FAT_MAX_HU = -50.0
FAT_SHARE = 0.12
#: Healthy dural sac area (mm²) at L4/5: 152 ± 54 (PMC5728944); cross-sections
#: segmented smaller or larger than these bounds are not trusted.
SAC_AREA_MM2 = 152.0
SAC_AREA_RANGE_MM2 = (50.0, 400.0)
#: Smallest separate piece of sac kept (mm³): ≈ 1 cm of a thin sac.
MIN_SAC_PIECE_MM3 = 500.0
#: The sac ellipse is 1.5 × wider than deep and sits ≈ 1 mm in front of the canal centre.
SAC_ASPECT = 1.5
SAC_FORWARD_MM = 1.0
#: Superellipse exponent of the canal's cross-section (rounded corners).
CANAL_P = 2.5
#: Root diameter (mm) by the vertebra it exits below: L1 3.5 → L5 5.6 (ANATOMY.md).
#: S1, the thickest lumbosacral root: 5.45 ± 0.8 mm against L1 3.9 mm (MRI n = 350, Folia
#: Morphol 2022), 5.38 against L5 5.29 mm (MR neurography n = 11, Clin Anat 2018); scaled
#: to the L5 figure above, 5.8 mm.
ROOT_DIAMETER_MM = {"T10": 3.0, "T11": 3.1, "T12": 3.3, "L1": 3.5, "L2": 4.0, "L3": 4.5,
                    "L4": 5.0, "L5": 5.6, "L6": 5.6, "S1": 5.8}
#: Exiting root angle to the disc plane (coronal), MRI n = 67.
ROOT_ANGLE_DEG = 51.0
#: Root exit from the dura ≈ 18 mm above the upper endplate of the lower vertebra.
ROOT_EXIT_ABOVE_ENDPLATE_MM = 18.0
#: How far (mm) the canal is followed beyond the last vertebra found, cranially.
CRANIAL_EXTENSION_MM = 30.0
#: Length (mm) of the modelled root beyond the foramen.
ROOT_DISTAL_MM = 40.0
ROOT_SOURCE = ("modelled from the segmented pedicle and canal: leaves the dural sac at the "
               "pedicle's lower border (≥ 18 mm above the lower endplate), runs under the "
               "pedicle through the upper foramen, then anterolaterally and caudally at 51° to "
               "the disc plane; diameter {d:.1f} mm (ANATOMY.md: MRI n=67, Torun 2008, "
               "Silverstein 2015)")
#: S1 pedicle height (mm): anterior 20.7, posterior 20.2 (Saluja 2018, 108 sacra); the S1
#: root passes under it.
S1_PEDICLE_HEIGHT_MM = 20.0
#: Centre of the first anterior sacral foramen from the midline (mm): the posterior foramen
#: 23.5 ± 2.8 mm out (3D-CT n = 632, Kim 2023), the anterior one ≈ 3 mm lateral of it
#: (Xu 1996).
S1_ANTERIOR_FORAMEN_MM = 27.0
#: Depth (mm) of the S1 body, back wall to front, where the anterior sacral foramina open
#: beside it: L5's 35.7 ± 3.5 mm (Cook & Baker 2021; ANATOMY.md), S1's endplate alike.
S1_BODY_DEPTH_MM = 35.7
#: L5/S1 disc height at its back (mm): 8.5 (MRI n=14; ANATOMY.md).
S1_DISC_POSTERIOR_MM = 8.5
#: How far (mm) the S1 root sleeve leaves the sac above the L5-S1 disc's mid-plane.
S1_TAKEOFF_ABOVE_DISC_MM = 2.0
#: Length (mm) of the modelled S1 root beyond the anterior sacral foramen.
S1_ROOT_DISTAL_MM = 30.0
S1_ROOT_SOURCE = ("modelled from the segmented S1, L5-S1 disc and dural sac: the traversing "
                  "root at L5-S1 leaves the sac's lateral edge just above the disc's mid-plane "
                  "(Hasegawa 1996: the S1 root takes off highest and steepest), runs down the "
                  "lateral recess halfway between the sac and the S1 pedicle's medial wall, "
                  "passes under the pedicle (20 mm high, Saluja 2018) and leaves through the "
                  "first anterior sacral foramen (27 mm from the midline, Kim 2023; Xu 1996), "
                  "then anterolaterally and caudally in front of the sacrum; diameter {d:.1f} mm "
                  "(the thickest lumbosacral root: MRI n=350, Folia Morphol 2022)")
#: Step (mm) of the local grid the foramen is traced on (rays run along its AP axis).
FORAMEN_STEP_MM = 0.5
#: How far (mm) in front of the bodies' posterior wall line the foramen may reach:
#: beside the body, where no bone or disc bounds it, the wall line does.
FORAMEN_FRONT_SLACK_MM = 1.0
FORAMEN_SOURCE = ("the space between the pedicles of {upper} and {lower}, in front bounded by "
                  "the disc and the bodies' posterior wall, behind by the facet joint, medially "
                  "and laterally by the lines of the pedicles' medial and lateral walls; it "
                  "holds nerve root {upper} {side} and fat (a space, not a structure to avoid)")


@dataclass(frozen=True)
class RootModel:
    """A modelled exiting root.

    Attributes
    ----------
    name : str
        ``nerve root L4 left`` (exits below the L4 pedicle).
    points_lps : numpy.ndarray
        ``(n, 3)`` centre line from the dura outward (LPS mm).
    radii_mm : numpy.ndarray
        ``(n,)`` radius at each point (mm).
    diameter_mm : float
        Nominal diameter of the root (mm).
    """

    name: str
    points_lps: np.ndarray
    radii_mm: np.ndarray
    diameter_mm: float


@dataclass(frozen=True)
class NeuralResult:
    """Canal, sac and roots on the working grid.

    Attributes
    ----------
    canal : numpy.ndarray
        bool, the whole bony canal (sac and roots included).
    sac : numpy.ndarray
        bool, the dural sac.
    sac_modelled_share : float
        Share (0–1) of the sac's length that had to be modelled.
    sac_notes : str
        Where and why it was modelled, for the user.
    roots : dict
        ``name → bool mask`` of each root.
    root_models : dict
        ``name → RootModel``.
    foramina : dict
        ``name → (bool mask, provenance, notes)`` of each neural foramen.
    """

    canal: np.ndarray
    sac: np.ndarray
    sac_modelled_share: float
    sac_notes: str
    roots: Dict[str, np.ndarray]
    root_models: Dict[str, RootModel]
    foramina: Dict[str, Tuple[np.ndarray, str, str]] = dataclasses.field(default_factory=dict)

    def root_paths(self) -> Dict[str, np.ndarray]:
        """``root name → (n, 3)`` modelled centre line (LPS mm, dura outward), for
        :attr:`surgplan.imaging.anatomy.Anatomy.root_paths`."""
        return {name: self.root_models[name].points_lps.copy() for name in self.roots}

    def labels(self) -> List[Tuple[str, np.ndarray, str, str]]:
        """``(name, mask, provenance, notes)`` to paint in this order (inner last wins).

        The sac is ``segmented`` when most of its length was seen on the image,
        else ``modelled``; its notes say where it was modelled.  The foramina come
        before the roots, so that a root wins the voxels it shares with its
        foramen.  Roots are always ``modelled`` and their notes give the model and
        its sources.
        """
        out = []
        if self.sac.any():
            prov = "segmented" if self.sac_modelled_share < 0.5 else "modelled"
            out.append(("dural sac", self.sac, prov, self.sac_notes))
        for name, (m, prov, note) in self.foramina.items():
            out.append((name, m, prov, note))
        for name, m in self.roots.items():
            d = self.root_models[name].diameter_mm
            out.append((name, m, "modelled", root_source(name).format(d=d)))
        return out


# --- canal ---------------------------------------------------------------------------------
def _stations(curve: SpineCurve, arches: Dict[str, ArchGeometry]):
    """Canal centre offsets and radii per curve point, interpolated between vertebrae.

    Returns ``centres (n, 3)`` LPS and ``radii (n, 2)`` (half-width, half-depth, mm).
    """
    n = len(curve.points_lps)
    s_idx, cen, rad = [], [], []
    tree = cKDTree(curve.points_lps)
    for g in arches.values():
        cw = g.canal_half_mm
        uc = 0.5 * (cw["left"] - cw["right"])
        vc = 0.5 * (g.body_back_mm + g.canal_back_mm)
        c = g.to_lps(np.array([uc, vc, 0.0]))
        _, k = tree.query(g.frame.origin_lps)
        s_idx.append(k)
        cen.append(c - curve.points_lps[k])  # offset from the curve, carried along it
        rad.append([0.5 * (cw["left"] + cw["right"]), 0.5 * g.canal_ap_mm])
    if not s_idx:
        return curve.canal_lps.copy(), np.tile([11.0, 8.0], (n, 1))
    o = np.argsort(s_idx)
    s_idx = np.array(s_idx)[o]
    cen, rad = np.array(cen)[o], np.array(rad)[o]
    ks = np.arange(n)
    off = np.stack([np.interp(ks, s_idx, cen[:, i]) for i in range(3)], axis=1)
    radii = np.stack([np.interp(ks, s_idx, rad[:, i]) for i in range(2)], axis=1)
    return curve.points_lps + off, radii


def _local(pts: np.ndarray, curve: SpineCurve, centres: np.ndarray, k: np.ndarray):
    d = pts - centres[k]
    return (np.einsum("ij,ij->i", d, curve.u[k]), np.einsum("ij,ij->i", d, curve.v[k]))


def canal_tube(grid: WorkGrid, curve: SpineCurve, arches: Dict[str, ArchGeometry],
               shape: tuple) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The canal tube on ``grid``.

    Returns
    -------
    tube : bool array on ``grid``.
    nearest : int array on ``grid``, index of the nearest curve point (−1 far away).
    centres, radii : per curve point canal centre (LPS) and half-axes (mm).
    """
    centres, radii = _stations(curve, arches)
    line = np.zeros(shape, bool)
    idx = np.round(grid.lps_to_index(centres)).astype(int)
    ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
    line[tuple(idx[ok].T)] = True
    tube = np.zeros(shape, bool)
    nearest = np.full(shape, -1, np.int32)
    if not ok.any():
        return tube, nearest, centres, radii
    reach = float(radii.max()) + 3.0
    near = ndi.distance_transform_edt(~line, sampling=grid.spacing_mm) <= reach
    zyx = np.argwhere(near)
    pts = grid.index_to_lps(zyx)
    _, k = cKDTree(centres).query(pts)
    # points beyond the ends of the curve are not canal
    t_along = np.einsum("ij,ij->i", pts - centres[k], curve.t[k])
    du, dv = _local(pts, curve, centres, k)
    r = radii[k]
    inside = (np.abs(du) / r[:, 0]) ** CANAL_P + (np.abs(dv) / r[:, 1]) ** CANAL_P <= 1.0
    inside &= np.abs(t_along) <= curve.step_mm
    tube[tuple(zyx[inside].T)] = True
    nearest[tuple(zyx.T)] = k
    return tube, nearest, centres, radii


# --- dural sac --------------------------------------------------------------------------------
def dural_sac(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, canal: np.ndarray,
              nearest: np.ndarray, centres: np.ndarray, radii: np.ndarray,
              sac_end_k: Optional[int] = None,
              rim: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float, str]:
    """Segment the sac where fat shows beside it; model it elsewhere.

    Parameters
    ----------
    sac_end_k : int, optional
        Curve index below which there is no sac (the sac ends at S2).
    rim : numpy.ndarray, optional
        bool, the canal voxels touching bone or disc: never counted as CSF.
        Where epidural fat lies against the cortex the two average to CSF
        density in one voxel, and a thin ring of such voxels joined the sac
        (phantom 1 mm: 5,300 of its 7,900 false-positive voxels).  A sac that
        truly touches the wall loses one working voxel there.

    Returns
    -------
    sac : bool array on ``grid``; share of the curve's canal stations modelled;
    notes for the user.
    """
    step = curve.step_mm
    csf = canal & (hu_s >= CSF_MIN_HU)
    if rim is not None:
        csf &= ~rim
    # per curve point (≈ 1 mm slabs): canal voxels, fat voxels, CSF voxels
    kc = nearest[canal]
    n = len(centres)
    canal_n = np.bincount(kc, minlength=n).astype(float)
    fat_n = np.bincount(kc, weights=(hu_s[canal] <= FAT_MAX_HU).astype(float), minlength=n)
    csf_n = np.bincount(nearest[csf], minlength=n).astype(float)
    # areas in mm² of a cross-section: voxel volume per mm of curve
    area = csf_n * grid.spacing_mm ** 3 / step
    has_canal = canal_n > 0
    lo_a, hi_a = SAC_AREA_RANGE_MM2
    seen = has_canal & (fat_n >= FAT_SHARE * canal_n) & (area >= lo_a) & (area <= hi_a)
    # smooth the decision along the curve: single odd slices follow their neighbours
    padded = np.pad(seen, 4, mode="edge")  # the ends of the canal are not a boundary
    seen = ndi.binary_opening(ndi.binary_closing(padded, iterations=3), iterations=3)[4:-4]
    seen &= has_canal
    modelled_k = has_canal & ~seen
    if sac_end_k is not None:
        # below S2 the sacral canal holds no sac: never model one there (CSF seen
        # there still counts, the level may be misnamed)
        modelled_k[:max(sac_end_k, 0)] = False
    sac = csf & seen[np.maximum(nearest, 0)] & (nearest >= 0)
    if modelled_k.any():
        zyx = np.argwhere(canal & modelled_k[np.maximum(nearest, 0)])
        pts = grid.index_to_lps(zyx)
        k = nearest[tuple(zyx.T)]
        du, dv = _local(pts, curve, centres, k)
        b = np.sqrt(SAC_AREA_MM2 / np.pi / SAC_ASPECT)
        a = SAC_ASPECT * b
        # never wider or deeper than the canal leaves room for
        a = np.minimum(a, radii[k, 0] - 0.5)
        bb = np.minimum(b, radii[k, 1] - 0.5)
        inside = (du / a) ** 2 + ((dv + SAC_FORWARD_MM) / bb) ** 2 <= 1.0
        sac[tuple(zyx[inside].T)] = True
    # drop specks (a root's cross-section, noise); segmented and modelled stretches
    # need not touch, so every sizeable piece stays
    lab, m = ndi.label(sac)
    if m > 1:
        sizes = np.bincount(lab.ravel()) * grid.spacing_mm ** 3
        keep = sizes >= MIN_SAC_PIECE_MM3
        keep[0] = False
        sac = keep[lab]
    share = float(modelled_k.sum() / max((seen | modelled_k).sum(), 1))
    if share == 0.0:
        notes = "segmented: CSF density inside the canal, with epidural fat beside it"
    else:
        notes = (f"modelled over {share:.0%} of its length where CSF could not be told from "
                 f"epidural fat on CT: an ellipse {SAC_ASPECT:g}× wider than deep in the front "
                 f"of the segmented canal, area {SAC_AREA_MM2:.0f} mm² (healthy L4/5, "
                 "PMC5728944; ANATOMY.md)")
        if share < 1.0:
            notes = "segmented where epidural fat shows beside it; " + notes
    return sac, share, notes


# --- roots ------------------------------------------------------------------------------------
def root_model(g: ArchGeometry, side: str, sac_half_mm: float) -> RootModel:
    """The exiting root below the pedicle of vertebra ``g`` on ``side``.

    Parameters
    ----------
    g : ArchGeometry
        The measured vertebra.
    side : {'left', 'right'}
    sac_half_mm : float
        Half-width of the dural sac at the pedicle (mm); the root leaves its edge.
    """
    s = SIDE_SIGN[side]
    d = ROOT_DIAMETER_MM.get(g.name, 4.5)
    r = d / 2
    cw = g.canal_half_mm[side]
    pb = g.pedicle_band_mm[side][0]
    pw = max(g.pedicle_outer_mm[side] - cw, 4.0)
    va = g.body_back_mm
    vc = 0.5 * (g.body_back_mm + g.canal_back_mm)
    w0 = pb + 1.0
    below = g.lower_endplate_below_mm
    if np.isfinite(below):
        w0 = max(w0, below + ROOT_EXIT_ABOVE_ENDPLATE_MM)
    ang = np.radians(ROOT_ANGLE_DEG)
    p0 = [s * max(sac_half_mm - r, 2.0), vc - 2.0, w0]
    # just under the pedicle in the upper foramen (≈ 1 mm of fat above the root)
    p1 = [s * (cw + 1.0), va + 4.0, pb - r - 1.0]
    p2 = [s * (cw + 0.6 * pw), va + 2.5, pb - r - 2.5]
    lat = 0.6 * pw + 6.0
    p3 = [p2[0] + s * lat, p2[1] - 4.0, p2[2] - lat * np.tan(ang)]
    dvec = np.array([s * np.cos(ang), -0.45, -np.sin(ang)])
    p4 = np.array(p3) + ROOT_DISTAL_MM * dvec / np.linalg.norm(dvec)
    pts = g.to_lps(np.array([p0, p1, p2, p3, p4], float))
    # the dorsal root ganglion swells the root in and just outside the foramen (3–6.5 mm)
    radii = np.array([r, r, 1.25 * r, 1.2 * r, r])
    return RootModel(root_name(g.name, side), pts, radii, d)


def root_source(name: str) -> str:
    """The model note of a root (``{d}`` to be filled with its diameter)."""
    return S1_ROOT_SOURCE if name.startswith("nerve root S1 ") else ROOT_SOURCE


def s1_root_model(g: ArchGeometry, side: str, sac_half_mm: float,
                  sac_half_low_mm: Optional[float] = None,
                  endplate_w_mm: Optional[float] = None) -> RootModel:
    """The S1 root on ``side``: the traversing root at L5-S1, out of the first sacral foramen.

    Parameters
    ----------
    g : ArchGeometry
        The measured S1 (its frame, the L5-S1 disc's mid-plane ``w_upper_mm``, the
        pedicle band whose top is the superior endplate, the canal's half-width).
    side : {'left', 'right'}
    sac_half_mm : float
        Half-width of the dural sac (mm) at the L5-S1 disc, where the root leaves it.
    sac_half_low_mm : float, optional
        Half-width of the sac (mm) at the pedicle's lower part, where the sac has
        narrowed; ``sac_half_mm`` when not given.
    endplate_w_mm : float, optional
        S1's superior endplate along ``g.frame.si`` (mm); by default ``g.w_upper_mm``
        (on CT S1's upper end is fitted on its own endplate), else the top of the
        pedicle band.

    Returns
    -------
    RootModel
        Centre line from the sac out (LPS mm): the take-off, the lateral recess at
        the pedicle's top and bottom, under the pedicle, the anterior sacral
        foramen, and 30 mm beyond it.
    """
    s = SIDE_SIGN[side]
    d = ROOT_DIAMETER_MM["S1"]
    r = d / 2
    low = sac_half_mm if sac_half_low_mm is None else sac_half_low_mm
    cw = g.canal_half_mm[side]
    top = endplate_w_mm
    if top is None or not np.isfinite(top):
        top = g.w_upper_mm if np.isfinite(g.w_upper_mm) else g.pedicle_band_mm[side][1]
    # the pedicle's top ≈ 1 mm under the endplate, as at the lumbar levels
    ped_bottom = top - 1.0 - S1_PEDICLE_HEIGHT_MM
    va = g.body_back_mm
    vc = 0.5 * (g.body_back_mm + g.canal_back_mm)
    # the disc's mid-plane at its back, beside the sac: half its posterior height up
    w_disc = top + 0.5 * S1_DISC_POSTERIOR_MM
    # in the lateral recess, halfway between the sac's edge and the pedicle's medial wall,
    # and never so far out that the root enters the wall
    recess = lambda half: min(0.5 * (half + cw), cw - 0.5 * r)  # noqa: E731
    p0 = [s * max(sac_half_mm - r, 2.0), vc - 2.0, w_disc + S1_TAKEOFF_ABOVE_DISC_MM]
    p1 = [s * recess(sac_half_mm), va + r + 1.0, top - 3.0]
    p2 = [s * recess(low), va + r + 0.5, ped_bottom + 1.0]
    # under the pedicle into the S1 foramen, then out of the anterior foramen onto the front
    # of the sacrum, 6 mm behind the plane of the body's front (its depth from its back wall)
    p3 = [s * (cw + 3.0), va - 2.0, ped_bottom - r - 1.5]
    p4 = [s * S1_ANTERIOR_FORAMEN_MM, va - S1_BODY_DEPTH_MM + 6.0, ped_bottom - 8.0]
    dvec = np.array([s * 0.5, -0.15, -0.85])
    p5 = np.array(p4) + S1_ROOT_DISTAL_MM * dvec / np.linalg.norm(dvec)
    pts = g.to_lps(np.array([p0, p1, p2, p3, p4, p5], float))
    # the S1 ganglion, the largest, sits in the foramen (Hasegawa 1996)
    radii = np.array([r, r, r, 1.25 * r, 1.15 * r, r])
    return RootModel(root_name("S1", side), pts, radii, d)


def paint_tube(grid: WorkGrid, shape: Tuple[int, int, int], pts: np.ndarray,
               radii: np.ndarray) -> np.ndarray:
    """Voxels of ``grid`` within the linearly varying radius (mm) of a polyline (LPS mm)."""
    dense, rr = [], []
    for a, b, ra, rb in zip(pts[:-1], pts[1:], radii[:-1], radii[1:]):
        m = max(int(np.ceil(np.linalg.norm(b - a) / (0.5 * grid.spacing_mm))), 1)
        t = np.linspace(0.0, 1.0, m, endpoint=False)[:, None]
        dense.append(a + t * (b - a))
        rr.append(ra + t[:, 0] * (rb - ra))
    dense.append(pts[-1:])
    rr.append(radii[-1:])
    dense, rr = np.concatenate(dense), np.concatenate(rr)
    out = np.zeros(shape, bool)
    i0 = grid.lps_to_index(dense.min(0) - rr.max() - 1.0)
    i1 = grid.lps_to_index(dense.max(0) + rr.max() + 1.0)
    lo = np.maximum(np.floor(np.minimum(i0, i1)).astype(int), 0)
    hi = np.minimum(np.ceil(np.maximum(i0, i1)).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return out
    zyx = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij"),
                   -1).reshape(-1, 3)
    dist, k = cKDTree(dense).query(grid.index_to_lps(zyx))
    inside = dist <= rr[k]
    out[tuple(zyx[inside].T)] = True
    return out


def _extend_cranially(curve: SpineCurve, length_mm: float) -> SpineCurve:
    """The curve continued straight beyond its cranial end.

    The spine curve ends with the last vertebra it found, but the canal (and the
    sac) go on to the top of the field; a straight continuation of the last frame
    covers the few centimetres the grid still holds.  Points outside the grid
    simply label nothing.
    """
    n = int(round(length_mm / curve.step_mm))
    if n <= 0 or len(curve.points_lps) < 2:
        return curve
    steps = (np.arange(1, n + 1) * curve.step_mm)[:, None]
    t = curve.t[-1]
    ext = lambda a: np.concatenate([a, np.repeat(a[-1:], n, axis=0)])  # noqa: E731
    return SpineCurve(np.concatenate([curve.points_lps, curve.points_lps[-1] + steps * t]),
                      ext(curve.t), ext(curve.u), ext(curve.v),
                      np.concatenate([curve.canal_lps, curve.canal_lps[-1] + steps * t]),
                      curve.step_mm, curve.s0_mm)


def model_neural(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve,
                 arches: Dict[str, ArchGeometry], taken: np.ndarray) -> NeuralResult:
    """Canal, dural sac and exiting roots on the working grid.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on ``grid``.
    grid : WorkGrid
    curve : SpineCurve
    arches : dict
        ``vertebra name → ArchGeometry`` from :func:`label_parts`.
    taken : numpy.ndarray
        Non-zero where bone (vertebrae) or disc was labelled.
    """
    shape = hu_s.shape
    curve = _extend_cranially(curve, CRANIAL_EXTENSION_MM)
    tube, nearest, centres, radii = canal_tube(grid, curve, arches, shape)
    canal = tube & (taken == 0)
    sac_end = None
    if "S1" in arches:
        g = arches["S1"]
        # the sac ends at S2: below the S1 body's middle only the sacral canal remains
        _, sac_end = cKDTree(centres).query(g.to_lps(np.array([0.0, 0.0, -10.0])))
    rim = canal & ndi.binary_dilation(taken > 0)
    sac, share, notes = dural_sac(hu_s, grid, curve, canal, nearest, centres, radii, sac_end,
                                  rim)
    roots, models = {}, {}
    tree = cKDTree(centres)
    for name, g in sorted(arches.items(), key=lambda kv: VERTEBRA_ORDER.index(kv[0])):
        for side in SIDES:
            if name == "S1":
                rm = _s1_root(g, side, sac, grid, curve, centres, tree)
            else:
                _, k = tree.query(g.frame.origin_lps)
                # the sac's half-width at this level, from what was segmented or modelled
                sac_half = _sac_half_width(sac, grid, curve, centres, k, side)
                rm = root_model(g, side, sac_half)
            m = paint_tube(grid, shape, rm.points_lps, rm.radii_mm) & ~sac & (taken == 0)
            if m.any():
                roots[rm.name] = m
                models[rm.name] = rm
    foramina = {}
    for upper, lower in adjacent_pairs(arches):
        gu, gl = arches[upper], arches[lower]
        measured = set(gu.measured) & set(gl.measured)
        for side in SIDES:
            m = foramen_mask(gu, gl, side, grid, shape, taken > 0) & ~canal & ~sac
            if not m.any():
                continue
            walls = {f"pedicle {side} wall", f"pedicle {side} height", f"pedicle {side} width"}
            prov = "segmented" if walls <= measured and "canal walls" in measured else "modelled"
            note = FORAMEN_SOURCE.format(upper=upper, lower=lower, side=side)
            if prov == "modelled":
                note += ("; modelled in part: a pedicle wall of one of them was not found, "
                         "so average lumbar sizes (ANATOMY.md) bound it there")
            foramina[foramen_name(upper, lower, side)] = (m, prov, note)
    return NeuralResult(canal, sac, share, notes, roots, models, foramina)


def _s1_root(g: ArchGeometry, side: str, sac: np.ndarray, grid: WorkGrid, curve: SpineCurve,
             centres: np.ndarray, tree: cKDTree) -> RootModel:
    """:func:`s1_root_model` with the sac's half-width read at the disc and low in the recess."""
    top = g.w_upper_mm if np.isfinite(g.w_upper_mm) else g.pedicle_band_mm[side][1]
    w_disc = top + 0.5 * S1_DISC_POSTERIOR_MM
    vc = 0.5 * (g.body_back_mm + g.canal_back_mm)
    halves = []
    for w in (w_disc, top - S1_PEDICLE_HEIGHT_MM):
        _, k = tree.query(g.to_lps(np.array([0.0, vc, w])))
        halves.append(_sac_half_width(sac, grid, curve, centres, k, side))
    return s1_root_model(g, side, halves[0], min(halves[1], halves[0]))


def adjacent_pairs(arches: Dict[str, object]) -> List[Tuple[str, str]]:
    """``(upper, lower)`` names of the consecutive vertebrae both in ``arches``, cranial first."""
    names = sorted((n for n in arches if n in VERTEBRA_ORDER), key=VERTEBRA_ORDER.index)
    out = []
    for a, b in zip(names[:-1], names[1:]):
        ia, ib = VERTEBRA_ORDER.index(a), VERTEBRA_ORDER.index(b)
        # L5 → S1 directly when there is no L6; L6 → S1 when there is
        if ib == ia + 1 or (a == "L5" and b == "S1"):
            out.append((a, b))
    return out


def _mean_frame(gu: ArchGeometry, gl: ArchGeometry):
    """Origin and (lr, ap, si) unit axes halfway between two vertebra frames."""
    fu, fl = gu.frame, gl.frame
    si = fu.si + fl.si
    si = si / np.linalg.norm(si)
    ap = fu.ap + fl.ap
    ap = ap - (ap @ si) * si
    ap = ap / np.linalg.norm(ap)
    return 0.5 * (fu.origin_lps + fl.origin_lps), np.cross(ap, si), ap, si


def foramen_mask(upper: ArchGeometry, lower: ArchGeometry, side: str, grid, shape: tuple,
                 blocked: np.ndarray) -> np.ndarray:
    """The neural foramen between two measured vertebrae on ``side``, on ``grid``.

    Parameters
    ----------
    upper, lower : ArchGeometry
        The vertebra above and below (their frames, pedicle bands and walls).
    side : {'left', 'right'}
    grid
        Any grid with ``index_to_lps`` / ``lps_to_index`` on (z, y, x) array
        indices (a :class:`WorkGrid`, or the input volume's grid).
    shape : tuple
        Array shape on ``grid``.
    blocked : numpy.ndarray
        bool on ``grid``: bone and disc (what the foramen cannot hold).

    Returns
    -------
    numpy.ndarray
        bool on ``grid``.

    Notes
    -----
    The bounds are taken pointwise in both vertebrae's frames and blended by the
    point's place between the two pedicles (0 under the upper one, 1 over the
    lower one), so that a lordotic or tilted segment gets a slanted foramen.
    Behind, the foramen ends at the first bone met going back from its front
    along the segment's AP axis, and never behind the laminar arch's front wall.
    """
    s = SIDE_SIGN[side]
    out = np.zeros(shape, bool)
    o, lr, ap, si = _mean_frame(upper, lower)
    axes = np.stack([lr, ap, si])
    ends = [g.frame.origin_lps for g in (upper, lower)]
    w_ends = [(e - o) @ si for e in ends]
    u_max = max(g.pedicle_outer_mm[side] for g in (upper, lower)) + 4.0
    v_lo = min(g.body_back_mm for g in (upper, lower)) - 8.0
    v_hi = max(g.canal_back_mm for g in (upper, lower)) + 2.0
    step = FORAMEN_STEP_MM
    us = np.arange(0.0, u_max, step) * s
    vs = np.arange(v_lo, v_hi, step)
    ws = np.arange(min(w_ends) - 2.0, max(w_ends) + 2.0, step)
    U, V, W = np.meshgrid(us, vs, ws, indexing="ij")
    pts = o + U[..., None] * lr + V[..., None] * ap + W[..., None] * si

    def local(g):
        d = pts - g.frame.origin_lps
        return d @ g.frame.lr, d @ g.frame.ap, d @ g.frame.si

    uu, vu, wu = local(upper)
    ul, vl, wl = local(lower)
    below_upper = upper.pedicle_band_mm[side][0] - wu
    above_lower = wl - lower.pedicle_band_mm[side][1]
    between = (below_upper > 0) & (above_lower > 0)
    f = np.clip(below_upper / np.maximum(below_upper + above_lower, 1e-6), 0.0, 1.0)
    blend = lambda a, b: (1.0 - f) * a + f * b  # noqa: E731
    u_b, v_b = s * blend(uu, ul), blend(vu, vl)
    medial = blend(upper.canal_half_mm[side], lower.canal_half_mm[side])
    lateral = blend(upper.pedicle_outer_mm[side], lower.pedicle_outer_mm[side])
    front = blend(upper.body_back_mm, lower.body_back_mm) - FORAMEN_FRONT_SLACK_MM
    back = blend(upper.canal_back_mm, lower.canal_back_mm)
    inside = between & (u_b >= medial) & (u_b <= lateral) & (v_b >= front)
    idx = grid.lps_to_index(pts.reshape(-1, 3)).T
    solid = ndi.map_coordinates(blocked.astype(np.uint8), idx, order=0, mode="constant",
                                cval=0).reshape(U.shape) > 0
    free = inside & ~solid
    # along each AP ray (axis 1): from the first free point, everything up to the first
    # bone behind it; a disc bulging behind the wall line does not end the ray
    started = np.cumsum(free, axis=1) > 0
    ended = np.cumsum(solid & started, axis=1) > 0
    local_mask = free & ~ended & (v_b <= back)
    if not local_mask.any():
        return out
    # back onto the grid: every voxel of the box, looked up in the local grid
    hit = pts[local_mask]
    lo = np.floor(grid.lps_to_index(hit).min(0)).astype(int) - 1
    hi = np.ceil(grid.lps_to_index(hit).max(0)).astype(int) + 2
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(shape))
    if np.any(hi <= lo):
        return out
    zz, yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    zyx = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1)
    loc = (grid.index_to_lps(zyx) - o) @ axes.T
    iu = np.rint(loc[:, 0] / (s * step)).astype(int)
    iv = np.rint((loc[:, 1] - v_lo) / step).astype(int)
    iw = np.rint((loc[:, 2] - ws[0]) / step).astype(int)
    ok = ((iu >= 0) & (iu < len(us)) & (iv >= 0) & (iv < len(vs))
          & (iw >= 0) & (iw < len(ws)))
    sel = np.zeros(len(zyx), bool)
    sel[ok] = local_mask[iu[ok], iv[ok], iw[ok]]
    out[tuple(zyx[sel].T)] = True
    return out


def _sac_half_width(sac: np.ndarray, grid: WorkGrid, curve: SpineCurve, centres: np.ndarray,
                    k: int, side: str) -> float:
    """Lateral extent (mm) of the sac on ``side`` near curve point ``k``."""
    fallback = SAC_ASPECT * np.sqrt(SAC_AREA_MM2 / np.pi / SAC_ASPECT)
    c = centres[k]
    lo = np.floor(grid.lps_to_index(c - 25.0)).astype(int).clip(0)
    hi = np.minimum(np.ceil(grid.lps_to_index(c + 25.0)).astype(int) + 1, sac.shape)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    sub = sac[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    zyx = np.argwhere(sub) + lo
    if len(zyx) == 0:
        return fallback
    d = grid.index_to_lps(zyx) - c
    near = np.abs(d @ curve.t[k]) <= 3.0
    if near.sum() < 5:
        return fallback
    du = d[near] @ curve.u[k] * SIDE_SIGN[side]
    return float(np.percentile(du, 98)) if (du > 0).any() else fallback


def polyline_distance_mm(points_lps: np.ndarray, line_lps: np.ndarray,
                         step_mm: float = 0.5) -> np.ndarray:
    """Distance (mm) from each of ``points_lps`` to the polyline ``line_lps``.

    Both are ``(n, 3)`` LPS mm; the polyline is sampled every ``step_mm``.
    """
    dense = [line_lps[:1]]
    for a, b in zip(line_lps[:-1], line_lps[1:]):
        m = max(int(np.ceil(np.linalg.norm(b - a) / step_mm)), 1)
        dense.append(a + np.linspace(0.0, 1.0, m + 1)[1:, None] * (b - a))
    d, _ = cKDTree(np.concatenate(dense)).query(np.asarray(points_lps, float))
    return d


def resample_polyline(line_lps: np.ndarray, step_mm: float = 1.0) -> np.ndarray:
    """Points every ``step_mm`` along a polyline (LPS mm), ends included."""
    seg = np.linalg.norm(np.diff(line_lps, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    q = np.arange(0.0, s[-1] + 1e-9, step_mm)
    return np.stack([np.interp(q, s, line_lps[:, i]) for i in range(3)], axis=1)


def centre_line_distance_mm(line_lps: np.ndarray, voxels_lps: np.ndarray,
                            slab_mm: float = 1.0, reach_mm: float = 12.0) -> np.ndarray:
    """Per point of a reference centre line, the distance (mm) to the centre of a tube there.

    The tube's centre at a station is the centroid of its voxels (``voxels_lps``,
    ``(m, 3)`` LPS mm) within ``slab_mm`` across the line and ``reach_mm`` of it;
    NaN where the tube has none.  Used to compare a segmented or modelled root
    with a known one.
    """
    line = np.asarray(line_lps, float)
    pts = np.asarray(voxels_lps, float)
    out = np.full(len(line), np.nan)
    if len(pts) == 0 or len(line) < 2:
        return out
    for i, p in enumerate(line):
        t = line[min(i + 1, len(line) - 1)] - line[max(i - 1, 0)]
        t = t / np.linalg.norm(t)
        d = pts - p
        along = d @ t
        sel = (np.abs(along) <= slab_mm) & (np.linalg.norm(d - along[:, None] * t, axis=1)
                                            <= reach_mm)
        if sel.any():
            out[i] = float(np.linalg.norm(pts[sel].mean(0) - p))
    return out
