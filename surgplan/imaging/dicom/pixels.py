"""Decoding stored pixel values of one slice/frame and converting them to output values.

Decoding is done one plane at a time into a caller-owned, preallocated array,
so that loading a 512×512×400 CT needs the final int16 volume plus a few
plane-sized temporaries — never a float64 copy of the whole volume.

Value conventions
-----------------
* **CT** → int16 Hounsfield units: ``round(stored · RescaleSlope +
  RescaleIntercept)``, clipped to [-32768, 32767] with a ``clipped-values``
  warning if anything falls outside.
* **Other modalities** with the identity rescale (slope 1, intercept 0) keep
  their stored integers: int16 when they fit (signed, or ≤15 stored bits),
  uint16 for full 16-bit unsigned data, uint8 for 8-bit data.
* **Other modalities** with any other rescale (MR with a scale factor, PET
  SUV-like slopes that change per slice) → float32 real-world values, because
  rounding them to integers would destroy small values.
* **MONOCHROME1** (low values shown white).  For CT the rescaled values are
  Hounsfield units, a physical quantity that the display convention does not
  change, so they are kept as they are.  For other modalities, whose values
  have no physical unit, the stored values are inverted within their range so
  that, like everywhere else in SurgPlan, a higher value is brighter.  Both
  cases are reported.

Compressed transfer syntaxes are decoded by pydicom's plugins: RLE natively,
JPEG baseline/extended/lossless and JPEG-LS by pylibjpeg-libjpeg, JPEG 2000 by
pylibjpeg-openjpeg (or Pillow), deflate by zlib.
"""

from __future__ import annotations

import re
import struct
from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from surgplan.core.errors import (
    DicomImportError,
    MissingPixelDataError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedCodecError,
)
from surgplan.imaging.dicom.headers import PixelFormat, SliceHeader
from surgplan.imaging.dicom.pixelcheck import DEFLATED, file_pixel_state

#: What to install when a compressed transfer syntax cannot be decoded.
INSTALL_HINT = (
    "install the decoders with `pip install pylibjpeg pylibjpeg-libjpeg "
    "pylibjpeg-openjpeg` (JPEG, JPEG-LS, JPEG 2000) or convert the files to an "
    "uncompressed transfer syntax (e.g. `gdcmconv --raw`)"
)

HU_MIN, HU_MAX = -32768, 32767


