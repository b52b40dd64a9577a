"""One entry point from a user's path to volumes: index first, load on demand.

:func:`index_input` lists what is in a folder / zip / DICOMDIR / file — the
series with header-only facts and warnings, the files that were skipped and
why — without decoding pixels.  :func:`load_volume` then loads one series.
NIfTI / NRRD / MHA files appear as a single series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from surgplan.core.errors import DicomImportError, NoVolumeError
from surgplan.core.progress import CancelToken, ProgressCallback, SubProgress
from surgplan.imaging.sources import InputFiles, SkippedFile, open_input
from surgplan.imaging.volume import ImageMetadata, LoadWarning, Volume


@dataclass
class SeriesEntry:
    """What a user sees of one series before loading it.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID, or a stable synthesised key when the files have none.
    modality : str
        ``CT``, ``MR`` … or ``""`` when unknown.
    rows, columns, slices : int
        Image size and the number of slices (frames).
    spacing_mm : tuple of float
        Voxel spacing along x (columns), y (rows) and the slice normal, in mm,
        from positions rather than SliceThickness.
    orientation : tuple of float
        ImageOrientationPatient (row and column direction cosines, LPS).
    metadata : ImageMetadata
    warnings : list of LoadWarning
        Header-level findings (tilt, gaps …); loading may add more.
    """

    uid: str
    modality: str
    rows: int
    columns: int
    slices: int
    spacing_mm: tuple
    orientation: tuple
    description: str
    metadata: ImageMetadata
    warnings: List[LoadWarning]
    load: Callable[..., Volume] = field(repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "uid": self.uid,
            "modality": self.modality,
            "rows": self.rows,
            "columns": self.columns,
            "slices": self.slices,
            "spacing_mm": [round(float(s), 4) for s in self.spacing_mm],
            "orientation": [round(float(o), 5) for o in self.orientation],
            "description": self.description,
            "metadata": self.metadata.as_dict(),
            "warnings": [w.as_dict() for w in self.warnings],
        }


@dataclass
class StudyIndex:
    """The series found behind one user input.  Close it (or use ``with``)."""

    source: str
    series: List[SeriesEntry]
    skipped: List[SkippedFile]
    _inputs: InputFiles = field(repr=False)

    def close(self) -> None:
        self._inputs.close()

    def __enter__(self) -> "StudyIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def default_series(self) -> SeriesEntry:
        """The series a planner opens by default: CT before MR, then the most slices."""
        if not self.series:
            raise NoVolumeError(self.no_volume_message())
        rank = {"CT": 0, "MR": 1}
        return min(self.series, key=lambda s: (rank.get(s.modality, 2), -s.slices, s.uid))

    def find(self, uid: str) -> SeriesEntry:
        for s in self.series:
            if s.uid == uid:
                return s
        known = ", ".join(s.uid for s in self.series) or "none"
        raise DicomImportError(f"{self.source}: no series {uid!r} here (series found: {known}).")

    def no_volume_message(self) -> str:
        lines = [f"{self.source}: no series that forms a 3D volume was found."]
        for sk in self.skipped[:10]:
            lines.append(f"  {sk.path}: {sk.reason}")
        if len(self.skipped) > 10:
            lines.append(f"  … and {len(self.skipped) - 10} more skipped files")
        lines.append(
            "Open the folder of one CT or MR series (or a .zip, DICOMDIR, .nii.gz); "
            "`surgplan inspect PATH` lists what a folder holds."
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "series": [s.as_dict() for s in self.series],
            "skipped": [s.as_dict() for s in self.skipped],
        }


def index_input(
    path: "Path | str",
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> StudyIndex:
    """Index a folder, zip, DICOMDIR or file without decoding pixels.

    Raises
    ------
    InputNotFoundError, UnsafeArchiveError, DicomImportError
        The path is missing or refused.  Unreadable files among readable ones
        are not errors: they are listed in ``skipped``.
    """
    inputs = open_input(path, progress=SubProgress(progress, 0.0, 0.3), cancel=cancel)
    try:
        if inputs.kind == "volume":
            entries = [_volume_file_entry(inputs.files[0])]
            skipped = list(inputs.skipped)
        else:
            from surgplan.imaging.dicom.index import index_files
            from surgplan.imaging.dicom.reader import load_series

            idx = index_files(inputs.files, progress=SubProgress(progress, 0.3, 1.0), cancel=cancel)
            skipped = list(inputs.skipped) + [
                SkippedFile(inputs.display_path(Path(s.path)), s.reason) for s in idx.skipped
            ]
            entries = [_dicom_entry(s, load_series) for s in idx.series]
    except BaseException:
        inputs.close()
        raise
    return StudyIndex(str(path), entries, skipped, inputs)


def load_volume(
    path: "Path | str",
    *,
    series_uid: Optional[str] = None,
    modality: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Volume:
    """Load one series (``series_uid``, or the default one) from a user's path.

    Parameters
    ----------
    path : path-like
        Folder, zip, DICOMDIR, DICOM file or NIfTI / NRRD / MHA file.
    series_uid : str, optional
        Which series; by default CT before MR, then the one with most slices.
    modality : {'CT', 'MR'}, optional
        Overrides the modality of a volume file that does not record it.

    Returns
    -------
    Volume
        With the loader's warnings, including one per skipped file.
    """
    with index_input(path, progress=SubProgress(progress, 0.0, 0.2), cancel=cancel) as study:
        entry = study.find(series_uid) if series_uid else study.default_series()
        vol = entry.load(progress=SubProgress(progress, 0.2, 1.0), cancel=cancel, modality=modality)
        extra = [
            LoadWarning("skipped-file", f"{sk.path}: {sk.reason}") for sk in study.skipped[:50]
        ]
        if len(study.skipped) > 50:
            extra.append(
                LoadWarning("skipped-file", f"… and {len(study.skipped) - 50} more skipped files")
            )
        return vol.with_warnings(*extra) if extra else vol


def _dicom_entry(series, load_series) -> SeriesEntry:
    def load(*, progress=None, cancel=None, modality=None) -> Volume:
        return load_series(series, progress=progress, cancel=cancel)

    geo = series.geometry
    return SeriesEntry(
        uid=series.uid,
        modality=series.modality,
        rows=series.rows,
        columns=series.columns,
        slices=series.num_slices,
        spacing_mm=tuple(geo.spacing_mm),
        orientation=tuple(geo.orientation),
        description=series.description,
        metadata=series.metadata,
        warnings=list(geo.warnings) + list(series.warnings),
        load=load,
    )


def _volume_file_entry(path: Path) -> SeriesEntry:
    """Header-only facts of a NIfTI / NRRD / MHA file."""
    import SimpleITK as sitk

    from surgplan.core.errors import VolumeFileError
    from surgplan.imaging.volume_files import read_volume_file

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise VolumeFileError(
            f"{path}: cannot be read as a NIfTI/NRRD/MHA volume. "
            "Check that the file is complete and not a different format renamed."
        ) from exc
    size = reader.GetSize()
    spacing = reader.GetSpacing()
    direction = reader.GetDirection()
    dim = reader.GetDimension()

    def load(*, progress=None, cancel=None, modality=None) -> Volume:
        if progress:
            progress(0.0, f"reading {path.name}")
        vol = read_volume_file(path, modality=modality)
        if progress:
            progress(1.0, f"read {path.name}")
        return vol

    return SeriesEntry(
        uid=path.name,
        modality="",
        rows=int(size[1]) if dim > 1 else 1,
        columns=int(size[0]),
        slices=int(size[2]) if dim > 2 else 1,
        spacing_mm=tuple(float(s) for s in spacing[:3]),
        orientation=tuple(float(d) for d in (direction[0], direction[3], direction[6],
                                             direction[1], direction[4], direction[7]))
        if dim >= 3
        else (),
        description=path.name,
        metadata=ImageMetadata(series_description=path.name),
        warnings=[],
        load=load,
    )
