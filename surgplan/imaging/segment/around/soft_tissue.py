"""Skin, subcutaneous fat and the bowel no-go region on the scout grid (whole field).

*Skin* is a geometric shell: the outer :data:`SKIN_MM` of the body outline, measured
in the axial plane so that the top and bottom faces of the field of view (cuts
through the patient, not skin) are never labelled skin.  The depth below the
surface is a distance map on the scout grid, interpolated onto the image grid, so
the shell is not stair-stepped at the scout's 2 mm.

*Subcutaneous fat* is the fat (< −30 HU) connected to the skin from inside, in the
axial plane, no deeper than :data:`SUBCUT_MAX_MM`: the abdominal wall muscles and
the thoracolumbar fascia stop it.

*Bowel*: gas pockets inside the abdomen (not the lungs, which reach behind the
spine) with the bowel contents and wall around them (soft tissue and fluid, not
fat), closed into loops; and the loops without gas: what is not fat, in pieces
thicker than a mesenteric vessel, inside the peritoneal cavity (inside the
abdominal wall, in front of the retroperitoneum: the psoas, vessels, kidneys and
spine).  Where neither is seen the region is modelled as that cavity.  The liver and
spleen are left out (:func:`solid_organs`): they are as dense as the bowel wall but solid,
thick and hang from under the diaphragm, where no loop of bowel reaches.  No structure
of their own holds them yet, so the findings say where they reach the lumbar levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from surgplan.imaging.segment.body import IN_SLICE
from surgplan.imaging.segment.grid import WorkGrid

#: Thickness of the skin shell (mm): epidermis and dermis are 1.5–3 mm on the trunk.
SKIN_MM = 2.0
#: Fat deeper than this under the skin is not taken as subcutaneous (mm).
SUBCUT_MAX_MM = 60.0
#: Fat below this (HU, smoothed): fat is −120 … −50, blurred with its neighbours.
FAT_HU = -30.0
#: Gas in the bowel (HU, smoothed scout).
GAS_HU = -400.0
#: The abdominal wall (skin, fat, muscle) is at least this thick in front and at the
#: flanks (mm); the peritoneal cavity lies deeper.
WALL_MM = 20.0
#: Tissue that is not fat, reached from the wall depth through tissue that is not fat within
#: this distance (mm), is abdominal wall (the lateral muscles are ≈ 10–15 mm thick).
WALL_PEEL_MM = 15.0
#: The liver and spleen: unenhanced ≈ 45–65 HU (the real lumbar CT's liver ≈ 45 on the smoothed
#: scout), portal phase ≈ 80–130; bowel contents read ≈ 0–40 HU, and the bowel wall (≈ 45) and
#: the diaphragm are a few mm thick.  Tissue this dense (HU, smoothed) may be a solid organ ...
SOLID_ORGAN_HU = (38.0, 250.0)
#: ... where it holds a ball of this radius (mm): thicker than the bowel wall, the diaphragm
#: and the bridges partial volume makes between organs, thinner than the liver's tip ...
SOLID_OPEN_MM = 8.0
#: ... in a piece this large (ml).
SOLID_ORGAN_ML = 150.0
#: The organ goes on where tissue reads within this much below its median (HU, smoothed).
SOLID_SPREAD_HU = 20.0


def surface_depth_mm(body: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Signed in-slice depth below the body surface (mm, > 0 inside), float32.

    The surface is taken half a voxel beyond the outermost body voxel centres.
    """
    # Outside the body only the sign matters: linear interpolation between the outermost
    # voxel (+s/2) and its outer neighbour (−s/2) puts the surface half-way between them.
    half = 0.5 * spacing_mm
    depth = np.full(body.shape, -half, np.float32)
    for k in range(body.shape[0]):
        if body[k].any():
            d = ndi.distance_transform_edt(body[k], sampling=spacing_mm)
            depth[k][body[k]] = d[body[k]] - half
    return depth


