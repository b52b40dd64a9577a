"""The Volume: one 3D image on a regular grid, in patient LPS millimetres.

Array layout follows ITK/SimpleITK: ``array[k, j, i]`` where ``i`` runs along a
row (DICOM column index), ``j`` down the columns (row index) and ``k`` across
slices.  ``ijk_to_lps @ (i, j, k, 1)`` gives the centre of voxel ``(i, j, k)``
in LPS mm.  Keeping the SimpleITK order means conversion in either direction
is a view, not a copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional

import numpy as np

from surgplan.core.errors import GeometryError
from surgplan.core.geometry import apply_affine

#: Codes of the warnings a loader can attach to a volume (stable: the CLI's
#: ``--json`` and the GUI key on them).
WARNING_CODES = (
    "gantry-tilt",
    "irregular-spacing",
    "missing-slice",
    "overlapping-slices",
    "empty-uid",
    "inconsistent-header",
    "skipped-file",
    "resampled",
    "orientation",
    "clipped-values",
    "other",
)


@dataclass(frozen=True)
class LoadWarning:
    """Something imperfect but usable about an input, shown to the user.

    Attributes
    ----------
    code : str
        One of :data:`WARNING_CODES`.
    message : str
        A sentence a user understands, naming the value and its consequence.
    """

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in WARNING_CODES:
            raise ValueError(f"unknown warning code {self.code!r}; expected one of {WARNING_CODES}")

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ImageMetadata:
    """Identifying and acquisition facts carried along with a volume.

    Empty strings mean "not recorded".  Dates stay as DICOM ``YYYYMMDD`` text.
    """

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_description: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    series_description: str = ""
    series_number: str = ""
    modality: str = ""
    body_part: str = ""
    manufacturer: str = ""
    slice_thickness_mm: Optional[float] = None
    kvp: Optional[float] = None
    convolution_kernel: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _frozen_array(a: np.ndarray) -> np.ndarray:
    # A view with writeable=False: the caller's array is not copied, but nobody
    # can change the voxels of a Volume through it.
    v = a.view()
    v.flags.writeable = False
    return v


@dataclass(frozen=True, eq=False)
class Volume:
    """An immutable 3D image with its geometry, metadata and load warnings.

    Parameters
    ----------
    array : numpy.ndarray
        Voxels, shape ``(nk, nj, ni)``.  CT is int16 Hounsfield units.
    ijk_to_lps : numpy.ndarray
        4×4 affine from voxel index ``(i, j, k, 1)`` to LPS millimetres.
    frame_of_reference_uid : str
        DICOM Frame of Reference UID ("" when unknown, e.g. NIfTI input).
    metadata : ImageMetadata
        Patient / study / series facts.
    warnings : tuple of LoadWarning
        What the loader noticed and the user must see.
    source : str
        Where the volume came from (a path), for messages.
    """

    array: np.ndarray
    ijk_to_lps: np.ndarray
    frame_of_reference_uid: str = ""
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    warnings: tuple = ()
    source: str = ""

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise GeometryError(f"a volume needs a 3D array, got shape {arr.shape}")
        if min(arr.shape) < 1:
            raise GeometryError(f"a volume cannot be empty, got shape {arr.shape}")
        aff = np.array(self.ijk_to_lps, dtype=float)
        if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
            raise GeometryError(f"ijk_to_lps must be a finite 4×4 matrix, got {aff!r}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise GeometryError("ijk_to_lps is singular: voxel spacing is zero along an axis")
        aff.flags.writeable = False
        object.__setattr__(self, "array", _frozen_array(arr))
        object.__setattr__(self, "ijk_to_lps", aff)
        object.__setattr__(self, "warnings", tuple(self.warnings))

    # --- geometry -----------------------------------------------------------------
    @property
    def shape_ijk(self) -> tuple:
        """Grid size as ``(ni, nj, nk)``."""
        nk, nj, ni = self.array.shape
        return (ni, nj, nk)

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel spacing along i, j, k in mm."""
        return np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0)

    @property
    def direction(self) -> np.ndarray:
        """3×3 matrix whose columns are the unit LPS directions of i, j, k."""
        return self.ijk_to_lps[:3, :3] / self.spacing_mm

    @property
    def origin_lps(self) -> np.ndarray:
        """LPS position (mm) of the centre of voxel (0, 0, 0)."""
        return self.ijk_to_lps[:3, 3].copy()

    @property
    def lps_to_ijk(self) -> np.ndarray:
        """Inverse of :attr:`ijk_to_lps`."""
        return np.linalg.inv(self.ijk_to_lps)

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices ``(..., 3)`` as ``(i, j, k)`` → LPS mm ``(..., 3)``."""
        return apply_affine(self.ijk_to_lps, ijk)

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` → continuous voxel indices ``(i, j, k)``."""
        return apply_affine(self.lps_to_ijk, lps)

    def bounds_lps(self) -> tuple:
        """(min, max) LPS corners of the box spanned by the voxel centres."""
        ni, nj, nk = self.shape_ijk
        corners = np.array(
            [[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float
        )
        pts = self.index_to_lps(corners)
        return pts.min(axis=0), pts.max(axis=0)

    def slice_positions_lps(self) -> np.ndarray:
        """LPS position of the first voxel of each slice k, shape ``(nk, 3)``."""
        k = np.arange(self.array.shape[0], dtype=float)
        ijk = np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1)
        return self.index_to_lps(ijk)

    @property
    def modality(self) -> str:
        return self.metadata.modality

    # --- derived values -------------------------------------------------------------
    def replace(self, **changes: Any) -> "Volume":
        """A new Volume with some fields changed (the original is untouched)."""
        return dataclasses.replace(self, **changes)

    def with_warnings(self, *extra: LoadWarning) -> "Volume":
        return self.replace(warnings=self.warnings + tuple(extra))

    # --- SimpleITK ------------------------------------------------------------------
    def to_sitk(self):
        """This volume as a ``SimpleITK.Image`` with LPS origin/spacing/direction.

        SimpleITK copies the buffer into the image (it owns its memory); the
        Volume itself stays untouched.
        """
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array), isVector=False)
        img.SetSpacing([float(s) for s in self.spacing_mm])
        img.SetOrigin([float(o) for o in self.origin_lps])
        img.SetDirection([float(d) for d in self.direction.ravel()])
        return img

    @classmethod
    def from_sitk(
        cls,
        image,
        *,
        frame_of_reference_uid: str = "",
        metadata: Optional[ImageMetadata] = None,
        warnings: tuple = (),
        source: str = "",
    ) -> "Volume":
        """Wrap a 3D ``SimpleITK.Image`` (physical space is LPS in ITK).

        The voxels are taken as a view (``GetArrayViewFromImage``) and then
        copied once into an array the Volume owns, because the view dies with the
        image.
        """
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise GeometryError(f"expected a 3D image, got {image.GetDimension()}D")
        arr = np.array(sitk.GetArrayViewFromImage(image))
        return cls(
            array=arr,
            ijk_to_lps=affine_from_sitk(image),
            frame_of_reference_uid=frame_of_reference_uid,
            metadata=metadata or ImageMetadata(),
            warnings=warnings,
            source=source,
        )


def affine_from_sitk(image) -> np.ndarray:
    """The index→LPS 4×4 affine of a 3D SimpleITK image."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    aff = np.eye(4)
    aff[:3, :3] = direction * spacing
    aff[:3, 3] = image.GetOrigin()
    return aff


def affine_from_geometry(
    origin_lps: np.ndarray, direction: np.ndarray, spacing_mm: np.ndarray
) -> np.ndarray:
    """Build an index→LPS affine from origin, direction columns and spacing."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(direction, float) * np.asarray(spacing_mm, float)
    aff[:3, 3] = origin_lps
    return aff


def summarize(volume: Volume) -> Mapping[str, Any]:
    """A read-only dict of the facts a user wants to see about a volume."""
    ni, nj, nk = volume.shape_ijk
    return MappingProxyType(
        {
            "modality": volume.metadata.modality,
            "shape_ijk": (ni, nj, nk),
            "spacing_mm": tuple(round(float(s), 4) for s in volume.spacing_mm),
            "dtype": str(volume.array.dtype),
        }
    )
