"""The phantom's ground truth as an :class:`~surgplan.imaging.anatomy.Anatomy`.

The planner, the report and the GUI consume an Anatomy.  Building one from the
phantom's exact labels lets them be tested against known geometry, independent
of how well the segmentation does; comparing ``segment_ct(case.ct)`` with
``truth_anatomy(case)`` measures the segmentation.
"""

from __future__ import annotations

import numpy as np

from surgplan.imaging.anatomy import Anatomy, Structure, VertebraFrame
from surgplan.imaging.phantom import PhantomCase
from surgplan.imaging.structures import VERTEBRA_ORDER, is_vertebra, kind_of

TRUTH_NOTE = "phantom ground truth"


def truth_anatomy(case: PhantomCase) -> Anatomy:
    """An Anatomy holding the phantom's exact labels, parts and vertebra frames.

    Vertebrae get values 1… cranial to caudal in the ``vertebrae`` map; every
    other labelled structure (ribs included, and ``body`` for the soft tissue
    not otherwise named, so that every voxel inside the skin is labelled) keeps
    its phantom label value in the ``structures`` map.
    All provenances are ``"segmented"`` with the note ``"phantom ground truth"``.

    Parameters
    ----------
    case : PhantomCase
        From :func:`surgplan.imaging.phantom.make_phantom`.

    Returns
    -------
    Anatomy
        On ``case.ct``'s grid.
    """
    labels = np.asarray(case.labels)
    shape = labels.shape
    aff = np.asarray(case.ct.ijk_to_lps, float)
    vert = np.zeros(shape, np.uint16)
    struct = np.zeros(shape, np.uint16)
    items = []
    names = dict(case.label_names)
    verts = sorted((n for n in names.values() if is_vertebra(n)), key=VERTEBRA_ORDER.index)
    for value, name in enumerate(verts, start=1):
        m = labels == case.label_value(name)
        vert[m] = value
        lm = case.landmarks.vertebrae.get(name)
        frame = None
        centroid = None
        if lm is not None:
            lr, ap, si = (np.asarray(r, float) for r in lm.frame)
            frame = VertebraFrame(np.asarray(lm.centroid_lps, float), si, ap, lr)
            centroid = np.asarray(lm.centroid_lps, float)
        items.append(Structure(name, value, "vertebrae", "vertebra", "segmented", False,
                               TRUTH_NOTE, centroid, frame))
    for value, name in sorted(names.items()):
        if is_vertebra(name):
            continue
        m = labels == value
        if not m.any():
            continue
        struct[m] = value
        centroid = aff[:3, :3] @ np.argwhere(m).mean(0)[::-1] + aff[:3, 3]
        items.append(Structure(name, int(value), "structures", kind_of(name), "segmented", False,
                               TRUTH_NOTE, centroid))
    parts = np.where(vert > 0, np.asarray(case.parts), 0).astype(np.uint8)
    return Anatomy(shape, aff, vert, struct, tuple(items),
                   ("phantom ground truth: " + ", ".join(verts),), parts)
