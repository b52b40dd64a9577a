"""Write a :class:`~surgplan.imaging.volume.Volume` as a single-frame DICOM series.

Used for the demo case, for tests of the reader, and for benchmarks.  Besides a
plain copy of the volume's slices it can imitate imperfect acquisitions the
reader must cope with: a gantry tilt (oblique slices stacked along the table
axis), irregular slice positions, and missing slices.  Those are *sampled*
from the volume (trilinear) at the planes a scanner would have acquired, not
relabelled, so the pixels and the headers agree.

Pixel encoding
--------------
CT is stored **unsigned** 16-bit with ``RescaleIntercept = -1024`` and
``RescaleSlope = 1`` (as most scanners do): stored value = HU + 1024, clipped
to 0 … 65535, so HU below −1024 become −1024.  Other modalities are stored
unsigned 16-bit with intercept 0 when every value is ≥ 0, else signed.
Transfer syntax: explicit VR little endian, uncompressed.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from scipy import ndimage

from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.volume import Volume

#: Stored value 0 ↔ −1024 HU.
CT_INTERCEPT = -1024.0

_SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}


def _fmt(x: float) -> str:
    # DS values are at most 16 characters
    s = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def plan_planes(
    volume: Volume,
    *,
    gantry_tilt_deg: float = 0.0,
    slice_positions_mm: Optional[Sequence[float]] = None,
) -> tuple:
    """Where the written slices lie.

    Parameters
    ----------
    volume : Volume
    gantry_tilt_deg : float
        Tilt of the image planes about the row axis.  Columns then run along
        ``cos t · c − sin t · k`` (c, k: the volume's column and slice
        directions; ``(0, cos t, −sin t)`` for an axial volume) while slice
        origins still step along k, as on a tilted gantry.
    slice_positions_mm : sequence of float, optional
        Positions of the slice centres along the stacking axis k, in mm of the
        LPS coordinate along k (``dot(position, k)``; for an axial volume, z).
        Default: the volume's own slices.

    Returns
    -------
    (positions, row, col, ijk_origins, di, dj)
        ``positions`` (n, 3) ImagePositionPatient of each plane (LPS mm);
        ``row`` and ``col`` the unit direction cosines; ``ijk_origins`` (n, 3)
        continuous volume index of each plane's first pixel and ``di``, ``dj``
        the index step per pixel along a row and down a column.
    """
    aff = volume.ijk_to_lps
    sp = volume.spacing_mm
    direc = volume.direction
    r, c, k = direc[:, 0], direc[:, 1], direc[:, 2]
    ni, nj, nk = volume.shape_ijk
    o = aff[:3, 3]
    if slice_positions_mm is None:
        ks = np.arange(nk, dtype=float)
    else:
        pos = np.asarray(list(slice_positions_mm), float)
        ks = (pos - float(np.dot(o, k))) / sp[2]
    t = np.radians(float(gantry_tilt_deg))
    col = np.cos(t) * c - np.sin(t) * k
    centre_offset = (ni - 1) / 2 * sp[0] * r + (nj - 1) / 2 * sp[1] * c
    tilted_offset = (ni - 1) / 2 * sp[0] * r + (nj - 1) / 2 * sp[1] * col
    # each plane keeps the centre of the volume's slice at the same table position
    positions = o[None, :] + ks[:, None] * sp[2] * k[None, :] + (centre_offset - tilted_offset)
    inv = np.linalg.inv(aff)
    ijk0 = positions @ inv[:3, :3].T + inv[:3, 3]
    di = inv[:3, :3] @ (sp[0] * r)
    dj = inv[:3, :3] @ (sp[1] * col)
    return positions, r, col, ijk0, di, dj


def write_series(
    volume: Volume,
    out_dir,
    *,
    modality: Optional[str] = None,
    series_description: Optional[str] = None,
    series_number: Optional[int] = None,
    gantry_tilt_deg: float = 0.0,
    slice_positions_mm: Optional[Sequence[float]] = None,
    drop_slices: Iterable[int] = (),
    study_instance_uid: Optional[str] = None,
    frame_of_reference_uid: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Path]:
    """Write ``volume`` as a single-frame DICOM series into ``out_dir``.

    Parameters
    ----------
    volume : Volume
        CT in HU (any integer or float dtype) or MR values.
    out_dir : str or Path
        Created if missing; files are named ``IM00001.dcm`` … by instance number.
    modality : {'CT', 'MR'}, optional
        Defaults to the volume's metadata modality, else CT.  Chooses the SOP
        class (CT / MR Image Storage).
    series_description, series_number
        Defaults from the volume's metadata.
    gantry_tilt_deg : float
        Write oblique planes (see :func:`plan_planes`), sampled trilinearly;
        records GantryDetectorTilt.
    slice_positions_mm : sequence of float, optional
        Explicit slice positions along the stacking axis (irregular spacing).
    drop_slices : iterable of int
        Indices (into the planned planes) not to write: a series with missing
        slices.  Instance numbers keep their gap.
    study_instance_uid, frame_of_reference_uid : str, optional
        Default: the volume's (new ones when it has none).  The series and
        every SOP instance always get new UIDs.
    progress, cancel
        Progress callback and cancellation token.  On cancel, the files
        already written are removed.

    Returns
    -------
    list of Path
        The files written, in instance order.
    """
    modality = (modality or volume.metadata.modality or "CT").upper()
    if modality not in _SOP_CLASS:
        raise ValueError(f"modality must be 'CT' or 'MR', got {modality!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    positions, row, col, ijk0, di, dj = plan_planes(
        volume, gantry_tilt_deg=gantry_tilt_deg, slice_positions_mm=slice_positions_mm)
    drop = {int(d) for d in drop_slices}
    n = len(positions)
    bad = [d for d in drop if not 0 <= d < n]
    if bad:
        raise ValueError(f"drop_slices {sorted(bad)} are outside the {n} planned slices")
    arr = volume.array
    ni, nj, nk = volume.shape_ijk
    ct = modality == "CT"
    md = volume.metadata
    if ct:
        intercept, signed, pad = CT_INTERCEPT, False, -1024.0
    else:
        signed = bool(np.min(arr) < 0)
        intercept, pad = 0.0, 0.0
    exact = (abs(gantry_tilt_deg) < 1e-9) and np.allclose(ijk0[:, :2], 0.0, atol=1e-6) and \
        np.allclose(ijk0[:, 2], np.rint(ijk0[:, 2]), atol=1e-6)
    study_uid = study_instance_uid or md.study_instance_uid or generate_uid()
    for_uid = frame_of_reference_uid or volume.frame_of_reference_uid or generate_uid()
    series_uid = generate_uid()
    normal = np.cross(row, col)
    now = datetime.datetime.now()
    sp = volume.spacing_mm
    written: List[Path] = []
    template = _template(volume, modality, study_uid, for_uid, series_uid, row, col, sp,
                         series_description, series_number, gantry_tilt_deg, signed, intercept,
                         nj, ni, now)
    ii, jj = np.meshgrid(np.arange(ni, dtype=np.float32), np.arange(nj, dtype=np.float32))
    try:
        for m in range(n):
            check(cancel)
            if m in drop:
                continue
            if exact and 0 <= int(round(ijk0[m, 2])) < nk:
                plane = np.asarray(arr[int(round(ijk0[m, 2]))], dtype=np.float32)
            else:
                coords = [ijk0[m, a] + ii * di[a] + jj * dj[a] for a in (2, 1, 0)]
                plane = ndimage.map_coordinates(arr, coords, order=1, mode="constant",
                                                cval=pad, output=np.float32, prefilter=False)
            stored = np.rint(plane - intercept)
            if signed:
                px = np.clip(stored, -32768, 32767).astype("<i2")
            else:
                px = np.clip(stored, 0, 65535).astype("<u2")
            path = out / f"IM{m + 1:05d}.dcm"
            _write_one(template, path, m + 1, positions[m], float(np.dot(positions[m], normal)),
                       px, ct)
            written.append(path)
            if progress is not None:
                progress((m + 1) / n, f"writing {modality} slice {m + 1}/{n}")
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written


def _template(volume, modality, study_uid, for_uid, series_uid, row, col, sp, desc, number,
              tilt, signed, intercept, rows, cols, now) -> Dataset:
    md = volume.metadata
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = _SOP_CLASS[modality]
    ds.StudyDate = md.study_date or now.strftime("%Y%m%d")
    ds.SeriesDate = ds.StudyDate
    ds.ContentDate = ds.StudyDate
    ds.StudyTime = "120000"
    ds.SeriesTime = now.strftime("%H%M%S")
    ds.ContentTime = ds.SeriesTime
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = md.manufacturer or "SurgPlan"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = md.study_description
    ds.SeriesDescription = desc if desc is not None else (md.series_description or modality)
    ds.PatientName = md.patient_name or "ANONYMOUS"
    ds.PatientID = md.patient_id or "UNKNOWN"
    ds.PatientBirthDate = md.patient_birth_date
    ds.PatientSex = md.patient_sex
    ds.BodyPartExamined = md.body_part
    ds.SliceThickness = _fmt(md.slice_thickness_mm or sp[2])
    if modality == "CT":
        ds.KVP = _fmt(md.kvp or 120.0)
        ds.ConvolutionKernel = md.convolution_kernel or "STANDARD"
        ds.GantryDetectorTilt = _fmt(tilt)
        ds.RescaleType = "HU"
        ds.WindowCenter = ["40", "500"]
        ds.WindowWidth = ["400", "2000"]
        ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "BONE"]
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "3000"
        ds.EchoTime = "100"
        ds.EchoTrainLength = "16"
        ds.MagneticFieldStrength = "1.5"
        hi = float(np.percentile(np.asarray(volume.array[:: max(1, volume.array.shape[0] // 16)]),
                                 99.5))
        ds.WindowCenter = _fmt(round(hi / 2))
        ds.WindowWidth = _fmt(round(max(hi, 1.0)))
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = str(number if number is not None else (md.series_number or 1))
    ds.AcquisitionNumber = "1"
    ds.ImageOrientationPatient = [_fmt(x) for x in list(row) + list(col)]
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(rows)
    ds.Columns = int(cols)
    # PixelSpacing is (between rows, between columns) = (column step, row step)
    ds.PixelSpacing = [_fmt(sp[1]), _fmt(sp[0])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = _fmt(intercept)
    ds.RescaleSlope = "1"
    return ds


def _write_one(template: Dataset, path: Path, number: int, position, location: float,
               pixels: np.ndarray, ct: bool) -> None:
    ds = Dataset()
    ds.update(template)
    uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = template.SOPClassUID
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SURGPLAN"
    ds.file_meta = meta
    ds.SOPInstanceUID = uid
    ds.InstanceNumber = str(number)
    ds.ImagePositionPatient = [_fmt(x) for x in position]
    ds.SliceLocation = _fmt(location)
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    ds.save_as(path, enforce_file_format=True)
