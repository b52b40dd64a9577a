"""The spinal canal, found slice by slice as a low-density region enclosed by bone.

On an axial slice the canal is fluid/fat density (CSF ≈ 0–15 HU, epidural fat
below) with bone in front (the vertebral body), on both sides (pedicles) and
mostly behind (laminae).  Thin laminae and pedicles at 2–3 mm voxels do not form
a closed ring in every slice, so instead of filling holes we cast rays: a voxel
is "enclosed" when most of 16 in-plane rays of ≤ 22 mm meet bone, including the
anterior, left and right ones.  Slices through the interlaminar windows fail the
test; the track bridges them.  The result is robust against contrast-filled
vessels touching the vertebrae, because those are bright, not dark and enclosed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Bone for the enclosure test (HU, smoothed).  Cortical rims stay above this even
#: in osteoporotic spines at 3 mm partial volume; cancellous bone need not.
RING_HU = 150.0
#: Canal contents: CSF and epidural fat, blurred with their bony walls (HU).
DARK_HU = 70.0
RAY_MM = 22.0
#: How much farther (×) the canal's centre may move backwards than sideways from one
#: slice of the track to the next below it.
AP_LEEWAY = 2.0
N_RAYS = 16


@dataclass(frozen=True)
class CanalTrack:
    """Centre of the canal per axial slice of the scout grid.

    Attributes
    ----------
    z : numpy.ndarray
        Slice indices (scout grid) where the canal was seen.
    yx : numpy.ndarray
        ``(n, 2)`` continuous (y, x) indices of the canal centre in those slices.
    area_mm2 : numpy.ndarray
        Area of the enclosed dark region (mm²), a confidence.
    mask : numpy.ndarray of bool
        The accepted canal voxels on the scout grid.
    """

    z: np.ndarray
    yx: np.ndarray
    area_mm2: np.ndarray
    mask: np.ndarray


def enclosed_dark(hu_s: np.ndarray, body: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Voxels darker than :data:`DARK_HU` that bone encloses in their axial slice.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on an LPS-aligned grid ``(z, y, x)``; +y is posterior.
    body : numpy.ndarray of bool
        Body outline on the same grid.
    spacing_mm : float
        Voxel edge (mm).
    """
    bone = (hu_s >= RING_HU) & body
    hits = []
    for a in np.arange(N_RAYS) * 2 * np.pi / N_RAYS:
        hit = np.zeros(bone.shape, bool)
        for r in np.arange(spacing_mm, RAY_MM + 1e-6, spacing_mm):
            dy, dx = int(round(r * np.sin(a) / spacing_mm)), int(round(r * np.cos(a) / spacing_mm))
            hit |= np.roll(bone, (-dy, -dx), axis=(1, 2))
        hits.append(hit)
    q = N_RAYS // 4
    score = np.sum(hits, axis=0)
    # ray 0 points to +x (left), q to +y (posterior), 2q to the right, 3q anterior.
    anterior = hits[3 * q] | hits[3 * q - 1] | hits[3 * q + 1]
    return (hu_s < DARK_HU) & body & (score >= N_RAYS - 5) & anterior & hits[0] & hits[2 * q]


def track_canal(hu_s: np.ndarray, body: np.ndarray, spacing_mm: float) -> CanalTrack:
    """Follow the canal from slice to slice.

    In each axial slice the enclosed dark components are candidates.  The track
    starts at the slice with the largest candidate near the left–right middle of
    the body and grows up and down, accepting in each slice the largest candidate
    within a few mm (more after skipped slices) of the last accepted centre:
    the canal is a continuous tube, sacral foramina and bowel loops are not on it.
    """
    cand = enclosed_dark(hu_s, body, spacing_mm)
    lab, n = ndi.label(cand, structure=_in_slice())
    empty = CanalTrack(np.zeros(0, int), np.zeros((0, 2)), np.zeros(0), np.zeros_like(cand))
    if n == 0:
        return empty
    idx = np.arange(1, n + 1)
    area = ndi.sum(cand, lab, idx) * spacing_mm**2
    com = np.array(ndi.center_of_mass(cand, lab, idx)).reshape(-1, 3)
    keep = area >= 12.0
    if not keep.any():
        return empty
    idx, area, com = idx[keep], area[keep], com[keep]
    zc = np.round(com[:, 0]).astype(int)
    # left–right middle of the body, per slice: the spine lies within ~30 mm of it
    xs = np.arange(body.shape[2])
    cnt = body.sum(axis=(1,))  # (z, x)
    mid_x = (cnt * xs).sum(1) / np.maximum(cnt.sum(1), 1)
    near_mid = np.abs(com[:, 2] - mid_x[zc]) * spacing_mm < 35.0
    if not near_mid.any():
        return empty
    # seed: the slice whose candidates near the middle have the most support in
    # their neighbourhood (a tube is seen in many slices at nearly the same place)
    support = np.zeros(len(idx))
    for a in range(len(idx)):
        if not near_mid[a]:
            continue
        d = np.linalg.norm((com[:, 1:] - com[a, 1:]) * spacing_mm, axis=1)
        dz = np.abs(com[:, 0] - com[a, 0]) * spacing_mm
        support[a] = area[(d < 8.0) & (dz < 40.0)].sum()
    seed = int(np.argmax(support))
    chosen = {int(zc[seed]): seed}
    for step in (1, -1):
        last = com[seed, 1:]
        last_z = zc[seed]
        z = zc[seed] + step
        while 0 <= z < cand.shape[0]:
            gap_mm = abs(z - last_z) * spacing_mm
            if gap_mm > 40.0:
                break
            here = np.nonzero(zc == z)[0]
            if len(here):
                # Going down, the canal leans back with the sacrum (≈ 45° at the
                # lumbosacral junction) and its centre shifts back where the laminae
                # open (the L5-S1 window): a step backwards counts half there
                step_yx = (com[here, 1:] - last) * spacing_mm
                back = (step_yx[:, 0] > 0) & (step < 0)
                d = np.hypot(np.where(back, step_yx[:, 0] / AP_LEEWAY, step_yx[:, 0]),
                             step_yx[:, 1])
                ok = d < 6.0 + 0.35 * gap_mm
                if ok.any():
                    best = here[ok][np.argmax(area[here[ok]] - 2.0 * d[ok])]
                    chosen[int(z)] = int(best)
                    last, last_z = com[best, 1:], z
            z += step
    order = sorted(chosen)
    sel = np.array([chosen[z] for z in order])
    mask = np.isin(lab, idx[sel])
    return CanalTrack(np.array(order), com[sel, 1:], area[sel], mask)


def _in_slice() -> np.ndarray:
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndi.generate_binary_structure(2, 1)
    return s
