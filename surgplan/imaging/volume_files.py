"""Read whole-volume files (NIfTI, NRRD, MetaImage) into a :class:`Volume`.

SimpleITK does the reading.  ITK's physical space is LPS, and its NIfTI reader
converts the file's RAS ``sform``/``qform`` to LPS as it reads (negating x and
y), so the affine we build from the ITK image is already index→LPS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from surgplan.core.errors import VolumeFileError
from surgplan.imaging.volume import ImageMetadata, LoadWarning, Volume, affine_from_sitk

#: Intensities below this in a sizeable share of voxels mean air in HU: a CT.
_AIR_HU = -900


def guess_modality(array: np.ndarray) -> str:
    """Best guess of ``'CT'`` from intensities alone, else ``''`` (unknown).

    A CT in Hounsfield units has air at about −1000 around the body; MR and
    normalised images have no negative values at all.  Anything else is left
    unknown for the user to say (``--modality``).
    """
    sample = array[:: max(1, array.shape[0] // 16), ::4, ::4]
    if sample.size == 0:
        return ""
    lo = float(np.percentile(sample, 1))
    if lo <= _AIR_HU and float(sample.max()) > 200:
        return "CT"
    return ""


def read_volume_file(path: "Path | str", *, modality: Optional[str] = None) -> Volume:
    """Read a NIfTI / NRRD / MHA file as a Volume in LPS mm.

    Parameters
    ----------
    path : path-like
        The file.
    modality : {'CT', 'MR'}, optional
        What the image is, when the caller knows; otherwise guessed from the
        intensities (CT with air at −1000 HU) and left empty if unsure.

    Returns
    -------
    Volume
        CT is stored as int16 HU (SimpleITK gives int32 for rescaled CT).

    Raises
    ------
    VolumeFileError
        Unreadable file, not 3D (a 4D series or a 2D image), vector pixels.
    """
    import SimpleITK as sitk

    p = Path(path)
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise VolumeFileError(
            f"{p}: cannot be read as a NIfTI/NRRD/MHA volume ({first}). "
            "Check that the file is complete and not a different format renamed."
        ) from exc
    warnings = []
    dim = img.GetDimension()
    if dim == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
        dim = 3
    if dim != 3:
        raise VolumeFileError(
            f"{p}: holds a {dim}D image of size {img.GetSize()}; SurgPlan needs one 3D volume. "
            "Split a 4D series into 3D volumes first."
        )
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeFileError(
            f"{p}: has {img.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector); "
            "SurgPlan needs a grey-scale volume."
        )
    arr = np.array(sitk.GetArrayViewFromImage(img))
    mod = (modality or "").upper() or guess_modality(arr)
    if mod == "CT":
        if arr.dtype != np.int16:
            lo, hi = float(arr.min()), float(arr.max())
            if lo < -32768 or hi > 32767:
                warnings.append(
                    LoadWarning(
                        "other",
                        f"CT values {lo:.0f}..{hi:.0f} exceed int16 and were clipped",
                    )
                )
            arr = np.clip(np.rint(arr), -32768, 32767).astype(np.int16)
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if not mod:
        warnings.append(
            LoadWarning(
                "other",
                f"{p.name}: the modality cannot be told from a volume file; "
                "say --modality ct or mr where it matters",
            )
        )
    meta = ImageMetadata(modality=mod, series_description=p.name)
    return Volume(
        array=arr,
        ijk_to_lps=affine_from_sitk(img),
        metadata=meta,
        warnings=tuple(warnings),
        source=str(p),
    )


def write_label_volume(path: "Path | str", labels: np.ndarray, like: Volume) -> None:
    """Write a label map on ``like``'s grid as NIfTI/NRRD/MHA (by the suffix).

    The file's physical space is LPS in ITK terms; the NIfTI writer stores it
    as RAS, as the format requires, so other tools overlay it correctly.
    """
    import SimpleITK as sitk

    arr = np.asarray(labels)
    if arr.shape != like.array.shape:
        raise ValueError(f"label map shape {arr.shape} differs from the volume's {like.array.shape}")
    if arr.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
        arr = arr.astype(np.uint16)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing([float(s) for s in like.spacing_mm])
    img.SetOrigin([float(o) for o in like.origin_lps])
    img.SetDirection([float(d) for d in like.direction.ravel()])
    sitk.WriteImage(img, str(path), useCompression=True)
