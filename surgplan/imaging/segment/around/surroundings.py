"""The structures around the spine: skin, body, ilium, ribs, psoas, vessels, kidneys, bowel.

Runs after the vertebrae, discs and canal (and whatever else fills the
``structures`` map) on the grids the pipeline already has: the whole-field scout
grid (2 mm) for the body surface and the bowel, the working grid around the spine
(1.5 mm) for bone, muscle, vessels and kidneys.  Each structure records whether it
was ``segmented`` from the image or ``modelled`` from anatomy (vessels the image
does not show), with the source in its notes; what was not found is
said in the findings with the reason.

- *Ilium*: bone that is not a vertebra, lateral to the sacrum at and below the
  iliac crests (the vertebra step leaves the sacroiliac joints as the boundary).
- *Ribs*: bone that is not a vertebra, lateral and posterior at the level of the
  lowest thoracic vertebrae, named after the vertebra their head is nearest to.
- *Psoas*: muscle density (10–90 HU) beside the vertebral bodies, tracked slice by
  slice from the L3 level up and down; each slice may grow only a little beyond the
  previous one, which keeps it from leaking into neighbouring muscles (ANATOMY.md:
  ≈ 2 cm² at L1 to ≈ 12 cm² at L5, ≈ 48 HU).
- *Vessels*: :mod:`surgplan.imaging.segment.around.vessels`.
- *Kidneys*: where contrast enhances them (> 140 HU), a solid organ of 40–600 ml
  beside the spine at T11–L3; otherwise the unenhanced parenchyma (≈ 30 HU) inside
  the perirenal fat (:mod:`surgplan.imaging.segment.around.kidneys_plain`).  A kidney found
  neither way is left out and the findings say so.
- *Skin*, *subcutaneous fat*, *bowel*: :mod:`surgplan.imaging.segment.around.soft_tissue`.
- *Body*: every voxel of the body outline that no other label holds, so the union
  of all labels is the outline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from surgplan.core.progress import CancelToken, check
from surgplan.imaging.anatomy import Structure
from surgplan.imaging.segment.body import IN_SLICE
from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.around.kidneys_plain import PARENCHYMA_HU, plain_kidneys
from surgplan.imaging.segment.around.soft_tissue import (
    SKIN_MM, bowel_region, subcutaneous_fat, surface_depth_mm,
)
from surgplan.imaging.segment.spine_curve import SpineCurve
from surgplan.imaging.segment.spine_frame import SliceFrames, slice_frames
from surgplan.imaging.segment.around.vessels import segment_vessels
from surgplan.imaging.structures import kind_of

#: Bone outside the vertebrae (smoothed HU); cancellous iliac bone of the elderly is
#: lower, but the cortex of the wing stays above this at 3 mm.
BONE_HU = 150.0
#: Muscle (smoothed HU): psoas ≈ 48 (Lawlor 2022), blurred against fat and bone.
MUSCLE_HU = (10.0, 90.0)
#: Psoas cross-section (mm²) per lumbar level, L1 … L5 (ANATOMY.md, MRI n=10).
PSOAS_AREA_MM2 = {"T12": 100.0, "L1": 200.0, "L2": 450.0, "L3": 700.0, "L4": 950.0,
                  "L5": 1200.0, "L6": 1200.0, "S1": 1250.0}
#: Enhanced renal cortex (HU, smoothed); unenhanced kidney ≈ 30, cortex + 195–217.
KIDNEY_HU = 140.0
KIDNEY_ML = (40.0, 600.0)

#: Order in which the structures here are stacked: the first listed wins a voxel.
ORDER = ("skin", "ilium left", "ilium right", "aorta", "common iliac artery left",
         "common iliac artery right", "inferior vena cava", "common iliac vein left",
         "common iliac vein right", "kidney left", "kidney right", "psoas left", "psoas right",
         "bowel", "subcutaneous fat")


@dataclass(frozen=True)
class SpineContext:
    """What the spine steps found, on their grids (input of :func:`segment_surroundings`).

    Attributes
    ----------
    scout : WorkGrid
        Whole-field grid (≈ 2 mm).
    scout_hu, scout_body : numpy.ndarray
        Smoothed CT (HU) and body outline on ``scout``.
    work : WorkGrid
        Grid around the spine (≈ 1.5 mm).
    work_hu, work_body : numpy.ndarray
        Smoothed CT (HU) and body outline on ``work``.
    vertebrae : numpy.ndarray
        Segment index per voxel on ``work`` (1-based, caudal → cranial; 0 none).
    taken : numpy.ndarray of bool
        Every voxel on ``work`` already labelled (vertebrae, discs, canal …).
    curve : SpineCurve
    segments : list of Segment
        Caudal → cranial, as ``vertebrae`` numbers them.
    names : tuple of str
        Name of each segment (``""`` when unnamed).
    """

    scout: WorkGrid
    scout_hu: np.ndarray
    scout_body: np.ndarray
    work: WorkGrid
    work_hu: np.ndarray
    work_body: np.ndarray
    vertebrae: np.ndarray
    taken: np.ndarray
    curve: SpineCurve
    segments: list
    names: tuple


@dataclass
class Surroundings:
    """Result of :func:`segment_surroundings`, to be put onto the image grid by :meth:`assemble`.

    ``work`` and ``scout`` map names to ``(mask on that grid, provenance, notes)``;
    ``depth`` is the in-slice depth below the body surface on the scout grid (mm).
    """

    scout_grid: WorkGrid
    work_grid: WorkGrid
    depth: np.ndarray
    work: dict = field(default_factory=dict)
    scout: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)

    def assemble(self, image: sitk.Image, vertebrae: np.ndarray, structures: np.ndarray,
                 items: list, ijk_to_lps: np.ndarray) -> tuple:
        """Add the surroundings to the image-grid label maps.

        Parameters
        ----------
        image : SimpleITK.Image
            The input volume (its grid is the output grid).
        vertebrae, structures : numpy.ndarray
            uint16 label maps on the image grid; what they hold is never overwritten.
        items : list of Structure
            The structures already in ``structures`` (their labels are not reused).
        ijk_to_lps : numpy.ndarray
            The image's 4×4 affine.

        Returns
        -------
        (numpy.ndarray, list of Structure, list of str)
            The new structures map, the new items, and findings.
        """
        out = np.array(structures, dtype=np.uint16, copy=True)
        vert = np.asarray(vertebrae)
        used = [s.label for s in items if s.map == "structures"]
        value = max(used + [int(out.max())]) + 1
        new_items = []
        findings = list(self.findings)
        names = [n for n in ORDER if n in self.work or n in self.scout]
        ribs = sorted(n for n in self.work if n.startswith("rib "))
        names[names.index("ilium right") + 1 if "ilium right" in names else 1:0] = ribs
        # local codes 1… in uint8 maps on the coarse grids; lower priority painted first, so
        # that the first in ORDER ends on top
        work_map = np.zeros(self.work_grid.shape, np.uint8)
        scout_map = np.zeros(self.scout_grid.shape, np.uint8)
        for code in range(len(names), 0, -1):
            n = names[code - 1]
            if n in self.work:
                work_map[self.work[n][0]] = code
            if n in self.scout:
                scout_map[self.scout[n][0]] = code
        values = {n: value + i for i, n in enumerate(names)}
        lut = np.array([0] + [values[n] for n in names], np.uint16)
        skin_code = names.index("skin") + 1 if "skin" in names else 0
        body_value = value + len(names)
        work_img = self.work_grid.to_image(work_map)
        scout_img = self.scout_grid.to_image(scout_map)
        depth_img = self.scout_grid.to_image(self.depth.astype(np.float32))
        # slab by slab: a 512 × 512 × 300 image never holds more than a slab of temporaries
        nk = out.shape[0]
        step = max(1, int(8_000_000 // max(out.shape[1] * out.shape[2], 1)))
        for k0 in range(0, nk, step):
            k1 = min(nk, k0 + step)
            ref = _slab_reference(image, k0, k1)
            depth = sitk.GetArrayFromImage(sitk.Resample(
                depth_img, ref, sitk.Transform(), sitk.sitkLinear, -100.0, sitk.sitkFloat32))
            outline = depth > 0
            layer = sitk.GetArrayFromImage(sitk.Resample(
                scout_img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
            fine = sitk.GetArrayFromImage(sitk.Resample(
                work_img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
            # work-grid structures are finer; scout ones fill what the working grid does not cover
            np.copyto(layer, fine, where=fine > 0)
            if skin_code:
                layer[outline & (depth <= SKIN_MM)] = skin_code
            layer[~outline] = 0
            o = out[k0:k1]
            free = (o == 0) & (vert[k0:k1] == 0)
            take = free & (layer > 0)
            o[take] = lut[layer[take]]
            o[free & ~take & outline] = body_value
        value = body_value
        centroids = _centroids(out, [values[n] for n in names] + [value], ijk_to_lps)
        for n in names:
            src = self.work.get(n) or self.scout.get(n)
            if centroids[values[n]] is None:
                findings.append(f"{n}: found on the working grid but too small to show on the "
                                "image grid")
                continue
            new_items.append(Structure(n, values[n], "structures", kind_of(n), src[1], False,
                                       src[2], centroids[values[n]]))
        if centroids[value] is not None:
            new_items.append(Structure("body", value, "structures", "body", "segmented", False,
                                       "inside the body outline, not otherwise labelled",
                                       centroids[value]))
        return out, new_items, findings


def _slab_reference(image: sitk.Image, k0: int, k1: int) -> sitk.Image:
    """An empty image on slices ``k0:k1`` (array axis 0) of ``image``'s grid."""
    ref = sitk.Image([image.GetSize()[0], image.GetSize()[1], k1 - k0], sitk.sitkUInt8)
    ref.SetOrigin(image.TransformIndexToPhysicalPoint([0, 0, int(k0)]))
    ref.SetSpacing(image.GetSpacing())
    ref.SetDirection(image.GetDirection())
    return ref


