"""Automatic segmentation of the spine (classical SimpleITK / SciPy pipeline).

Public entry points: :func:`segment_ct`, :func:`segment_mr`, and
:func:`segment_volume`, which picks one by the volume's modality.

Layout: the spine steps shared by CT and MR sit here (working grids :mod:`.grid`, the
body outline and the CT-number check :mod:`.body`,
canal track :mod:`.canal`, spine curve :mod:`.spine_curve` and its slice frames
:mod:`.spine_frame`, disc planes :mod:`.discs`, vertebrae :mod:`.vertebrae`, names
:mod:`.naming`, vertebral parts :mod:`.parts`, canal, sac, roots and foramina
:mod:`.neural`), with the CT pipeline in :mod:`.pipeline`; the MR pipeline and its own
steps in :mod:`.mr`; the structures around the spine on CT in :mod:`.around`.
"""

from __future__ import annotations

from surgplan.imaging.segment.mr import segment_mr
from surgplan.imaging.segment.pipeline import segment_ct

__all__ = ["segment_ct", "segment_mr", "segment_volume", "with_modality"]


def with_modality(volume, modality=None, source=""):
    """``volume`` labelled with the modality to segment it as.

    Parameters
    ----------
    volume : Volume
        The loaded image.
    modality : str, optional
        ``"ct"`` or ``"mr"`` as the user said it (``--modality``); overrides the header.
    source : str
        The file or folder it came from, named in the error.

    Returns
    -------
    Volume
        ``volume`` itself, or a copy whose metadata says ``CT`` or ``MR``.

    Raises
    ------
    SegmentationError
        Neither the header nor the user says CT or MR (a NIfTI file, or another
        modality): the message asks for ``--modality`` rather than guessing, since a
        T2 image run through the CT pipeline would find nothing, slowly.
    """
    import dataclasses

    from surgplan.core.errors import SegmentationError

    mod = (modality or volume.modality or "").upper()
    if mod not in ("CT", "MR"):
        raise SegmentationError(
            f"{source or 'the image'}: the modality is "
            f"{'unknown (not recorded)' if not mod else mod}; SurgPlan segments CT and "
            "T2-weighted MR. Say --modality ct if this is a CT in Hounsfield units or "
            "--modality mr for a T2 MR, or give --segmentation DIR."
        )
    if volume.modality == mod:
        return volume
    return volume.replace(metadata=dataclasses.replace(volume.metadata, modality=mod))


def segment_volume(volume, *, progress=None, cancel=None):
    """Segment ``volume`` with the pipeline of its modality (MR → :func:`segment_mr`, else CT).

    A volume with no modality is treated as CT; :func:`segment_ct` then says so
    clearly if the intensities are not Hounsfield units.
    """
    modality = (getattr(volume, "modality", None) or "").upper()
    fn = segment_mr if modality == "MR" else segment_ct
    return fn(volume, progress=progress, cancel=cancel)
