"""The body outline, and the check that an image is a CT in Hounsfield units."""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage as ndi

#: Everything denser than fat-with-partial-volume belongs to the patient (HU).
BODY_HU = -300.0

#: Structuring element that connects voxels within an axial slice only (z, y, x).
IN_SLICE = np.zeros((3, 3, 3), bool)
IN_SLICE[1] = ndi.generate_binary_structure(2, 1)


def hounsfield_problem(hu: np.ndarray) -> Optional[str]:
    """Why ``hu`` does not look like a CT in Hounsfield units, or None if it does.

    A CT has air (≈ −1000 HU) around or inside the patient and soft tissue near
    0–60 HU.  An MR or an intensity-normalised image has no negative values or no
    air, so every threshold below would be meaningless on it.
    """
    sample = hu[:: max(1, hu.shape[0] // 24), ::2, ::2]
    lo, hi = np.percentile(sample, [0.5, 99.9])
    air = float(np.mean(sample < -500))
    if lo > -500 or air < 0.005:
        return (
            f"the intensities do not look like CT Hounsfield units (0.5th–99.9th percentile "
            f"{lo:.0f} to {hi:.0f}, {air:.1%} of voxels below −500): an MR or a normalised image "
            "was passed as CT; nothing was segmented. Open it as MR, or check the rescale "
            "slope/intercept of the CT."
        )
    soft = float(np.mean((sample > -100) & (sample < 100)))
    if soft < 0.01:
        return (
            f"almost no voxels lie in the soft-tissue range −100…100 HU ({soft:.1%}): the image "
            "is not a CT of a patient; nothing was segmented."
        )
    return None


def body_outline(hu: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The patient's body on an LPS-aligned grid.

    Parameters
    ----------
    hu : numpy.ndarray
        CT in HU, shape ``(nz, ny, nx)`` on an isotropic LPS-aligned grid.
    spacing_mm : float
        Voxel edge (mm).

    Returns
    -------
    numpy.ndarray of bool
        Voxels ≥ −300 HU, the largest connected component (after a small opening
        that detaches the table and blankets), with holes (lungs, bowel gas)
        filled slice by slice: axial slices close around the body, while a 3D
        fill would leak through the top and bottom of the field.
    """
    mask = hu >= BODY_HU
    r = max(1, int(round(3.0 / spacing_mm)))
    opened = ndi.binary_opening(mask, structure=ndi.generate_binary_structure(3, 1), iterations=r)
    lab, n = ndi.label(opened)
    if n == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    body = ndi.binary_dilation(body, iterations=r) & mask
    return ndi.binary_fill_holes(body, structure=IN_SLICE)