def _centroids(labels: np.ndarray, values: list, ijk_to_lps: np.ndarray) -> dict:
    """LPS centroid (mm) of each label value, or None where absent; one pass, slice by slice
    (a whole-volume ``argwhere`` of the body would hold three int64 per voxel)."""
    top = int(max(values)) + 1
    n = np.zeros(top)
    sk, sj, si = np.zeros(top), np.zeros(top), np.zeros(top)
    jj, ii = np.indices(labels.shape[1:])
    jj, ii = jj.ravel().astype(float), ii.ravel().astype(float)
    for k in range(labels.shape[0]):
        lab = np.minimum(labels[k].ravel(), top - 1)
        c = np.bincount(lab, minlength=top)
        n += c
        sk += k * c
        sj += np.bincount(lab, weights=jj, minlength=top)
        si += np.bincount(lab, weights=ii, minlength=top)
    out = {}
    for v in values:
        if n[v] == 0:
            out[v] = None
            continue
        ijk = np.array([si[v], sj[v], sk[v]]) / n[v]
        out[v] = ijk_to_lps[:3, :3] @ ijk + ijk_to_lps[:3, 3]
    return out


# --- bone: ilium and ribs ----------------------------------------------------------------------
def _bone(ctx: SpineContext, exclude: np.ndarray) -> np.ndarray:
    """Non-vertebral bone on the working grid, cancellous interiors filled slice by slice."""
    b = (ctx.work_hu >= BONE_HU) & ctx.work_body & ~exclude
    b = ndi.binary_fill_holes(b, structure=IN_SLICE)
    return b & (ctx.vertebrae == 0) & ~ctx.taken & ~exclude


