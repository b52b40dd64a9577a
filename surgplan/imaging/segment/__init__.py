"""Automatic segmentation of the spine (classical SimpleITK / SciPy pipeline).

Public entry point: :func:`segment_ct`.
"""

from surgplan.imaging.segment.pipeline import segment_ct

__all__ = ["segment_ct"]
