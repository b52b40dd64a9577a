"""Per-frame geometry of Enhanced (multi-frame) CT / MR / PET objects.

An Enhanced image keeps all slices of a stack as frames of one file.  Where a
classic slice has ImagePositionPatient in its top-level dataset, a frame has it
in the *Per-frame Functional Groups Sequence* item for that frame, or, when the
value is the same for every frame, once in the *Shared Functional Groups
Sequence*.  This module turns those groups into one :class:`SliceHeader` per
frame, so that frames are sorted and checked exactly like classic slices.
"""

from __future__ import annotations

from typing import Any, Optional

from surgplan.imaging.dicom import headers as hdr
from surgplan.imaging.dicom.headers import PixelFormat, SliceHeader


def _group_item(frame_groups: Any, shared_groups: Any, sequence: str) -> Optional[Any]:
    """The first item of functional group ``sequence``: per-frame first, then shared.

    The standard allows each macro in either place (never both); looking in the
    per-frame item first and then in the shared item implements that fallback.
    """
    for groups in (frame_groups, shared_groups):
        if groups is None:
            continue
        seq = groups.get(sequence, None)
        if seq:
            return seq[0]
    return None


def frame_headers(ds: Any, path: str, pixel: PixelFormat) -> list:
    """One :class:`SliceHeader` per frame of an Enhanced multi-frame dataset.

    Parameters
    ----------
    ds : pydicom.Dataset
        The header (pixel data need not be loaded).
    path : str
        The file, for messages and later decoding.
    pixel : PixelFormat
        Stored-value layout shared by all frames.

    Returns
    -------
    list of SliceHeader
        In file order (frame 0 first); positions and orientations in LPS mm.

    Raises
    ------
    ValueError
        When a frame has no position, orientation or pixel spacing, naming the
        frame and the missing macro (the index turns it into a skip reason).
    """
    n_frames = hdr.integer(ds, "NumberOfFrames") or 1
    shared_seq = ds.get("SharedFunctionalGroupsSequence", None)
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", None) or []
    if per_frame and len(per_frame) != n_frames:
        raise ValueError(
            f"NumberOfFrames is {n_frames} but the Per-frame Functional Groups "
            f"Sequence has {len(per_frame)} items"
        )
    out = []
    for f in range(n_frames):
        groups = per_frame[f] if per_frame else None
        pos_item = _group_item(groups, shared, "PlanePositionSequence")
        ori_item = _group_item(groups, shared, "PlaneOrientationSequence")
        meas_item = _group_item(groups, shared, "PixelMeasuresSequence")
        pvt_item = _group_item(groups, shared, "PixelValueTransformationSequence")
        content = _group_item(groups, None, "FrameContentSequence")
        mr_echo = _group_item(groups, shared, "MREchoSequence")

        # Top-level fallbacks: Legacy Converted objects and some writers put
        # the classic attributes at the top level as well.
        position = hdr.vector(pos_item, "ImagePositionPatient", 3) if pos_item else None
        orientation = hdr.vector(ori_item, "ImageOrientationPatient", 6) if ori_item else None
        spacing = hdr.vector(meas_item, "PixelSpacing", 2) if meas_item else None
        position = position or hdr.vector(ds, "ImagePositionPatient", 3)
        orientation = orientation or hdr.vector(ds, "ImageOrientationPatient", 6)
        spacing = spacing or hdr.vector(ds, "PixelSpacing", 2)
        missing = [
            name
            for name, value in (
                ("PlanePositionSequence/ImagePositionPatient", position),
                ("PlaneOrientationSequence/ImageOrientationPatient", orientation),
                ("PixelMeasuresSequence/PixelSpacing", spacing),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                f"frame {f + 1} of {n_frames} has no {', '.join(missing)}: "
                "the frame cannot be placed in space"
            )
        thickness = hdr.number(meas_item, "SliceThickness") if meas_item else None
        slope = hdr.number(pvt_item, "RescaleSlope") if pvt_item else None
        intercept = hdr.number(pvt_item, "RescaleIntercept") if pvt_item else None
        if slope is None:
            slope = hdr.number(ds, "RescaleSlope")
        if intercept is None:
            intercept = hdr.number(ds, "RescaleIntercept")
        in_stack = hdr.integer(content, "InStackPositionNumber") if content else None
        acquisition = hdr.text(content, "FrameAcquisitionNumber") if content else ""
        echo = hdr.text(mr_echo, "EffectiveEchoTime") if mr_echo else ""
        out.append(
            SliceHeader(
                path=path,
                frame_index=f,
                position_lps=position,
                orientation=orientation,
                pixel_spacing_mm=spacing,
                slice_thickness_mm=thickness,
                rescale_slope=1.0 if slope is None else slope,
                rescale_intercept=0.0 if intercept is None else intercept,
                instance_number=in_stack if in_stack is not None else f + 1,
                # Frames of one stack share the acquisition in practice, but a
                # different FrameAcquisitionNumber must not split a stack by
                # itself; the index only uses it where stacks overlap.
                acquisition_number=acquisition,
                echo_number=echo,
                pixel=pixel,
            )
        )
    return out
