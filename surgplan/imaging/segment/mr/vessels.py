"""The great vessels on a T2 MR: flow voids followed where the image shows them, else the
CT pipeline's model placed from the MR vertebral bodies.

On T2-weighted spin-echo images fast-flowing blood gives no signal: the aorta and the
common iliac arteries are round dark *flow voids* left-anterior of the vertebral bodies,
in bright retroperitoneal fat; the IVC, whose flow is slower, is dark or intermediate,
right-anterior.  That is the unenhanced CT picture with the contrast reversed (blood
darker than its surroundings instead of denser than fat), so the same search is used:
the image is mapped onto a blood/fat scale (flow void → blood, fat → fat, by the
marrow signal, which every lumbar MR holds) and
:func:`surgplan.imaging.segment.around.vessels_plain.plain_vessels` follows each vessel near
where :func:`surgplan.imaging.segment.around.vessels.modelled_vessels` places it.  A vessel
followed over at least half its modelled length is ``segmented`` (continued by the model
where it was not seen); the others are the ``modelled`` no-go tubes.

A sagittal lumbar MR often covers only the spine's width (40–80 mm across): the model is
placed on a grid padded beyond the field, and a vessel is labelled only over the part
that lies inside the field of view; one mostly outside it is not labelled at all and the
findings say so (nothing is invented where the image is not).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.spine_frame import slice_frames
from surgplan.imaging.segment.around.vessels import SOURCE, VesselResult, modelled_vessels
from surgplan.imaging.segment.around.vessels_plain import (BLOOD_MID_HU, FAT_MID_HU, MIN_COVER,
                                                    complete_from_model, plain_vessels)

#: The flow-void level is this percentile of the signal inside the modelled vessel tubes
#: (the void fills much of them when the model is near the vessel).
VOID_PERCENTILE = 5.0
#: A void must be darker than this share of the marrow signal to be looked for: slow flow
#: or flow-related enhancement leaves the lumen grey, and then nothing is followed.
MAX_VOID_OF_MARROW = 0.7
#: Room (mm) the model needs around the spine curve: the common iliacs reach ≈ 61 mm to
#: either side, the aorta and IVC ≈ 45 mm in front of the body centre.
REACH_LR_MM, REACH_A_MM, REACH_P_MM = 70.0, 70.0, 20.0
#: A vessel whose modelled tube lies less than this share inside the field is not labelled:
#: a sliver at the field's edge would give the planner a clearance to the sliver, not to
#: the vessel.
MIN_IN_FIELD = 0.4
#: Below this share inside the field the note says the field cuts it.
CUT_IN_FIELD = 0.9
ORDER = ("aorta", "inferior vena cava", "common iliac artery left", "common iliac artery right",
         "common iliac vein left", "common iliac vein right")


def blood_scale(img: np.ndarray, void: float, marrow: float) -> np.ndarray:
    """The T2 signal on the blood/fat scale of :mod:`vessels_plain` (float32, "HU").

    The flow-void level ``void`` reads as blood (≈ 45) and twice the step from it to the
    marrow signal as fat (≈ −95), linearly between and beyond.  Scanners and
    normalisations differ (a void near the noise floor and fat at twice the marrow on a
    raw FSE; a void at half the marrow and its surroundings at the marrow on an
    intensity-normalised one): both levels are read from the image, so a dark round
    lumen in brighter surroundings scores as on CT.
    """
    fat = void + 2.0 * (marrow - void)
    gain = (FAT_MID_HU - BLOOD_MID_HU) / (fat - void)
    return (BLOOD_MID_HU + (img.astype(np.float32) - np.float32(void)) * np.float32(gain)
            ).astype(np.float32)


def field_mask(image: sitk.Image, grid: WorkGrid) -> np.ndarray:
    """Voxels of ``grid`` inside the image's field of view (an oblique field leaves corners)."""
    ones = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(image)
    return grid.sample(ones, labels=True, default=0.0) > 0


def filled_outline(outline: np.ndarray) -> np.ndarray:
    """The patient outline with its holes filled slice by slice, cut sides held closed.

    A flow void is as dark as the air outside: the outline's 3D hole filling misses one
    that runs out of the field at the top or bottom, and in a narrow sagittal field one
    that reaches the cut left or right face.  Each axial slice is filled with its left
    and right edges counted as tissue; air in front of or behind the patient still
    reaches the anterior or posterior edge and stays outside.
    """
    out = np.empty_like(outline)
    for k, sl in enumerate(outline):
        padded = np.pad(sl, ((0, 0), (1, 1)), constant_values=True)
        out[k] = ndi.binary_fill_holes(padded)[:, 1:-1]
    return out


def _padded(grid: WorkGrid, curve) -> tuple:
    """A grid holding ``grid`` and the room the model needs, and ``grid``'s box in it."""
    pts = np.concatenate([curve.points_lps, curve.canal_lps])
    need_lo = pts.min(0) - np.array([REACH_LR_MM, REACH_A_MM, 0.0])
    need_hi = pts.max(0) + np.array([REACH_LR_MM, REACH_P_MM, 0.0])
    s = grid.spacing_mm
    have_lo = grid.origin_lps
    have_hi = grid.origin_lps + (np.array(grid.shape[::-1]) - 1) * s
    pad_lo = np.maximum(np.ceil((have_lo - need_lo) / s), 0).astype(int)  # x, y, z
    pad_hi = np.maximum(np.ceil((need_hi - have_hi) / s), 0).astype(int)
    pad_lo[2] = pad_hi[2] = 0  # the slices stay: above and below the field is not modelled
    shape = tuple(int(n + a + b) for n, a, b in
                  zip(grid.shape, pad_lo[::-1], pad_hi[::-1]))
    ext = WorkGrid(grid.origin_lps - pad_lo * s, s, shape)
    box = tuple(slice(int(a), int(a + n)) for a, n in zip(pad_lo[::-1], grid.shape))
    return ext, box