def check_decodable(transfer_syntax_uid: str, label: str) -> None:
    """Fail early, naming the file, if pixel data in this transfer syntax cannot be decoded.

    Parameters
    ----------
    transfer_syntax_uid : str
        The file's TransferSyntaxUID ("" when its meta header lacks one; the
        decoder then infers the encoding, see :func:`decode_stored`).
    label : str
        The file (and frame), for the message.

    Raises
    ------
    UnsupportedCodecError
        Unknown transfer syntax, or a compressed one without an installed decoder.
    """
    if not transfer_syntax_uid:
        return
    uid = UID(transfer_syntax_uid)
    if not uid.is_transfer_syntax:
        raise UnsupportedCodecError(
            f"{label}: transfer syntax {uid} is not one pydicom knows, so its pixel data "
            f"cannot be decoded; convert the file to explicit VR little endian"
        )
    if not uid.is_compressed:
        return  # native (incl. big endian and deflate): pydicom decodes with numpy/zlib
    try:
        decoder = pydicom.pixels.get_decoder(uid)
    except NotImplementedError:
        raise UnsupportedCodecError(
            f"{label}: pixel data is compressed as {uid.name} ({uid}), which no decoder "
            f"available to pydicom supports (video or an unusual codec); convert the "
            f"series to an uncompressed or JPEG transfer syntax before loading"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise UnsupportedCodecError(
            f"{label}: pixel data is compressed as {uid.name} ({uid}) and no installed "
            f"decoder handles it (missing: {missing}); {INSTALL_HINT}"
        )


def decode_stored(header: SliceHeader) -> np.ndarray:
    """Decode the stored values of one plane (no rescale, no inversion).

    Parameters
    ----------
    header : SliceHeader
        The slice or frame to decode.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` integer array of stored values in native byte
        order, with bits above BitsStored cleared (unsigned) or sign-extended
        (signed).

    Raises
    ------
    NotDicomError, TruncatedFileError, MissingPixelDataError, UnsupportedCodecError
        Each naming the file and what to do.
    DicomImportError
        Any other decoding failure, with the decoder's message.
    """
    pix = header.pixel
    check_decodable(pix.transfer_syntax_uid, header.label)
    with decoding_errors(header):
        if pix.transfer_syntax_uid and pix.transfer_syntax_uid != DEFLATED:
            # Reads only this frame's bytes from the file (no dataset copy).
            arr = pydicom.pixels.pixel_array(header.path, index=header.frame_index)
        else:
            arr = _decode_from_dataset(header)
    return _checked(arr, header)


def iter_file_frames(frames: list) -> Iterator[tuple]:
    """Decode several frames of one multi-frame file in a single pass over it.

    Decoding frame by frame with :func:`decode_stored` would parse the file's
    header (with its per-frame functional groups) once per frame; this reads
    it once and yields frames in file order.

    Parameters
    ----------
    frames : list of SliceHeader
        Frames of one file (same ``path``), in any order.

    Yields
    ------
    (SliceHeader, numpy.ndarray)
        Each frame with its stored values, as :func:`decode_stored` returns them.
    """
    by_index = {h.frame_index: h for h in frames}
    first = frames[0]
    check_decodable(first.pixel.transfer_syntax_uid, first.label)
    order = sorted(by_index)
    if not first.pixel.transfer_syntax_uid or first.pixel.transfer_syntax_uid == DEFLATED:
        for f in order:
            yield by_index[f], decode_stored(by_index[f])
        return
    with decoding_errors(first):
        for f, arr in zip(order, pydicom.pixels.iter_pixels(first.path, indices=order)):
            yield by_index[f], _checked(arr, by_index[f])


def _checked(arr: np.ndarray, header: SliceHeader) -> np.ndarray:
    pix = header.pixel
    if arr.ndim != 2 or arr.shape != (pix.rows, pix.columns):
        raise DicomImportError(
            f"{header.label}: decoded pixel array has shape {arr.shape}, expected "
            f"({pix.rows}, {pix.columns}) grey-scale; colour or malformed image"
        )
    return correct_bits(arr, pix)


@contextmanager
def decoding_errors(header: SliceHeader):
    """Turn pydicom's decoding exceptions into SurgPlan errors naming the file."""
    try:
        yield
    except DicomImportError:
        raise
    except FileNotFoundError as exc:
        raise DicomImportError(f"{header.path} has disappeared since it was indexed: {exc}; "
                               "index the folder again") from exc
    except InvalidDicomError as exc:
        raise NotDicomError(f"{header.path} is not a DICOM file: {exc}") from exc
    except (EOFError, struct.error) as exc:
        raise TruncatedFileError(_truncated_message(header, str(exc))) from exc
    except AttributeError as exc:
        if "no 'Pixel Data'" in str(exc) or "no pixel data" in str(exc).lower():
            raise MissingPixelDataError(
                f"{header.label} has no pixel data element: it holds only a header; "
                "re-export the images from the scanner or PACS"
            ) from exc
        raise DicomImportError(f"{header.label}: could not decode pixel data: {exc}") from exc
    except (ValueError, RuntimeError, NotImplementedError, OSError) as exc:
        text = str(exc)
        state = _pixel_state_or_unknown(header.path)
        if state.startswith("truncated"):
            raise TruncatedFileError(_truncated_message(header, state[len("truncated: "):])) \
                from exc
        if re.search(r"less than expected|truncat|end of (the )?file|insufficient", text, re.I):
            raise TruncatedFileError(_truncated_message(header, text)) from exc
        if re.search(r"plugin|missing (required )?dependenc|no (available )?decoder", text, re.I):
            raise UnsupportedCodecError(f"{header.label}: {text}; {INSTALL_HINT}") from exc
        raise DicomImportError(
            f"{header.label}: could not decode pixel data ({type(exc).__name__}: {text}); "
            "the file may be corrupt — try re-exporting it"
        ) from exc


def _truncated_message(header: SliceHeader, detail: str) -> str:
    return (f"{header.label} is truncated ({detail}); the copy or transfer was probably "
            "interrupted — copy the series again from its source")


def _pixel_state_or_unknown(path: str) -> str:
    try:
        return file_pixel_state(path)
    except Exception:  # diagnosis only; the original decoding error is reported
        return "unknown"


def _decode_from_dataset(header: SliceHeader) -> np.ndarray:
    """Decode via a fully read dataset: deflated files, or no TransferSyntaxUID.

    Deflated files must be inflated as a whole, so frame-wise reading from the
    file does not apply.  For a file whose meta header lacks
    TransferSyntaxUID, pydicom still parsed the dataset and knows how it was
    encoded; for native (uncompressed) pixel data that encoding is the transfer
    syntax, so decoding can proceed.  Encapsulated pixel data cannot be guessed.
    """
    ds = pydicom.dcmread(header.path)
    if "PixelData" not in ds:
        raise MissingPixelDataError(
            f"{header.label} has no pixel data element; re-export the images"
        )
    if header.pixel.transfer_syntax_uid:
        return pydicom.pixels.pixel_array(ds, index=header.frame_index)
    elem = ds["PixelData"]
    if elem.is_undefined_length:
        raise UnsupportedCodecError(
            f"{header.label}: the file meta has no TransferSyntaxUID and the pixel data "
            "is compressed, so the codec is unknown; repair the header (e.g. "
            "`dcmodify -i \"(0002,0010)=<uid>\"`) or re-export the file"
        )
    implicit, little = ds.original_encoding
    ds.file_meta.TransferSyntaxUID = (
        pydicom.uid.ImplicitVRLittleEndian if implicit
        else pydicom.uid.ExplicitVRLittleEndian if little
        else pydicom.uid.ExplicitVRBigEndian
    )
    return pydicom.pixels.pixel_array(ds, index=header.frame_index)


def correct_bits(arr: np.ndarray, pix: PixelFormat) -> np.ndarray:
    """Apply BitsStored and PixelRepresentation to raw decoded values.

    Bits above BitsStored may hold overlay bits or garbage; they are cleared
    for unsigned data and replaced by the sign bit for signed data.  pydicom
    already does this for most syntaxes; doing it again is cheap and makes the
    result independent of the decoder plugin.
    """
    work = arr.astype(np.int64 if pix.bits_allocated > 16 else np.int32, copy=False)
    bits = pix.bits_stored
    if 0 < bits < pix.bits_allocated:
        work = work & ((1 << bits) - 1)
        if pix.pixel_representation == 1:
            sign = 1 << (bits - 1)
            work = (work ^ sign) - sign
    return work


def output_dtype(slices: list, modality: str) -> np.dtype:
    """The dtype a series loads to (see the module docstring for the rules).

    Parameters
    ----------
    slices : list of SliceHeader
        The slices of the series (their rescale and pixel formats are used).
    modality : str
        DICOM Modality.
    """
    if is_ct(modality):
        return np.dtype(np.int16)
    identity = all(s.rescale_slope == 1.0 and s.rescale_intercept == 0.0 for s in slices)
    if not identity:
        return np.dtype(np.float32)
    pix = slices[0].pixel
    if pix.bits_allocated <= 8:
        return np.dtype(np.int8 if pix.pixel_representation == 1 else np.uint8)
    if pix.bits_allocated <= 16:
        if pix.pixel_representation == 1 or pix.bits_stored <= 15:
            return np.dtype(np.int16)
        return np.dtype(np.uint16)
    return np.dtype(np.float32)


def is_ct(modality: str) -> bool:
    """True for CT, whose values are Hounsfield units after rescale."""
    return modality.upper() == "CT"


def stored_to_values(
    stored: np.ndarray,
    header: SliceHeader,
    dtype: np.dtype,
    *,
    invert_monochrome1: bool,
    out: Optional[np.ndarray] = None,
) -> tuple:
    """Rescale (and possibly invert) one plane of stored values into ``dtype``.

    Parameters
    ----------
    stored : numpy.ndarray
        Output of :func:`decode_stored` (int32/int64).
    header : SliceHeader
        Gives slope, intercept and the pixel format.
    dtype : numpy.dtype
        Target type from :func:`output_dtype`.
    invert_monochrome1 : bool
        Invert MONOCHROME1 stored values (not for CT; see module docstring).
    out : numpy.ndarray, optional
        Plane to write into (e.g. ``volume[k]``); allocated if omitted.

    Returns
    -------
    (numpy.ndarray, int)
        The plane and how many values had to be clipped to fit ``dtype``.
    """
    pix = header.pixel
    if invert_monochrome1 and pix.photometric == "MONOCHROME1":
        bits = pix.bits_stored or pix.bits_allocated
        if pix.pixel_representation == 1:
            stored = -1 - stored  # maps [-2^(b-1), 2^(b-1)-1] onto itself, reversed
        else:
            stored = ((1 << bits) - 1) - stored
    slope, intercept = header.rescale_slope, header.rescale_intercept
    if out is None:
        out = np.empty(stored.shape, dtype)
    if dtype.kind == "f":
        np.multiply(stored, slope, out=out, casting="unsafe")
        out += np.asarray(intercept, dtype)
        return out, 0
    if slope == 1.0 and float(intercept).is_integer():
        values = stored + int(intercept)
    else:
        # float64 per plane only (2 MB for 512²): exact for 16-bit stored values.
        values = np.rint(stored * slope + intercept)
    info = np.iinfo(dtype)
    lo, hi = values.min(), values.max()
    clipped = 0
    if lo < info.min or hi > info.max:
        clipped = int(np.count_nonzero((values < info.min) | (values > info.max)))
        values = np.clip(values, info.min, info.max)
    out[...] = values
    return out, clipped