def subcutaneous_fat(hu_s: np.ndarray, body: np.ndarray, depth: np.ndarray,
                     spacing_mm: float) -> np.ndarray:
    """Fat between the skin and the muscle wall (abdominal wall, back muscles), ≤ 60 mm deep.

    The wall is the non-fat tissue under the skin, closed over gaps of ≈ 12 mm in each
    axial slice; what it encloses is not subcutaneous.
    """
    fat = (hu_s < FAT_HU) & body & (depth > SKIN_MM) & (depth < SUBCUT_MAX_MM)
    wall = (hu_s >= FAT_HU) & body & (depth > SKIN_MM + 1.0)
    r = max(1, int(round(6.0 / spacing_mm)))
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    disk = x * x + y * y <= r * r
    inner = np.zeros_like(fat)
    for k in range(fat.shape[0]):
        if wall[k].any():
            closed = ndi.binary_closing(np.pad(wall[k], r), structure=disk)[r:-r, r:-r]
            inner[k] = ndi.binary_fill_holes(closed)
    fat &= ~inner
    # only the fat reached from under the skin
    seed = fat & (depth < SKIN_MM + 4.0)
    lab, n = ndi.label(fat, structure=IN_SLICE)
    if n == 0:
        return fat
    hit = np.unique(lab[seed])
    return np.isin(lab, hit[hit > 0])


