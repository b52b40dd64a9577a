"""Check that a file's pixel data is present and complete, without reading it.

``pydicom.dcmread(fp, stop_before_pixels=True)`` leaves an open file positioned
at the pixel data element.  Its tag and length, compared with the file size,
tell whether the pixels are there and whether the file was cut short; for
compressed data the item headers are walked by seeking.  The index uses this to
skip truncated files up front; the decoder uses it to tell a truncated file
from another decoding failure (pydicom reports truncation in several ways).
"""

from __future__ import annotations

import struct

import pydicom

from surgplan.imaging.dicom.headers import PIXEL_DATA_TAGS

DEFLATED = "1.2.840.10008.1.2.1.99"
_SEQ_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_ITEM_LE = b"\xfe\xff\x00\xe0"
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV",
             b"UV"}


def file_pixel_state(path: str) -> str:
    """``'ok'``, ``'none'`` or ``'truncated: …'`` for the pixel data of a file."""
    import os

    size = os.path.getsize(path)
    with open(path, "rb") as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=1024, force=True)
        meta = getattr(ds, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        return peek_pixel_data(fp, ds, size, ts)


def peek_pixel_data(fp, ds, size: int, ts: str) -> str:
    """Look at the element where reading stopped: 'ok', 'none' or a truncation reason.

    ``dcmread(..., stop_before_pixels=True)`` leaves the file positioned at the
    start of the pixel data element, so its tag and length can be checked
    against the file size without reading the pixels.
    """
    if ts == DEFLATED:
        return "ok"  # the stream position is inside zlib data; decoding will tell
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = ts == "1.2.840.10008.1.2", ts != "1.2.840.10008.1.2.2"
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return "none"
    endian = "<" if little else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | elem) not in PIXEL_DATA_TAGS:
        return "none"
    if implicit:
        length, header_len = struct.unpack(endian + "I", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return "truncated: the file ends inside the pixel data element header"
        length, header_len = struct.unpack(endian + "I", head[8:12])[0], 12
    else:
        length, header_len = struct.unpack(endian + "H", head[6:8])[0], 8
    remaining = size - (start + header_len)
    if length == 0xFFFFFFFF:
        return walk_fragments(fp, start + header_len, size)
    if length == 0:
        return "none"
    if length > remaining:
        return (f"truncated: the pixel data element needs {length} bytes but only "
                f"{remaining} remain in the file")
    return "ok"


def walk_fragments(fp, offset: int, size: int) -> str:
    """Check that encapsulated pixel data is complete by hopping over its items.

    Each item header (8 bytes) gives the item's length, so the walk seeks
    instead of reading pixels; a fragment reaching past the end of the file,
    or a missing sequence delimiter, means the file was cut short.
    """
    while True:
        fp.seek(offset)
        item = fp.read(8)
        if len(item) < 8:
            return ("truncated: the compressed pixel data ends without its sequence "
                    "delimiter (the file was cut short)")
        tag = item[:4]
        if tag == _SEQ_DELIMITER_LE[:4]:
            return "ok"
        if tag != _ITEM_LE:
            return "truncated: the compressed pixel data is malformed (no item tag where expected)"
        length = struct.unpack("<I", item[4:8])[0]
        offset += 8 + length
        if offset > size:
            return (f"truncated: a compressed fragment needs {length} bytes but the file "
                    "ends before that")


