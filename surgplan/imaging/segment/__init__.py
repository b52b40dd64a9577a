"""Automatic segmentation of the spine (classical SimpleITK / SciPy pipeline).

Public entry points: :func:`segment_ct`, :func:`segment_mr`, and
:func:`segment_volume`, which picks one by the volume's modality.
"""

from __future__ import annotations

from surgplan.imaging.segment.mr import segment_mr
from surgplan.imaging.segment.pipeline import segment_ct

__all__ = ["segment_ct", "segment_mr", "segment_volume"]


def segment_volume(volume, *, progress=None, cancel=None):
    """Segment ``volume`` with the pipeline of its modality (MR → :func:`segment_mr`, else CT).

    A volume with no modality is treated as CT; :func:`segment_ct` then says so
    clearly if the intensities are not Hounsfield units.
    """
    modality = (getattr(volume, "modality", None) or "").upper()
    fn = segment_mr if modality == "MR" else segment_ct
    return fn(volume, progress=progress, cancel=cancel)
