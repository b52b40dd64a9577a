"""Small synthetic DICOM series for the reader tests, written with pydicom.

Pixel values follow a known function of the LPS position of each pixel centre
(:func:`ramp_hu`), a linear ramp.  Linear interpolation reproduces a linear
function exactly, so a resampled volume can be checked voxel by voxel against
the function at the voxel's world position: any shift, shear or stretch shows.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

#: HU = 2·x + 3·y + 5·z (LPS mm): distinct along every axis, small for |p| < 60 mm.
RAMP = np.array([2.0, 3.0, 5.0])


def ramp_hu(points_lps: np.ndarray) -> np.ndarray:
    """The synthetic image value at LPS points ``(..., 3)``."""
    return np.asarray(points_lps, float) @ RAMP


def pixel_centres(position, orientation, rows: int, cols: int, spacing) -> np.ndarray:
    """LPS centres ``(rows, cols, 3)`` of a slice's pixels (DICOM PS3.3 C.7.6.2.1.1)."""
    r = np.asarray(orientation[:3], float)
    c = np.asarray(orientation[3:], float)
    j, i = np.mgrid[0:rows, 0:cols]
    return (np.asarray(position, float) + i[..., None] * spacing[1] * r
            + j[..., None] * spacing[0] * c)


def write_slice(
    path: Path,
    *,
    position: Sequence[float],
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    rows: int = 24,
    cols: int = 20,
    spacing: Sequence[float] = (1.0, 1.0),
    modality: str = "CT",
    series_uid: str = "1.2.3.4.5",
    study_uid: str = "1.2.3.4",
    for_uid: str = "1.2.3.4.9",
    instance: int = 1,
    values: Optional[np.ndarray] = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    signed: bool = True,
    bits_stored: int = 16,
    photometric: str = "MONOCHROME2",
    thickness: float = 2.0,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    sop_class: Optional[str] = None,
    acquisition: int = 1,
    echo: Optional[int] = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """Write one single-frame slice; ``values`` are real-world (rescaled) values.

    When ``values`` is None the slice holds :func:`ramp_hu` of its pixel centres.
    """
    if values is None:
        values = ramp_hu(pixel_centres(position, orientation, rows, cols, spacing))
    stored = np.rint((np.asarray(values, float) - intercept) / slope)
    dtype = np.int16 if signed else np.uint16
    info = np.iinfo(dtype)
    assert stored.min() >= info.min and stored.max() <= info.max, "values do not fit"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class or (CTImageStorage if modality == "CT"
                                                 else MRImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Synthetic^Spine"
    ds.PatientID = "SYN001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240102"
    ds.StudyDescription = "Lumbar spine"
    ds.SeriesDescription = "synthetic stack"
    ds.SeriesNumber = 3
    ds.Manufacturer = "SurgPlan tests"
    ds.BodyPartExamined = "LSPINE"
    ds.KVP = 120
    ds.ConvolutionKernel = "B30f"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.ImageType = list(image_type)
    ds.InstanceNumber = instance
    ds.AcquisitionNumber = acquisition
    if echo is not None:
        ds.EchoNumbers = echo
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:g}" for v in spacing]
    ds.SliceThickness = thickness
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = stored.astype(dtype).tobytes()
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_stack(
    folder: Path,
    positions: Sequence[Sequence[float]],
    *,
    prefix: str = "IM",
    shuffle: bool = False,
    seed: int = 0,
    **kwargs,
) -> list:
    """Write one slice per position (InstanceNumber in the given order).

    Returns the file paths, shuffled when ``shuffle`` (to test sorting).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        write_slice(folder / f"{prefix}{n:04d}.dcm", position=p, instance=n + 1, **kwargs)
        for n, p in enumerate(positions)
    ]
    if shuffle:
        random.Random(seed).shuffle(paths)
    return paths


def axial_positions(n: int, step: float = 2.0, z0: float = -10.0,
                    xy: Sequence[float] = (-10.0, -12.0)) -> list:
    """Positions of an untilted axial stack along +z (LPS mm)."""
    return [(xy[0], xy[1], z0 + k * step) for k in range(n)]


def tilted_positions(n: int, step_z: float = 2.0, tilt_deg: float = 20.0,
                     z0: float = -10.0) -> tuple:
    """A gantry-tilted stack: slice planes tilted about x, table moving along z.

    Returns ``(positions, orientation)``; the column direction is tilted by
    ``tilt_deg`` in the y-z plane, the slices advance purely along z (as on a
    CT table), so the stacking direction is ``tilt_deg`` off the slice normal.
    """
    t = np.radians(tilt_deg)
    orientation = (1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(-np.sin(t)))
    return [(-10.0, -12.0, z0 + k * step_z) for k in range(n)], orientation


def truncate(path: Path, keep_fraction: float = 0.6) -> Path:
    """Cut a file short (as an interrupted copy would)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def write_sr(path: Path) -> Path:
    """A minimal structured report (no pixels), to be skipped."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.save_as(path, enforce_file_format=True)
    return path


def map_slices(paths: Sequence[Path], fn: Callable[[pydicom.Dataset], None]) -> None:
    """Edit the header of each file in place (for tests that need odd headers)."""
    for p in paths:
        ds = pydicom.dcmread(p)
        fn(ds)
        ds.save_as(p)