def _split_from_sacrum(comp: np.ndarray, hu: np.ndarray, a_u: np.ndarray) -> np.ndarray:
    """Label a bone piece 1 (sacrum, midline), 2 (left wing), 3 (right wing).

    A marker watershed on the inverted CT inside the piece, seeded at the midline
    (|u| < 20 mm) and far laterally (|u| > 70 mm): the sacroiliac joints are the dark
    seams between them.  Without midline bone the piece is split by side alone.
    """
    side = np.where(a_u > 0, 2, 3).astype(np.uint8)
    mid = comp & (np.abs(a_u) < 20.0)
    if not mid.any():
        return np.where(comp, side, 0).astype(np.uint8)
    seeds = np.zeros(comp.shape, np.uint8)
    seeds[mid] = 1
    seeds[comp & (a_u > 70.0)] = 2
    seeds[comp & (a_u < -70.0)] = 3
    if not np.any(seeds >= 2):
        return np.zeros(comp.shape, np.uint8)  # only sacrum: no wing in this piece
    elev = np.where(comp, -hu, 5000.0).astype(np.float32)
    ws = sitk.MorphologicalWatershedFromMarkers(sitk.GetImageFromArray(elev),
                                                sitk.GetImageFromArray(seeds),
                                                markWatershedLine=False, fullyConnected=False)
    return np.where(comp, sitk.GetArrayFromImage(ws), 0).astype(np.uint8)


