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
from surgplan.imaging.structures import SIDES, VERTEBRA_ORDER, foramen_name, is_vertebra, kind_of

TRUTH_NOTE = "phantom ground truth"
#: Phantom labels a foramen may take over: the unnamed soft tissue and fat around the roots.
_FORAMEN_HOLDS = ("body", "subcutaneous fat")


class _VolumeGrid:
    """(z, y, x) index ↔ LPS mm of a volume's grid, as :func:`foramen_mask` wants it."""

    def __init__(self, ijk_to_lps: np.ndarray):
        self.aff = np.asarray(ijk_to_lps, float)
        self.inv = np.linalg.inv(self.aff)

    def index_to_lps(self, zyx: np.ndarray) -> np.ndarray:
        ijk = np.asarray(zyx, float)[..., ::-1]
        return ijk @ self.aff[:3, :3].T + self.aff[:3, 3]

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        ijk = np.asarray(lps, float) @ self.inv[:3, :3].T + self.inv[:3, 3]
        return ijk[..., ::-1]


def _truth_arch(name: str, lm):
    """The phantom vertebra's exact walls as the segmentation measures them."""
    from surgplan.imaging.segment.parts import ArchGeometry

    lr, ap, si = (np.asarray(r, float) for r in lm.frame)
    frame = VertebraFrame(np.asarray(lm.centroid_lps, float), si, ap, lr)
    canal_v = float((np.asarray(lm.canal_center_lps, float) - frame.origin_lps) @ ap)
    half = 0.5 * float(lm.canal_width_mm)
    band, outer = {}, {}
    for side in SIDES:
        p = lm.pedicles[side]
        w = float((np.asarray(p.isthmus_center_lps, float) - frame.origin_lps) @ si)
        band[side] = (w - 0.5 * p.isthmus_height_mm, w + 0.5 * p.isthmus_height_mm)
        outer[side] = half + float(p.isthmus_width_mm)
    return ArchGeometry(name, frame, np.nan, np.nan, canal_v - 0.5 * lm.canal_ap_mm,
                        canal_v + 0.5 * lm.canal_ap_mm, {s: half for s in SIDES}, band, outer,
                        0.5 * float(lm.body_width_mm), ("exact",))


def truth_foramina(case: PhantomCase, labels: np.ndarray) -> dict:
    """``name → bool mask`` of the phantom's neural foramina, by the segmentation's rule.

    Between consecutive vertebrae on each side: below the upper pedicle and above
    the lower one (their isthmus bands), between the lines of the pedicles' medial
    and lateral walls, from the bodies' posterior wall back to the first bone
    (:func:`surgplan.imaging.segment.neural.foramen_mask`), with the phantom's exact
    walls; only the soft tissue and fat there (never a root, the canal or the sac).
    """
    from surgplan.imaging.segment.neural import adjacent_pairs, foramen_mask

    names = dict(case.label_names)
    lms = case.landmarks.vertebrae
    arches = {n: _truth_arch(n, lm) for n, lm in lms.items()}
    blocked = np.zeros(labels.shape, bool)
    holds = np.zeros(labels.shape, bool)
    for value, name in names.items():
        if is_vertebra(name) or kind_of(name) == "disc":
            blocked |= labels == value
        elif name in _FORAMEN_HOLDS:
            holds |= labels == value
    grid = _VolumeGrid(case.ct.ijk_to_lps)
    out = {}
    for upper, lower in adjacent_pairs(arches):
        for side in SIDES:
            m = foramen_mask(arches[upper], arches[lower], side, grid, labels.shape, blocked)
            m &= holds
            if m.any():
                out[foramen_name(upper, lower, side)] = m
    return out


def truth_anatomy(case: PhantomCase) -> Anatomy:
    """An Anatomy holding the phantom's exact labels, parts and vertebra frames.

    Vertebrae get values 1… cranial to caudal in the ``vertebrae`` map; every
    other labelled structure (ribs included, and ``body`` for the soft tissue
    not otherwise named, so that every voxel inside the skin is labelled) keeps
    its phantom label value in the ``structures`` map.  The neural foramina
    (:func:`truth_foramina`) take the next values, over the soft tissue they hold.
    All provenances are ``"segmented"`` with the note ``"phantom ground truth"``.
    ``root_paths`` holds the phantom's true root centre lines.

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
    value = max(names) if names else 0
    for name, m in truth_foramina(case, labels).items():
        value += 1
        struct[m] = value
        centroid = aff[:3, :3] @ np.argwhere(m).mean(0)[::-1] + aff[:3, 3]
        items.append(Structure(name, value, "structures", "foramen", "segmented", False,
                               TRUTH_NOTE, centroid))
    parts = np.where(vert > 0, np.asarray(case.parts), 0).astype(np.uint8)
    present = {s.name for s in items}
    paths = {n: np.asarray(r.points_lps, float) for n, r in case.landmarks.roots.items()
             if n in present}
    return Anatomy(shape, aff, vert, struct, tuple(items),
                   ("phantom ground truth: " + ", ".join(verts),), parts, paths)