def mr_vessels(img: np.ndarray, grid: WorkGrid, field: np.ndarray, curve, segs: list,
               names: tuple, bodies: np.ndarray, taken: np.ndarray, outline: np.ndarray,
               marrow: float) -> VesselResult:
    """Aorta, IVC and common iliac vessels of a T2 MR on its working grid.

    Parameters
    ----------
    img : numpy.ndarray
        Smoothed, shading-corrected T2 signal on ``grid`` (``[z, y, x]``).
    grid : WorkGrid
        The LPS-aligned working grid.
    field : numpy.ndarray of bool
        Voxels of ``grid`` inside the image's field of view (:func:`field_mask`).
    curve : SpineCurve
        Through the vertebral bodies, caudal → cranial.
    segs : list of Segment
        Vertebra spans along the curve, caudal → cranial.
    names : tuple of str
        Name of each segment (``""`` when unnamed).
    bodies : numpy.ndarray of int
        Segment index (1-based) of each body voxel, 0 elsewhere.
    taken : numpy.ndarray of bool
        Bodies, discs and the dural sac (never part of a vessel).
    outline : numpy.ndarray of bool
        The patient outline.
    marrow : float
        Median marrow signal of the bodies (sets the flow-void and fat levels).

    Returns
    -------
    VesselResult
        ``masks[name] = (mask on grid, provenance, note)`` for each vessel with a part
        inside the field, and findings (model failures, vessels outside the field, what was
        followed in the image and what modelled).
    """
    out = VesselResult()
    outline = filled_outline(outline)
    ext, box = _padded(grid, curve)

    def widen(a, fill):
        e = np.full(ext.shape, fill, a.dtype)
        e[box] = a
        return e

    field_e = widen(field, False)
    taken_e = widen(taken | (bodies > 0), False)
    vert_e = widen(bodies, 0)
    # the whole tube is placed (in the field and beyond it), then measured against the field
    frames = slice_frames(ext, curve, segs, taken_e)
    model, why = modelled_vessels(ext, segs, names, frames, taken_e, np.ones(ext.shape, bool),
                                  vert_e)
    if why:
        out.findings.append(why)
    inside, outside, cut = {}, [], []
    for n in ORDER:
        m = model.get(n)
        if m is None or not m.any():
            continue
        share = float(np.count_nonzero(m & field_e)) / float(np.count_nonzero(m))
        if share < MIN_IN_FIELD:
            outside.append(n)
            continue
        inside[n] = (m & field_e)[box] & outline
        if share < CUT_IN_FIELD:
            cut.append((n, share))
    if outside:
        out.findings.append(
            "outside the field of view (the image covers too little of the patient to the side "
            "of or in front of the spine), so not labelled and not assessed: "
            + ", ".join(outside) + "; plan these clearances on a CT or an axial MR")
    if not inside:
        return out
    tubes = np.zeros(grid.shape, bool)
    for m in inside.values():
        tubes |= m
    tubes &= outline & ~taken
    void = float(np.percentile(img[tubes], VOID_PERCENTILE)) if tubes.any() else np.inf
    seen, cover = {}, {}
    if np.isfinite(marrow) and void < MAX_VOID_OF_MARROW * marrow:
        seen, cover = plain_vessels(blood_scale(img, void, marrow), grid, taken,
                                    outline & field, inside)
    else:
        out.findings.append("no flow void (signal darker than the marrow) where the great "
                            "vessels should lie: slow flow or flow-related enhancement, so "
                            "they are modelled")
    followed, left = [], []
    cut_note = dict(cut)
    for n, m in inside.items():
        extra = ""
        if n in cut_note:
            extra = (f"; the field of view cuts it: {100 * cut_note[n]:.0f} % of the modelled "
                     "tube lies inside it, only that part is labelled")
        if n in seen and cover[n] >= MIN_COVER:
            mask, note = complete_from_model(seen[n], m, cover[n],
                                             "branch" if "common" in n else "trunk")
            note = note.replace("blood density outlined by fat",
                                "a dark flow void outlined by brighter tissue on T2")
            out.masks[n] = (mask & field, "segmented", note + extra)
            followed.append(n)
        else:
            out.masks[n] = (m, "modelled",
                            "modelled no-go zone placed from the MR vertebral bodies (no flow "
                            "void followed over half its length); " + SOURCE + extra)
            left.append(n)
    msg = "great vessels on MR"
    if followed:
        msg += ": followed as dark flow voids: " + ", ".join(followed)
    if left:
        msg += ("; " if followed else ": ") + "not seen as a flow void, so modelled no-go zones " \
            "from the vertebral bodies (ANATOMY.md): " + ", ".join(left)
    out.findings.append(msg)
    return out