def ilium_and_ribs(ctx: SpineContext, frames: SliceFrames, au: np.ndarray, av: np.ndarray,
                   exclude: np.ndarray) -> tuple:
    """``({name: mask}, findings)`` for the ilia and the ribs of the lowest thoracic vertebrae.

    ``exclude`` marks dense voxels that are not bone (opacified vessels, kidneys).
    """
    s = ctx.work.spacing_mm
    bone = _bone(ctx, exclude)
    lab, n = ndi.label(bone)
    out, findings = {}, []
    if n == 0:
        return out, ["no bone lateral to the spine: no ilium or rib in view"]
    vox_ml = s**3 / 1000.0
    size_ml = np.bincount(lab.ravel(), minlength=n + 1)[1:] * vox_ml
    boxes = ndi.find_objects(lab)
    names = ctx.names
    seg = frames.segment
    # the iliac crests reach the L4 body: iliac bone lies from there down
    crest_level = [i + 1 for i, nm in enumerate(names) if nm in ("L4", "L5", "L6", "S1")]
    top_ilium = max([k for k in range(len(seg)) if seg[k] in crest_level], default=-1)
    ilium = {"left": np.zeros(bone.shape, bool), "right": np.zeros(bone.shape, bool)}
    ribs: dict = {}
    for i in range(n):
        if size_ml[i] < 1.0 or boxes[i] is None:
            continue
        box = boxes[i]
        comp = lab[box] == i + 1
        bu, bv = au[box][comp], av[box][comp]
        kk = np.nonzero(comp)[0] + box[0].start
        k = int(round(float(kk.mean())))
        uc, vc, umax = float(bu.mean()), float(bv.mean()), float(np.abs(bu).max())
        side = "left" if uc > 0 else "right"
        if top_ilium >= 0 and k <= top_ilium + int(20.0 / s) and umax > 45.0:
            # one piece may hold both wings and the sacrum below S1 (joined across
            # sacroiliac joints blurred shut): split it at its darkest seams
            wings = _split_from_sacrum(comp, ctx.work_hu[box], au[box])
            ilium["left"][box] |= wings == 2
            ilium["right"][box] |= wings == 3
        elif umax > 50.0 and vc > -10.0 and size_ml[i] < 60.0 and (
                top_ilium < 0 or k > top_ilium + int(30.0 / s)):
            # a rib: lateral and posterior, above the pelvis.  The vertebra step keeps the
            # rib's head with its vertebra; the vertebra nearest the rib's medial end names it
            j = int(np.argmin(np.hypot(bu, bv)))
            zz, yy, xx = (np.nonzero(comp)[d][j] + box[d].start for d in range(3))
            r = int(round(20.0 / s))
            near = ctx.vertebrae[max(zz - r, 0):zz + r + 1, max(yy - r, 0):yy + r + 1,
                                 max(xx - r, 0):xx + r + 1]
            counts = np.bincount(near.ravel(), minlength=len(names) + 1)
            counts[0] = 0
            level = names[int(np.argmax(counts)) - 1] if counts.any() else ""
            if not level:
                continue
            nm = f"rib {level} {side}"
            if nm not in ribs:
                ribs[nm] = np.zeros(bone.shape, bool)
            ribs[nm][box] |= comp
    for side, m in ilium.items():
        if m.any():
            out[f"ilium {side}"] = m
        elif top_ilium >= 0:
            findings.append(f"ilium {side}: no bone lateral to the sacrum was found "
                            "(field of view cut above the crest, or the wing too faint)")
    if top_ilium < 0:
        findings.append("the ilia were not looked for: L4–S1 are not in view or not named")
    for nm, m in ribs.items():
        try:
            kind_of(nm)
        except ValueError:
            continue
        out[nm] = m
    return out, findings


