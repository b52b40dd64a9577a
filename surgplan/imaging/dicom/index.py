"""Index DICOM files by header only and group their slices into series.

:func:`index_files` reads each file up to (not including) its pixel data, keeps
a small :class:`~surgplan.imaging.dicom.headers.SliceHeader` per slice or frame,
skips what cannot be part of a volume (with a reason per file), and groups the
rest into :class:`Series`.  Each series carries a header-only geometry analysis
so that an ``inspect`` command can list series, their spacing and their
warnings without decoding a single pixel.

Grouping
--------
Slices are grouped by SeriesInstanceUID and, because real data has empty UIDs
or one UID for several acquisitions, further by Frame of Reference, rounded
ImageOrientationPatient, rows × columns and rounded PixelSpacing.  Echo number
and then acquisition number split a group only where the group has several
slices at one position and splitting separates those stacks (a multi-echo MR,
or a CT scanned twice under one UID); elsewhere they are ignored, because
scanners also change the acquisition number in the middle of one stack.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from surgplan.core.errors import GeometryError
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.dicom import headers as hdr
from surgplan.imaging.dicom.enhanced import frame_headers
from surgplan.imaging.dicom.geometry import StackGeometry, analyse_stack, slice_normal
from surgplan.imaging.dicom.headers import PixelFormat, SliceHeader
from surgplan.imaging.dicom.pixelcheck import peek_pixel_data
from surgplan.imaging.dicom.sopclasses import (
    ENHANCED_SOP_CLASSES,
    VOLUME_SOP_CLASSES,
    non_volume_reason,
)
from surgplan.imaging.volume import ImageMetadata, LoadWarning

#: Values longer than this (bytes) are not read while indexing (private blobs,
#: icons, overlays); only their position in the file is remembered.
DEFER_SIZE = 1024


@dataclass(frozen=True)
class SkippedFile:
    """A file the index did not use, and why (a sentence for the user)."""

    path: str
    reason: str


@dataclass(frozen=True, eq=False)
class Series:
    """The slices (or frames) that form one volume, with header-only geometry.

    Attributes
    ----------
    uid : str
        The SeriesInstanceUID; ``"<uid>#<n>"`` when one UID held several stacks
        that had to be split; ``"synth-<hash>"`` when the UID is empty (then an
        ``empty-uid`` warning says so).  Stable for the same files.
    uid_synthesised : bool
        True when :attr:`uid` was made up because the header's UID is empty.
    modality : str
    rows, columns : int
        Size of each slice (rows along j, columns along i).
    description : str
        SeriesDescription.
    frame_of_reference_uid : str
    metadata : ImageMetadata
        Patient/study/series facts from the first slice.
    slices : tuple of SliceHeader
        Every slice of the series, in the order :attr:`geometry` refers to.
    geometry : StackGeometry
        Sorted order, target grid, spacing, tilt and geometry warnings.
    warnings : tuple of LoadWarning
        Series-level findings: ``empty-uid``, a split UID, a mosaic.  The
        geometry's own warnings are in ``geometry.warnings``; :attr:`all_warnings`
        joins both.
    """

    uid: str
    uid_synthesised: bool
    modality: str
    rows: int
    columns: int
    description: str
    frame_of_reference_uid: str
    metadata: ImageMetadata
    slices: tuple
    geometry: StackGeometry
    warnings: tuple = field(default_factory=tuple)

    @property
    def n_slices(self) -> int:
        """Number of slices/frames that will be used (duplicates excluded)."""
        return len(self.geometry.order)

    num_slices = n_slices

    @property
    def all_warnings(self) -> tuple:
        """Series-level warnings followed by the geometry warnings."""
        return tuple(self.warnings) + tuple(self.geometry.warnings)

    @property
    def spacing_mm(self) -> tuple:
        """Voxel spacing [x, y, z] = along i, j, k of the volume it loads to (mm)."""
        return tuple(float(s) for s in self.geometry.spacing_mm)

    @property
    def orientation(self) -> tuple:
        """Row and column direction cosines (6 floats, LPS)."""
        return self.geometry.orientation

    @property
    def files(self) -> tuple:
        """The distinct files of the series, in slice order."""
        seen: dict = {}
        for k in self.geometry.order:
            seen.setdefault(self.slices[k].path, None)
        return tuple(seen)

    @property
    def source(self) -> str:
        """The folder holding all files, or the first file if they are spread out."""
        files = self.files
        parents = {os.path.dirname(f) for f in files}
        if len(files) > 1 and len(parents) == 1:
            return parents.pop()
        return files[0]

    def summary(self) -> dict:
        """JSON-friendly facts for listing the series."""
        return {
            "uid": self.uid,
            "modality": self.modality,
            "description": self.description,
            "rows": self.rows,
            "columns": self.columns,
            "slices": self.n_slices,
            "spacing_mm": [round(s, 4) for s in self.spacing_mm],
            "orientation": [round(v, 5) for v in self.orientation],
            "warnings": [w.as_dict() for w in self.all_warnings],
        }


@dataclass(frozen=True)
class DicomIndex:
    """Series found among the files, and the files that were skipped."""

    series: list
    skipped: list

    def find(self, uid: str) -> Series:
        """The series with this :attr:`Series.uid` (KeyError naming the choices)."""
        for s in self.series:
            if s.uid == uid:
                return s
        raise KeyError(f"no series {uid!r}; found {[s.uid for s in self.series]}")


@dataclass
class _FileInfo:
    slices: list
    series_uid: str
    study_uid: str
    for_uid: str
    modality: str
    series_number: str
    image_type: tuple
    patient_id: str
    study_date: str
    series_description: str
    path: str  # metadata is read again from the first file of each series only


class _Skip(Exception):
    """Internal: this file is not used; the message is the reason."""


def index_files(
    paths: Iterable[Path],
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> DicomIndex:
    """Read the headers of DICOM files and group their slices into series.

    Parameters
    ----------
    paths : iterable of pathlib.Path
        Files to look at (any mix; non-DICOM files are skipped).
    progress : ProgressCallback, optional
        Called with the fraction of files read.
    cancel : CancelToken, optional
        Checked between files.

    Returns
    -------
    DicomIndex
        ``series`` sorted by patient, study date, series number and UID;
        ``skipped`` with a reason per file.  Unreadable or truncated files are
        skipped, never raised, so one bad file does not stop a load.

    Raises
    ------
    OperationCancelled
        When ``cancel`` is set.
    """
    paths = [Path(p) for p in paths]
    skipped: list = []
    infos: list = []
    n = len(paths)
    for count, path in enumerate(paths):
        check(cancel)
        if progress is not None and count % 16 == 0:
            progress(count / max(n, 1), f"Reading DICOM headers ({count}/{n})")
        try:
            infos.append(_read_file(path))
        except _Skip as exc:
            skipped.append(SkippedFile(str(path), str(exc)))
    series = _group(infos, skipped)
    if progress is not None:
        progress(1.0, f"Found {len(series)} series in {n} files")
    return DicomIndex(series=series, skipped=skipped)


# --- reading one file --------------------------------------------------------------------


def _read_file(path: Path) -> _FileInfo:
    label = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE)
            meta = getattr(ds, "file_meta", None)
            ts = hdr.text(meta, "TransferSyntaxUID") if meta is not None else ""
            pixel_state = peek_pixel_data(fp, ds, size, ts)
    except InvalidDicomError:
        raise _Skip("not a DICOM file (no 'DICM' marker after the 128-byte preamble and no "
                    "file meta header)") from None
    except IsADirectoryError:
        raise _Skip("is a folder, not a file") from None
    except PermissionError as exc:
        raise _Skip(f"cannot be read: permission denied ({exc.strerror})") from None
    except (EOFError, struct.error) as exc:
        raise _Skip(f"is truncated: its header ends early ({exc}); copy it again") from None
    except Exception as exc:  # pydicom raises many types on garbage; report, never hide
        raise _Skip(f"could not be read as DICOM ({type(exc).__name__}: {exc})") from None

    try:
        return _classify(ds, label, ts, pixel_state)
    except ValueError as exc:
        raise _Skip(f"has an unusable header value: {exc}") from None


def _classify(ds, label: str, ts: str, pixel_state: str) -> _FileInfo:
    meta = getattr(ds, "file_meta", None)
    sop = hdr.text(ds, "SOPClassUID") or (hdr.text(meta, "MediaStorageSOPClassUID") if meta
                                          is not None else "")
    modality = hdr.text(ds, "Modality")
    reason = non_volume_reason(sop, modality)
    if reason:
        raise _Skip(f"is {reason}")
    image_type = tuple(v.upper() for v in (ds.get("ImageType", None) or ()) if v)
    if "LOCALIZER" in image_type:
        raise _Skip("is a localizer/scout image (ImageType LOCALIZER), not part of a volume")
    if pixel_state == "none":
        raise _Skip("has no pixel data (a header-only object), so it cannot be a slice")
    if pixel_state.startswith("truncated"):
        raise _Skip(f"is {pixel_state}; copy the file again from its source")
    if "PixelData" not in ds and not sop and not ds.get("Rows"):
        raise _Skip("has no image attributes (Rows, Columns, pixel data)")
    spp = hdr.integer(ds, "SamplesPerPixel") or 1
    if spp != 1:
        raise _Skip(f"is a colour image ({spp} samples per pixel; "
                    f"{hdr.text(ds, 'PhotometricInterpretation')}), not grey-scale volume data")
    rows, cols = hdr.integer(ds, "Rows"), hdr.integer(ds, "Columns")
    if not rows or not cols:
        raise _Skip("has no Rows/Columns, so its pixel data cannot be laid out")
    bits_allocated = hdr.integer(ds, "BitsAllocated") or 16
    pixel = PixelFormat(
        rows=rows,
        columns=cols,
        bits_allocated=bits_allocated,
        bits_stored=hdr.integer(ds, "BitsStored") or bits_allocated,
        pixel_representation=hdr.integer(ds, "PixelRepresentation") or 0,
        photometric=hdr.text(ds, "PhotometricInterpretation", "MONOCHROME2").upper(),
        samples_per_pixel=spp,
        transfer_syntax_uid=ts,
    )
    n_frames = hdr.integer(ds, "NumberOfFrames") or 1
    if sop in ENHANCED_SOP_CLASSES or "PerFrameFunctionalGroupsSequence" in ds:
        slices = frame_headers(ds, label, pixel)
    elif n_frames > 1:
        raise _Skip(f"is a {n_frames}-frame {modality or 'image'} without per-frame "
                    "positions (no functional groups), so its frames cannot be placed in space")
    else:
        missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
                   if not ds.get(k, None)]
        if missing:
            what = VOLUME_SOP_CLASSES.get(sop, modality or "image")
            raise _Skip(f"is a {what} without {', '.join(missing)}, so it cannot be placed "
                        "in space")
        slices = [
            SliceHeader(
                path=label,
                frame_index=None,
                position_lps=hdr.vector(ds, "ImagePositionPatient", 3),
                orientation=hdr.vector(ds, "ImageOrientationPatient", 6),
                pixel_spacing_mm=hdr.vector(ds, "PixelSpacing", 2),
                slice_thickness_mm=hdr.number(ds, "SliceThickness"),
                rescale_slope=_or(hdr.number(ds, "RescaleSlope"), 1.0),
                rescale_intercept=_or(hdr.number(ds, "RescaleIntercept"), 0.0),
                instance_number=hdr.integer(ds, "InstanceNumber"),
                acquisition_number=hdr.text(ds, "AcquisitionNumber"),
                echo_number=hdr.text(ds, "EchoNumbers"),
                pixel=pixel,
            )
        ]
    for s in slices:
        if not all(np.isfinite(s.position_lps)) or not all(np.isfinite(s.orientation)):
            raise _Skip(f"has a non-finite ImagePositionPatient/Orientation in {s.label}")
        if min(s.pixel_spacing_mm) <= 0:
            raise _Skip(f"has PixelSpacing {s.pixel_spacing_mm}; it must be positive")
    return _FileInfo(
        slices=slices,
        series_uid=hdr.text(ds, "SeriesInstanceUID"),
        study_uid=hdr.text(ds, "StudyInstanceUID"),
        for_uid=hdr.text(ds, "FrameOfReferenceUID"),
        modality=modality,
        series_number=hdr.text(ds, "SeriesNumber"),
        image_type=image_type,
        patient_id=hdr.text(ds, "PatientID"),
        study_date=hdr.text(ds, "StudyDate"),
        series_description=hdr.text(ds, "SeriesDescription"),
        path=label,
    )


def _or(value, default):
    return default if value is None else value


def _metadata(ds) -> ImageMetadata:
    def num(keyword):
        try:
            return hdr.number(ds, keyword)
        except ValueError:
            return None

    return ImageMetadata(
        patient_name=hdr.text(ds, "PatientName"),
        patient_id=hdr.text(ds, "PatientID"),
        patient_birth_date=hdr.text(ds, "PatientBirthDate"),
        patient_sex=hdr.text(ds, "PatientSex"),
        study_date=hdr.text(ds, "StudyDate"),
        study_description=hdr.text(ds, "StudyDescription"),
        study_instance_uid=hdr.text(ds, "StudyInstanceUID"),
        series_instance_uid=hdr.text(ds, "SeriesInstanceUID"),
        series_description=hdr.text(ds, "SeriesDescription"),
        series_number=hdr.text(ds, "SeriesNumber"),
        modality=hdr.text(ds, "Modality"),
        body_part=hdr.text(ds, "BodyPartExamined"),
        manufacturer=hdr.text(ds, "Manufacturer"),
        slice_thickness_mm=num("SliceThickness"),
        kvp=num("KVP"),
        convolution_kernel=hdr.text(ds, "ConvolutionKernel"),
    )


# --- grouping ---------------------------------------------------------------------------


def _stack_key(info: _FileInfo, s: SliceHeader) -> tuple:
    """Everything that must be equal for two slices to share a volume."""
    ori = tuple(round(v, 3) + 0.0 for v in s.orientation)
    spacing = tuple(round(v, 3) for v in s.pixel_spacing_mm)
    identity = (info.series_uid,) if info.series_uid else (
        # An empty UID groups nothing by itself: add what identifies a series.
        "", info.study_uid, info.series_number, info.modality, info.patient_id,
        info.study_date, info.series_description,
    )
    return identity + (info.for_uid, ori, s.pixel.rows, s.pixel.columns, spacing)


def _group(infos: list, skipped: list) -> list:
    groups: dict = defaultdict(list)  # key -> [(info, slice)]
    for info in infos:
        for s in info.slices:
            groups[_stack_key(info, s)].append((info, s))

    groups = _drop_stray_localizers(groups, skipped)
    by_uid: dict = defaultdict(list)
    for key, members in groups.items():
        for part in _split_interleaved(members):
            by_uid[key[:-5]].append((key, part))

    series = []
    for identity, parts in by_uid.items():
        parts.sort(key=lambda kp: (repr(kp[0]), min(_instance(s) for _, s in kp[1])))
        for number, (key, members) in enumerate(parts, start=1):
            try:
                series.append(_make_series(key, members, number, len(parts)))
            except GeometryError as exc:
                for path in sorted({s.path for _, s in members}):
                    skipped.append(SkippedFile(path, f"belongs to a series that cannot form "
                                                     f"a volume: {exc}"))
    series.sort(key=lambda s: (s.metadata.patient_id, s.metadata.study_date,
                               _int_or_big(s.metadata.series_number), s.uid))
    return series


def _instance(s: SliceHeader) -> int:
    return s.instance_number if s.instance_number is not None else 0


def _int_or_big(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1 << 30


def _drop_stray_localizers(groups: dict, skipped: list) -> dict:
    """Skip single slices whose orientation differs from the rest of their series.

    Scouts are often not flagged LOCALIZER but share the series UID of the
    axial stack; they then form a one-slice group of their own orientation.
    A lone single-slice series (one MR slice) is kept: it is the whole input.
    """
    by_identity: dict = defaultdict(list)
    for key in groups:
        by_identity[key[:-4]].append(key)  # identity + frame of reference
    out = {}
    for identity, keys in by_identity.items():
        largest = max(len(groups[k]) for k in keys)
        for key in keys:
            members = groups[key]
            if len(members) == 1 and largest > 1 and len(keys) > 1:
                s = members[0][1]
                skipped.append(SkippedFile(s.path, "is a single slice whose orientation differs "
                                                   "from the rest of its series (a localizer or "
                                                   "scout)"))
                continue
            out[key] = members
    return out


def _split_interleaved(members: list) -> list:
    """Split a group by echo or acquisition number where that separates stacks."""
    def has_repeats(part):
        n = slice_normal(part[0][1].orientation)
        d = np.round([np.dot(s.position_lps, n) for _, s in part], 2)
        return len(np.unique(d)) < len(d)

    if len(members) < 2 or not has_repeats(members):
        return [members]
    for attr in ("echo_number", "acquisition_number"):
        parts: dict = defaultdict(list)
        for m in members:
            parts[getattr(m[1], attr)].append(m)
        if len(parts) > 1 and not any(has_repeats(p) for p in parts.values()):
            return [parts[k] for k in sorted(parts)]
    return [members]


def _make_series(key: tuple, members: list, number: int, n_parts: int) -> Series:
    infos = [info for info, _ in members]
    slices = [s for _, s in members]
    first = infos[0]
    metadata = _metadata(pydicom.dcmread(first.path, stop_before_pixels=True,
                                         defer_size=DEFER_SIZE))
    geometry = analyse_stack(slices)
    warnings = []
    if first.series_uid:
        uid = first.series_uid if n_parts == 1 else f"{first.series_uid}#{number}"
        synthesised = False
    else:
        digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
        uid = f"synth-{digest}" if n_parts == 1 else f"synth-{digest}#{number}"
        synthesised = True
        warnings.append(LoadWarning(
            "empty-uid",
            f"the series has an empty SeriesInstanceUID; it was grouped by frame of reference, "
            f"orientation, size and pixel spacing and given the key {uid} (not a DICOM UID)",
        ))
    if n_parts > 1:
        warnings.append(LoadWarning(
            "inconsistent-header",
            f"series UID {first.series_uid or '(empty)'} holds {n_parts} separate stacks "
            f"(different orientation, size, spacing, echo or acquisition); this is stack "
            f"{number} of {n_parts}",
        ))
    if any("MOSAIC" in info.image_type for info in infos):
        warnings.append(LoadWarning(
            "other",
            "ImageType says MOSAIC: each image may tile several slices (Siemens mosaic); "
            "it is loaded as one 2D image, not split into slices",
        ))
    return Series(
        uid=uid,
        uid_synthesised=synthesised,
        modality=first.modality,
        rows=slices[0].pixel.rows,
        columns=slices[0].pixel.columns,
        description=metadata.series_description,
        frame_of_reference_uid=first.for_uid,
        metadata=metadata,
        slices=tuple(slices),
        geometry=geometry,
        warnings=tuple(warnings),
    )
