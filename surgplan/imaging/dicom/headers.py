"""Plain records of what the header of one DICOM slice (or frame) says.

The index reads these once, without pixel data; geometry, grouping and pixel
decoding then work on them instead of on pydicom datasets, so that a series of
400 slices costs 400 small records, not 400 parsed files held in memory.

All positions and directions are patient LPS millimetres, as DICOM states them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue

#: DICOM tags (as ints) of the pixel data elements; their presence is what
#: makes a file an image.
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass(frozen=True)
class PixelFormat:
    """How the stored pixel values of a file are laid out and encoded.

    Attributes
    ----------
    rows, columns : int
        Image size; ``rows`` counts along the column direction (j), ``columns``
        along the row direction (i).
    bits_allocated, bits_stored : int
        Container width and number of significant bits of a stored value.
    pixel_representation : int
        0 for unsigned, 1 for two's-complement signed stored values.
    photometric : str
        PhotometricInterpretation, e.g. ``MONOCHROME2``.
    samples_per_pixel : int
        1 for grey-scale images.
    transfer_syntax_uid : str
        From the file meta; ``""`` when the file meta does not record it.
    """

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    samples_per_pixel: int
    transfer_syntax_uid: str


@dataclass(frozen=True)
class SliceHeader:
    """One 2D image plane: a single-frame file or one frame of a multi-frame file.

    Attributes
    ----------
    path : str
        The file holding the pixels.
    frame_index : int or None
        0-based frame inside a multi-frame file; ``None`` for a single-frame file.
    position_lps : tuple of float
        ImagePositionPatient: centre of the first transmitted pixel, LPS mm.
    orientation : tuple of float
        ImageOrientationPatient: row direction (3) then column direction (3),
        unit vectors in LPS.
    pixel_spacing_mm : tuple of float
        PixelSpacing as DICOM orders it: (distance between rows, distance
        between columns), i.e. (spacing along j, spacing along i), mm.
    slice_thickness_mm : float or None
        Nominal SliceThickness (mm); never used for spacing when positions exist.
    rescale_slope, rescale_intercept : float
        Modality LUT: ``value = stored * slope + intercept`` (HU for CT).
    instance_number : int or None
        InstanceNumber (or the in-stack position of a frame); tie-breaker only.
    acquisition_number, echo_number : str
        Used to separate interleaved stacks that share a series UID.
    pixel : PixelFormat
        Stored-value layout of the file.
    """

    path: str
    frame_index: Optional[int]
    position_lps: tuple
    orientation: tuple
    pixel_spacing_mm: tuple
    slice_thickness_mm: Optional[float]
    rescale_slope: float
    rescale_intercept: float
    instance_number: Optional[int]
    acquisition_number: str
    echo_number: str
    pixel: PixelFormat

    @property
    def label(self) -> str:
        """The file (and frame) for messages."""
        if self.frame_index is None:
            return self.path
        return f"{self.path} (frame {self.frame_index + 1})"


# --- tolerant header value readers ----------------------------------------------------
# Real headers hold empty values, multi-valued strings where one is expected and
# invalid numbers ('1A' in an IS element).  These helpers return None / a default
# for absent or empty values and raise ValueError (with the keyword) for values
# that are present but unusable, so the caller can name the element in a skip
# reason.


#: VRs whose values are plain ASCII by the standard, so their raw bytes can be
#: used without pydicom's conversion (character sets do not apply to them).
_ASCII_VRS = {"DS", "IS", "CS", "UI", "DA", "TM", "AS", "DT"}
_MISSING = object()


@lru_cache(maxsize=None)
def _tag_and_vr(keyword: str) -> tuple:
    tag = tag_for_keyword(keyword)
    return tag, dictionary_VR(tag)


def _raw_ascii(ds: Any, keyword: str) -> Any:
    """Fast path: the value of an ASCII-VR element straight from its raw bytes.

    Indexing reads ~15 such values from each of hundreds of files; pydicom's
    generic conversion of each costs more than reading the file did.  Returns
    the stripped string, None for an absent element, or ``_MISSING`` when the
    element was already converted or deferred (the caller then uses ``ds.get``).
    """
    tag, vr = _tag_and_vr(keyword)
    if vr not in _ASCII_VRS:
        return _MISSING
    try:
        elem = ds.get_item(tag)
    except (KeyError, AttributeError):
        return None
    if elem is None:
        return None
    if not isinstance(elem, RawDataElement) or elem.value is None:
        return _MISSING
    return elem.value.decode("latin-1").strip(" \x00")


def text(ds: Any, keyword: str, default: str = "") -> str:
    """A header value as stripped text ("" when absent or empty)."""
    raw = _raw_ascii(ds, keyword)
    if raw is not _MISSING:
        return default if raw is None else raw
    value = ds.get(keyword, None)
    if value is None:
        return default
    if isinstance(value, (MultiValue, list, tuple)):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def number(ds: Any, keyword: str) -> Optional[float]:
    """A numeric header value as float, ``None`` when absent or empty."""
    raw = _raw_ascii(ds, keyword)
    if raw is not _MISSING:
        if not raw:
            return None
        first = raw.split("\\")[0].strip()
        try:
            return float(first) if first else None
        except ValueError as exc:
            raise ValueError(f"{keyword} has the invalid value {raw!r}") from exc
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        value = list(value)
        if not value:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{keyword} has the invalid value {value!r}") from exc


def integer(ds: Any, keyword: str) -> Optional[int]:
    """A numeric header value as int, ``None`` when absent or empty."""
    value = number(ds, keyword)
    return None if value is None else int(round(value))


def vector(ds: Any, keyword: str, length: int) -> Optional[tuple]:
    """A multi-valued numeric element as a tuple of ``length`` floats, or None."""
    raw = _raw_ascii(ds, keyword)
    value = ds.get(keyword, None) if raw is _MISSING else (raw.split("\\") if raw else None)
    if value is None or value == "":
        return None
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{keyword} has the invalid value {value!r}") from exc
    if len(values) != length:
        raise ValueError(f"{keyword} has {len(values)} values, expected {length}: {values}")
    return values
