"""Working grids: LPS-aligned, isotropic resamplings of the input volume.

The segmentation works on grids whose axes are the patient's LPS axes
(``array[z, y, x]`` with +x left, +y posterior, +z superior) and whose voxels are
cubes.  That makes "an axial slice", "anterior" and "millimetres" mean the same
thing whatever the acquisition (axial, sagittal, oblique, 0.5–3 mm voxels), and
lets the thresholds and radii below be written once, in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class WorkGrid:
    """An LPS-aligned isotropic grid.

    Attributes
    ----------
    origin_lps : numpy.ndarray
        LPS mm of the centre of voxel ``[0, 0, 0]``.
    spacing_mm : float
        Edge of the cubic voxel, mm.
    shape : tuple of int
        ``(nz, ny, nx)``, the numpy shape of arrays on this grid.
    """

    origin_lps: np.ndarray
    spacing_mm: float
    shape: tuple

    @classmethod
    def covering(cls, lo_lps: np.ndarray, hi_lps: np.ndarray, spacing_mm: float) -> "WorkGrid":
        """The grid of ``spacing_mm`` cubes covering the LPS box [lo, hi] (mm)."""
        lo = np.asarray(lo_lps, float)
        hi = np.asarray(hi_lps, float)
        n = np.maximum(1, np.floor((hi - lo) / spacing_mm).astype(int) + 1)
        return cls(origin_lps=lo, spacing_mm=float(spacing_mm), shape=(int(n[2]), int(n[1]), int(n[0])))

    def index_to_lps(self, zyx: np.ndarray) -> np.ndarray:
        """Array indices ``(..., 3)`` ordered (z, y, x) → LPS mm ``(..., 3)``."""
        zyx = np.asarray(zyx, float)
        return self.origin_lps + zyx[..., ::-1] * self.spacing_mm

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` → continuous array indices ordered (z, y, x)."""
        return ((np.asarray(lps, float) - self.origin_lps) / self.spacing_mm)[..., ::-1]

    def _reference(self, pixel_id) -> sitk.Image:
        ref = sitk.Image([int(self.shape[2]), int(self.shape[1]), int(self.shape[0])], pixel_id)
        ref.SetOrigin([float(v) for v in self.origin_lps])
        ref.SetSpacing([self.spacing_mm] * 3)
        ref.SetDirection([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
        return ref

    def sample(self, image: sitk.Image, *, labels: bool = False, default: float = -1024.0) -> np.ndarray:
        """Resample ``image`` (any geometry) onto this grid; float32 (linear) or labels (nearest)."""
        if labels:
            out = sitk.Resample(image, self._reference(image.GetPixelID()), sitk.Transform(),
                                sitk.sitkNearestNeighbor, 0.0, image.GetPixelID())
            return sitk.GetArrayFromImage(out)
        img = sitk.Cast(image, sitk.sitkFloat32)
        out = sitk.Resample(img, self._reference(sitk.sitkFloat32), sitk.Transform(),
                            sitk.sitkLinear, float(default), sitk.sitkFloat32)
        return sitk.GetArrayFromImage(out)

    def to_image(self, array: np.ndarray) -> sitk.Image:
        """Wrap an array on this grid as a SimpleITK image with the grid's geometry."""
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
        img.SetOrigin([float(v) for v in self.origin_lps])
        img.SetSpacing([self.spacing_mm] * 3)
        img.SetDirection([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
        return img

    def labels_onto(self, labels: np.ndarray, reference: sitk.Image) -> np.ndarray:
        """Map a label array on this grid onto ``reference``'s grid (nearest neighbour)."""
        img = self.to_image(labels.astype(np.uint16))
        out = sitk.Resample(img, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0,
                            sitk.sitkUInt16)
        return sitk.GetArrayFromImage(out)


def volume_box_lps(image: sitk.Image) -> tuple:
    """(lo, hi) LPS corners (mm) of the box spanned by the voxel centres of ``image``."""
    size = image.GetSize()
    corners = [
        image.TransformContinuousIndexToPhysicalPoint([float(i), float(j), float(k)])
        for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)
    ]
    pts = np.array(corners, float)
    return pts.min(axis=0), pts.max(axis=0)