# --- psoas ------------------------------------------------------------------------------------
def _disk_struct(r_vox: int) -> np.ndarray:
    y, x = np.ogrid[-r_vox:r_vox + 1, -r_vox:r_vox + 1]
    return x * x + y * y <= r_vox * r_vox


def psoas(ctx: SpineContext, frames: SliceFrames, au: np.ndarray, av: np.ndarray,
          exclude: np.ndarray) -> tuple:
    """``({"psoas left": mask, "psoas right": mask}, findings)`` on the working grid."""
    s = ctx.work.spacing_mm
    px = s * s
    names = ctx.names
    seg = frames.segment
    level = np.array([names[i - 1] if i else "" for i in seg])
    expected = np.array([PSOAS_AREA_MM2.get(nm, np.nan) for nm in level])
    lumbar = np.array([nm.startswith("L") for nm in level])
    if lumbar.sum() < 3:
        return {}, ["psoas: fewer than three lumbar levels were found to look beside"]
    muscle = (ctx.work_hu >= MUSCLE_HU[0]) & (ctx.work_hu <= MUSCLE_HU[1]) & ctx.work_body \
        & ~ctx.taken & ~exclude
    # the start: the lumbar slice nearest L3's centre (else the middle lumbar slice)
    mid = [k for k in range(len(level)) if level[k] == "L3"]
    k0 = int(np.median(mid)) if mid else int(np.median(np.nonzero(lumbar)[0]))
    out, findings = {}, []
    open2 = _disk_struct(1)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        mask = np.zeros(ctx.work.shape, bool)

        def section(k: int) -> np.ndarray:
            a_u, a_v = au[k], av[k]
            hw = frames.half_width_mm[k]
            exp = expected[k] if np.isfinite(expected[k]) else 1250.0
            r = np.sqrt(exp / np.pi)
            # beside the body: from the outer part of its front (the muscle wraps onto it, the
            # crura and great vessels lie nearer the midline) to ≈ 2.5 radii beyond its side,
            # no farther forward than one radius and 10 mm in front of it (below the spine
            # curve, over the pelvic brim, the muscle runs forward), and in front of the
            # transverse processes, which stand out at the level of the canal
            ahead = r + 10.0 if frames.on_curve[k] else 2.5 * r + 30.0
            back = frames.canal_v_mm[k] - 3.0 if frames.on_curve[k] else frames.canal_v_mm[k] + 5.0
            roi = muscle[k] & (sgn * a_u > max(5.0, 0.4 * hw)) \
                & (sgn * a_u < hw + 2.5 * r + 15.0) & (a_v < back) \
                & (a_v > frames.front_mm[k] - ahead)
            return ndi.binary_opening(roi, structure=open2)

        # seed slice: the component nearest the side of the body
        roi = section(k0)
        lab, n = ndi.label(roi)
        if n == 0:
            findings.append(f"psoas {side}: no muscle beside the L3 body")
            continue
        hw = frames.half_width_mm[k0]
        r0 = np.sqrt(PSOAS_AREA_MM2["L3"] / np.pi)
        want = (np.hypot(sgn * au[k0] - (hw + r0), av[k0] - 0.0) < r0 + 5.0)
        hits = np.bincount(lab[want & roi], minlength=n + 1)
        hits[0] = 0
        if hits.max() == 0:
            findings.append(f"psoas {side}: no muscle beside the L3 body")
            continue
        m0 = lab == int(np.argmax(hits))
        limit = np.hypot(sgn * au[k0] - (hw + r0), av[k0]) < 2.0 * r0 + 10.0
        m0 &= limit
        mask[k0] = m0
        below = int(np.argmax(frames.on_curve))  # slices below the curve: the pelvic part
        for step in (1, -1):
            prev = m0
            k = k0 + step
            while 0 <= k < ctx.work.shape[0] and (frames.on_curve[k] or k < below):
                roi = section(k)
                lab, n = ndi.label(roi)
                if n == 0:
                    break
                near = ndi.binary_dilation(prev, iterations=1)
                ids = np.unique(lab[near & roi])
                ids = ids[ids > 0]
                if len(ids) == 0:
                    break
                m = np.isin(lab, ids)
                a_prev = np.count_nonzero(prev) * px
                exp = expected[k] if np.isfinite(expected[k]) else 1250.0
                if np.count_nonzero(m) * px > min(1.3 * a_prev + 60.0, 2.0 * exp + 200.0):
                    # joined to a neighbour (another muscle, a bowel loop): follow the
                    # previous section only
                    m &= near
                area = np.count_nonzero(m) * px
                if area < 40.0 or area > 2.0 * exp + 200.0:
                    break
                mask[k] = m
                prev = m
                k += step
        if mask.any():
            out[f"psoas {side}"] = mask
    return out, findings


