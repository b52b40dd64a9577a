"""T2 MR: vertebral bodies and discs (:mod:`.spine`), canal, sac and roots
(:mod:`.neural`), flow voids of the great vessels (:mod:`.vessels`), put together by
:func:`~surgplan.imaging.segment.mr.pipeline.segment_mr`."""

from surgplan.imaging.segment.mr.pipeline import segment_mr

__all__ = ["segment_mr"]
