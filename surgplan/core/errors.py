"""The one exception hierarchy of SurgPlan.

Every error a user can meet subclasses :class:`SurgplanError` *and* the built-in
exception it behaves like, so callers may catch either.  Messages say what was
wrong (with the file or value) and what to do about it.
"""

from __future__ import annotations


class SurgplanError(Exception):
    """Base class of every error SurgPlan raises on purpose."""


class InputNotFoundError(SurgplanError, FileNotFoundError):
    """A path given by the user does not exist or holds nothing usable."""


class DicomImportError(SurgplanError, ValueError):
    """A DICOM file or series could not be read or is unusable as a volume."""


class NotDicomError(DicomImportError):
    """A file is not DICOM at all."""


class TruncatedFileError(DicomImportError):
    """A DICOM file ends early (an interrupted copy or transfer)."""


class MissingPixelDataError(DicomImportError):
    """A DICOM image has no pixel data element."""


class UnsupportedCodecError(DicomImportError):
    """Pixel data is compressed with a transfer syntax no installed decoder handles."""


class NoVolumeError(DicomImportError):
    """An input holds files but no series that forms a usable 3D volume."""


class VolumeFileError(SurgplanError, ValueError):
    """A NIfTI / NRRD / MHA file could not be read as a volume."""


class UnsafeArchiveError(SurgplanError, ValueError):
    """An archive was refused: it climbs out of its folder or would unpack too large."""


class GeometryError(SurgplanError, ValueError):
    """Image geometry is inconsistent (e.g. slices with different orientations)."""


class OperationCancelled(SurgplanError):
    """Long work was cancelled by the user; the previous state is intact."""


class SegmentationError(SurgplanError, ValueError):
    """An image cannot be segmented at all (not a 3D CT); partial results are findings."""


class SegmentationFileError(SurgplanError, ValueError):
    """A segmentation folder (``surgplan segment`` output) is incomplete, corrupt or
    belongs to another image."""


class PlanFileError(SurgplanError, ValueError):
    """A plan file is unreadable, invalid or from a newer SurgPlan; names the field."""


class PlanningError(SurgplanError, ValueError):
    """A trajectory cannot be planned on this anatomy (level absent, no target)."""