def _bbox(mask: np.ndarray, margin: int):
    """Slices of the bounding box of ``mask`` grown by ``margin`` voxels, or None if empty."""
    if not mask.any():
        return None
    out = []
    for ax in range(mask.ndim):
        nz = np.nonzero(mask.any(axis=tuple(i for i in range(mask.ndim) if i != ax)))[0]
        hi = min(int(nz[-1]) + margin + 1, mask.shape[ax])
        out.append(slice(max(int(nz[0]) - margin, 0), hi))
    return tuple(out)


# --- kidneys ----------------------------------------------------------------------------------
def kidneys(ctx: SpineContext, frames: SliceFrames, au: np.ndarray, av: np.ndarray,
            exclude: np.ndarray) -> tuple:
    """``({"kidney left": (mask, notes), …}, findings)``: enhanced kidneys, else unenhanced
    ones (:mod:`surgplan.imaging.segment.around.kidneys_plain`)."""
    s = ctx.work.spacing_mm
    names = ctx.names
    seg = frames.segment
    level = np.array([names[i - 1] if i else "" for i in seg])
    # kidneys lie between T11 and L3 (left ≈ T11–L2, right 1–2.5 cm lower)
    span = np.isin(level, ["T11", "T12", "L1", "L2", "L3"])
    if not span.any():
        return {}, ["kidneys: T12–L2 are not in view, so the kidneys were not looked for"]
    ks = np.nonzero(span)[0]
    lo, hi = max(ks.min() - int(30 / s), 0), min(ks.max() + int(30 / s), ctx.work.shape[0] - 1)
    zrange = np.zeros(ctx.work.shape[0], bool)
    zrange[lo:hi + 1] = True
    # the cortex is only ≈ 1.5 noise SDs above the threshold on a noisy scan: smooth more
    hu = np.full(ctx.work.shape, -1000.0, np.float32)
    hu[lo:hi + 1] = ndi.gaussian_filter(ctx.work_hu[lo:hi + 1], 1.0)
    cand = (hu >= KIDNEY_HU) & ctx.work_body & ~ctx.taken & ~exclude \
        & zrange[:, None, None] & (np.abs(au) > 25.0) & (np.abs(au) < 140.0) \
        & (av > frames.front_mm[:, None, None] - 60.0)
    # ribs (≤ 12 mm) and vessel walls are thinner than the opening's 13 mm ball;
    # a kidney is ≈ 3 cm thick
    r = max(1, int(round(6.5 / s)))
    box = _bbox(cand, r)
    if box is not None:
        img = sitk.GetImageFromArray(cand[box].astype(np.uint8))
        cand = np.zeros_like(cand)
        cand[box] = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(img, [r] * 3)) > 0
    lab, n = ndi.label(cand)
    out, findings = {}, []
    vox_ml = s**3 / 1000.0
    plain = []
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        best, best_ml = 0, 0.0
        for i in range(1, n + 1):
            m = lab == i
            ml = np.count_nonzero(m) * vox_ml
            if not (KIDNEY_ML[0] <= ml <= KIDNEY_ML[1]):
                continue
            if sgn * float(au[m].mean()) < 30.0:
                continue
            if ml > best_ml:
                best, best_ml = i, ml
        if not best:
            plain.append(side)
            continue
        m = lab == best
        # the renal sinus (fat, pelvis) opens medially: close it, then fill slice by slice
        rc = max(1, int(round(10.0 / s)))
        box = _bbox(m, rc + 1)
        img = sitk.GetImageFromArray(m[box].astype(np.uint8))
        closed = sitk.GetArrayFromImage(sitk.BinaryMorphologicalClosing(img, [rc] * 3)) > 0
        m[box] = ndi.binary_fill_holes(closed, structure=IN_SLICE)
        m &= ctx.work_body & ~ctx.taken & ~exclude
        # the threshold sits near the cortex value: grow to half-way to the fat around
        half = 0.5 * (float(np.median(hu[m])) - 100.0)
        for _ in range(2):
            m |= ndi.binary_dilation(m) & (hu >= half) & ctx.work_body & ~ctx.taken & ~exclude
        out[f"kidney {side}"] = (m, "contrast-enhanced renal parenchyma, sinus filled")
    if plain:
        # not enhanced (a CT without contrast, or a kidney that does not excrete): the
        # parenchyma inside the perirenal fat
        found = plain_kidneys(ctx.work_hu, s, ctx.work_body, ~ctx.taken & ~exclude, zrange, au,
                              av, frames.front_mm, frames.half_width_mm, frames.canal_v_mm,
                              tuple(plain))
        for side in plain:
            if side in found:
                out[f"kidney {side}"] = (found[side], "unenhanced renal parenchyma (≈ 30 HU) "
                                         "inside the perirenal fat, sinus filled")
            else:
                findings.append(
                    f"kidney {side} not segmented: neither a contrast-enhanced organ "
                    f"(≥ {KIDNEY_HU:.0f} HU) nor a body of unenhanced parenchyma "
                    f"({PARENCHYMA_HU[0]:.0f}–{PARENCHYMA_HU[1]:.0f} HU) inside the perirenal "
                    f"fat of {KIDNEY_ML[0]:.0f}–{KIDNEY_ML[1]:.0f} ml was found beside the spine at "
                    "T11–L3 (a kidney removed, atrophic, or out of its usual place?)")
    return out, findings