def solid_organs(hu_s: np.ndarray, region: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The liver and spleen: large, thick organs denser than bowel contents.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on an isotropic grid of ``spacing_mm``.
    region : numpy.ndarray of bool
        Where such an organ may lie (inside the abdominal wall, not bone or a labelled
        retroperitoneal structure).
    spacing_mm : float
        Voxel edge (mm).

    Returns
    -------
    numpy.ndarray of bool
        Cores of tissue of :data:`SOLID_ORGAN_HU` that hold a ball of :data:`SOLID_OPEN_MM`,
        in pieces of at least :data:`SOLID_ORGAN_ML`; each extended into the tissue joined
        to it that reads within :data:`SOLID_SPREAD_HU` below the cores' median and holds a
        ball half the size, and grown back as far as the opening shaved it.  The bowel wall
        and the diaphragm are too thin to hold the ball, bowel contents too light; muscle
        is as dense but lies in the wall, which ``region`` leaves out.  Checked against a
        reference liver and spleen on 20 slices of a real portal-phase CT (Dice 0.93).
    """
    s = float(spacing_mm)
    # on an image smoothed by a voxel more: a ball holds hundreds of voxels, and on a noisy
    # scan (40 HU at 1 mm) one of them reading below the band would break the organ up
    light = ndi.gaussian_filter(hu_s, 1.0)
    dense = region & (light >= SOLID_ORGAN_HU[0]) & (hu_s <= SOLID_ORGAN_HU[1])
    if not dense.any():
        return dense
    r = max(1, int(round(SOLID_OPEN_MM / s)))
    idx = np.nonzero(dense)
    box = tuple(slice(max(int(v.min()) - r, 0), int(v.max()) + r + 1) for v in idx)
    core = np.zeros_like(dense)
    core[box] = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(
        sitk.GetImageFromArray(dense[box].astype(np.uint8)), [r] * 3)) > 0
    lab, n = ndi.label(core)
    if n == 0:
        return core
    ml = np.bincount(lab.ravel(), minlength=n + 1) * s**3 / 1000.0
    big = np.nonzero(ml >= SOLID_ORGAN_ML)[0]
    keep = np.isin(lab, big[big > 0])
    if not keep.any():
        return keep
    # an organ's density varies across it (the liver's back, beside the ribs and the spine,
    # read ≈ 15 HU below its front on the real lumbar CT; fat, beam hardening): extend it into
    # tissue within :data:`SOLID_SPREAD_HU` below its own median on a smoother image, where
    # that tissue still holds a ball half the size (bowel beside it is lighter, or thinner)
    own = float(np.median(light[keep]))
    smooth = ndi.gaussian_filter(hu_s[box], SOLID_OPEN_MM / (2.0 * s))
    near = region[box] & (smooth >= own - SOLID_SPREAD_HU) & (hu_s[box] <= SOLID_ORGAN_HU[1])
    r2 = max(1, r // 2)
    near = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(
        sitk.GetImageFromArray(near.astype(np.uint8)), [r2] * 3)) > 0
    lab, n = ndi.label(near | keep[box])
    hit = np.unique(lab[keep[box]])
    out = np.zeros_like(keep)
    out[box] = np.isin(lab, hit[hit > 0])
    # the smoothing and the opening shaved the organ's surface: grow it back through its own
    # density band, as far as they shaved (on an image smoothed by a voxel: noise would leave
    # holes in the band that stop the growth)
    band = np.zeros_like(keep)
    band[box] = region[box] & (light[box] >= own - SOLID_SPREAD_HU) \
        & (hu_s[box] <= SOLID_ORGAN_HU[1])
    return ndi.binary_dilation(out, mask=band | out, iterations=r2 + 1)


@dataclass(frozen=True)
class BowelRegion:
    """The bowel no-go region on the scout grid and how it was obtained."""

    mask: np.ndarray
    provenance: str
    notes: str
    gas_ml: float
    #: The liver and spleen at the lumbar levels, left out of ``mask`` (scout grid).
    solid: Optional[np.ndarray] = None


def bowel_region(hu_s: np.ndarray, body: np.ndarray, depth: np.ndarray, scout: WorkGrid,
                 curve_lps: np.ndarray, canal_lps: np.ndarray, retro: Optional[np.ndarray],
                 z_range_mm: tuple, subcut: Optional[np.ndarray] = None) -> BowelRegion:
    """Bowel and its contents, or a modelled peritoneal region where no gas shows.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on the scout grid.
    body, depth : numpy.ndarray
        Body outline and in-slice depth below the surface (mm) on the scout grid.
    scout : WorkGrid
        The scout grid.
    curve_lps, canal_lps : numpy.ndarray
        ``(n, 3)`` spine curve (body centres) and canal centres (LPS mm).
    retro : numpy.ndarray of bool or None
        Retroperitoneal structures already found on the scout grid (bone, psoas,
        kidneys, vessels): the region lies in front of them and never in them.
    z_range_mm : (float, float)
        LPS z range (mm) of the lumbar spine; the loops without gas and the modelled
        region are looked for there.
    subcut : numpy.ndarray of bool, optional
        Subcutaneous fat on the scout grid: the abdominal wall's muscles lie under it.
    """
    s = scout.spacing_mm
    nz = hu_s.shape[0]
    z = scout.origin_lps[2] + s * np.arange(nz)
    order = np.argsort(curve_lps[:, 2])
    cy = np.interp(z, curve_lps[order, 2], curve_lps[order, 1])
    canal_y = np.interp(z, canal_lps[order, 2], canal_lps[order, 1])
    y = scout.origin_lps[1] + s * np.arange(hu_s.shape[1])
    # behind the spine there is no bowel: gas there is lung (or outside air in a fold)
    behind = y[None, :, None] > canal_y[:, None, None]
    deep = depth > WALL_MM
    gas = (hu_s < GAS_HU) & body & deep
    lab, n = ndi.label(gas)
    if n:
        touch = np.unique(lab[gas & behind])
        gas &= ~np.isin(lab, touch[touch > 0])
        sizes = np.bincount(lab[gas].ravel(), minlength=n + 1)
        # a single voxel of −400 HU at 2 mm is noise or a fat/air partial volume
        gas &= sizes[lab] * s**3 >= 2.0 * s**3
    gas_ml = float(np.count_nonzero(gas)) * s**3 / 1000.0
    front = y[None, :, None] < cy[:, None, None] + 10.0
    # the peritoneal cavity at the lumbar levels: inside the abdominal wall and in front of
    # the retroperitoneum (the psoas, vessels, kidneys and spine, with their fat)
    zlo, zhi = z_range_mm
    # the liver and spleen hang from under the diaphragm into the lumbar levels: solid organs,
    # not bowel.  Looked for on the whole field in front of the canal (cut at the lumbar range
    # an organ would be a fragment), and kept where a piece reaches above the lumbar levels or
    # the field's top: a cluster of loops, however dense, does not
    organ_region = body & deep & ~behind
    if retro is not None:
        organ_region &= ~retro
    solid = solid_organs(hu_s, organ_region, s)
    if solid.any():
        lab, n = ndi.label(solid)
        top = min(int(np.searchsorted(z, zhi)), nz - 1)
        high = np.unique(lab[top:])
        solid = np.isin(lab, high[high > 0])
    levels = (z >= zlo) & (z <= zhi)
    ahead = y[None, :, None] < cy[:, None, None] - 5.0
    cavity = body & deep & ahead & levels[:, None, None]
    if retro is not None:
        ret = retro & levels[:, None, None]
        first = np.where(ret.any(axis=1), ret.argmax(axis=1), hu_s.shape[1])
        jj = np.arange(hu_s.shape[1])[None, :, None]
        cavity &= jj < first[:, None, :] - max(1, int(round(5.0 / s)))
        cavity &= ~retro
    loops = np.zeros(body.shape, bool)
    notes = []
    if gas_ml >= 5.0:
        r = max(1, int(round(8.0 / s)))
        near = ndi.binary_dilation(gas, iterations=r)
        contents = near & (hu_s > -60.0) & (hu_s < 150.0) & body & deep
        m = gas | contents
        m = ndi.binary_closing(m, iterations=max(1, int(round(4.0 / s))))
        m &= body & deep & front & ~solid
        if retro is not None:
            m &= ~retro
        # the loops are the pieces that hold gas: drop islands of soft tissue alone
        lab, n = ndi.label(m)
        hit = np.unique(lab[gas & m])
        loops |= np.isin(lab, hit[hit > 0])
        notes.append(f"gas pockets ({gas_ml:.0f} ml) and the bowel contents and wall around them")
    # loops filled with fluid or soft tissue and no gas: what is not fat in the cavity, in
    # pieces thicker than the mesenteric vessels (≥ ≈ 8 mm)
    # the abdominal wall's muscles are not fat either: peel them off from outside, through
    # tissue that is not fat, up to :data:`WALL_PEEL_MM` beyond the wall depth (a loop lying on
    # the wall loses that much of its outer side, not more)
    ks = np.nonzero(levels)[0]
    fluid = np.zeros(body.shape, bool)
    if len(ks):
        zs = slice(int(ks.min()), int(ks.max()) + 1)
        nonfat = (hu_s[zs] > FAT_HU) & (hu_s[zs] < 150.0) & body[zs]
        wall = nonfat & (depth[zs] <= WALL_MM)
        if subcut is not None:  # the muscles under the subcutaneous fat, however deep it is
            wall |= nonfat & ndi.binary_dilation(subcut[zs], structure=IN_SLICE)
        wall = ndi.binary_dilation(wall, structure=IN_SLICE, mask=nonfat,
                                   iterations=max(1, int(round(WALL_PEEL_MM / s))))
        # the solid organs' rim, lighter than their bulk by partial volume, is thinner than
        # the opening
        fluid[zs] = cavity[zs] & nonfat & ~wall & ~loops[zs] & ~solid[zs]
        fluid[zs] = ndi.binary_opening(fluid[zs], structure=IN_SLICE,
                                       iterations=max(1, int(round(4.0 / s))))
    fluid_ml = float(np.count_nonzero(fluid)) * s**3 / 1000.0
    if fluid_ml >= 5.0:
        loops |= fluid
        notes.append(f"loops without gas ({fluid_ml:.0f} ml of fluid or soft tissue in the "
                     "peritoneal cavity, in front of the retroperitoneal fat and psoas)")
    solid &= levels[:, None, None]
    solid_ml = float(np.count_nonzero(solid)) * s**3 / 1000.0
    if solid_ml >= 5.0:
        notes.append(f"the liver and spleen ({solid_ml:.0f} ml at these levels: solid organs "
                     f"of {SOLID_ORGAN_HU[0]:.0f} HU or more at their core, thicker than "
                     f"{2 * SOLID_OPEN_MM:.0f} mm, hanging from above the lumbar levels) left out")
    if loops.any():
        return BowelRegion(loops, "segmented", "; ".join(notes), gas_ml, solid)
    return BowelRegion(cavity & ~solid, "modelled",
                       "no bowel gas or loop was seen: modelled as the peritoneal cavity in "
                       "front of the psoas and the vertebral bodies, deeper than "
                       f"{WALL_MM:.0f} mm under the skin (ANATOMY.md: bowel anterolateral to "
                       "psoas)" + ("; " + notes[-1] if solid_ml >= 5.0 else ""),
                       gas_ml, solid)