# --- the whole step ----------------------------------------------------------------------------
def segment_surroundings(ctx: SpineContext, cancel: Optional[CancelToken] = None) -> Surroundings:
    """Segment (or model) the structures around the spine.

    Parameters
    ----------
    ctx : SpineContext
        Grids, images and spine results of the pipeline's earlier steps.
    cancel : CancelToken, optional
        Checked between structures.

    Returns
    -------
    Surroundings
        Masks on the working and scout grids with provenance and notes; call
        :meth:`Surroundings.assemble` to put them on the image grid.
    """
    s_scout = ctx.scout.spacing_mm
    depth = surface_depth_mm(ctx.scout_body, s_scout)
    res = Surroundings(ctx.scout, ctx.work, depth)
    res.scout["skin"] = (np.zeros(ctx.scout.shape, bool), "segmented",
                         f"outer {SKIN_MM:.0f} mm of the body outline (≥ −300 HU)")
    sub = subcutaneous_fat(ctx.scout_hu, ctx.scout_body, depth, s_scout)
    if sub.any():
        res.scout["subcutaneous fat"] = (sub, "segmented", "fat under the skin, reached from it")
    check(cancel)
    column = ctx.taken | (ctx.vertebrae > 0)
    frames = slice_frames(ctx.work, ctx.curve, ctx.segments, column)
    au, av = frames.offsets(ctx.work)
    # vessels first: opacified vessels are as dense as bone and must not join the ilium
    ves = segment_vessels(ctx.work_hu, ctx.work, frames, ctx.taken, ctx.work_body,
                          ctx.names, au, av, ctx.segments, ctx.vertebrae)
    res.findings.extend(ves.findings)
    seg_vessels = np.zeros(ctx.work.shape, bool)
    for n, (m, prov, note) in ves.masks.items():
        res.work[n] = (m, prov, note)
        if prov == "segmented":
            seg_vessels |= m
    check(cancel)
    near_vessels = ndi.binary_dilation(seg_vessels, iterations=2)
    kid, f = kidneys(ctx, frames, au, av, near_vessels)
    res.findings.extend(f)
    occupied = near_vessels.copy()
    for n, (m, note) in kid.items():
        res.work[n] = (m, "segmented", note)
        occupied |= m
    check(cancel)
    bones, f = ilium_and_ribs(ctx, frames, au, av, occupied)
    res.findings.extend(f)
    for n, m in bones.items():
        note = ("bone lateral to the sacrum, separated from it at the sacroiliac joints"
                if n.startswith("ilium") else "bone lateral to a thoracic vertebra")
        res.work[n] = (m, "segmented", note)
        occupied |= m
    check(cancel)
    ps, f = psoas(ctx, frames, au, av, occupied | seg_vessels)
    res.findings.extend(f)
    for n, m in ps.items():
        res.work[n] = (m, "segmented", "muscle density beside the vertebral bodies")
    for side in ("left", "right"):
        if f"psoas {side}" not in ps and not any(x.startswith(f"psoas {side}") for x in f):
            res.findings.append(f"psoas {side} not found: no muscle section could be followed "
                                "beside the lumbar bodies")
    check(cancel)
    # bowel on the whole field, in front of what lies behind the peritoneum
    retro_w = np.zeros(ctx.work.shape, np.uint8)
    for n, (m, _, _) in res.work.items():
        retro_w[m] = 1
    retro_w[column] = 1
    scout_ref = ctx.scout.to_image(np.zeros(ctx.scout.shape, np.uint8))
    retro = ctx.work.labels_onto(retro_w, scout_ref) > 0
    named = [i for i, nm in enumerate(ctx.names) if nm.startswith("L") or nm == "S1"]
    if named:
        zs = [ctx.segments[i].centre_lps[2] for i in named]
        zr = (min(zs) - 20.0, max(zs) + 20.0)
    else:
        zr = (float(ctx.curve.points_lps[:, 2].min()), float(ctx.curve.points_lps[:, 2].max()))
    bw = bowel_region(ctx.scout_hu, ctx.scout_body, depth, ctx.scout, ctx.curve.points_lps,
                      ctx.curve.canal_lps, retro, zr, sub)
    if bw.mask.any():
        res.scout["bowel"] = (bw.mask, bw.provenance, bw.notes)
    else:
        res.findings.append("bowel: no region in front of the retroperitoneum was found")
    if bw.provenance == "modelled":
        res.findings.append("bowel: " + bw.notes)
    if bw.solid is not None and bw.solid.any():
        # a cannula must not enter the liver either; until it is a structure of its own,
        # the user is told where it lies at the lumbar levels, which no plan is checked against
        low = ctx.scout.origin_lps[2] + ctx.scout.spacing_mm * float(
            np.nonzero(bw.solid.any(axis=(1, 2)))[0].min())
        ml = float(np.count_nonzero(bw.solid)) * ctx.scout.spacing_mm ** 3 / 1000.0
        level = _level_at(ctx, low)
        res.findings.append(
            f"liver / spleen: {ml:.0f} ml reach the lumbar levels, down to {level}; they are "
            "not part of the bowel region and no plan is checked against them")
    return res


def _level_at(ctx: SpineContext, z_mm: float) -> str:
    """The named vertebra whose centre is nearest LPS height ``z_mm`` ("z = … mm" if none)."""
    named = [(abs(sg.centre_lps[2] - z_mm), nm) for sg, nm in zip(ctx.segments, ctx.names) if nm]
    if not named:
        return f"z = {z_mm:.0f} mm"
    return f"the level of {min(named)[1]}"
