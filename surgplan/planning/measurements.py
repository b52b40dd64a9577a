"""Distance and angle measurements a user draws on the images, as values (no Qt).

A measurement is part of the case, like the plan: the window draws and edits
them (:mod:`surgplan.ui.measure_controller`), the ``.surgplan`` case file keeps
them (:mod:`surgplan.planning.case_files`, member ``measurements.json``) and the PDF plan
report lists them (:mod:`surgplan.report.pdf`).  Every point is in patient LPS
millimetres; lengths and angles are true 3D values, whatever view they were drawn in.

JSON form (``measurements_to_json``)::

    {"format": "surgplan-measurements", "version": 1, "frame": "LPS", "unit": "mm",
     "measurements": [{"kind": "distance", "points_lps": [[x, y, z], [x, y, z]],
                       "label": "foraminal height", "value": 18.2, "unit": "mm"}, …]}

``label`` is optional (files written before it existed have none); ``value`` and
``unit`` are written for other programs' convenience and recomputed from the points
on reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

import numpy as np

from surgplan.core.errors import PlanFileError

#: Points per finished measurement: a distance's two ends; an angle's first arm end,
#: vertex, second arm end.
POINT_COUNT = {"distance": 2, "angle": 3}
#: Unit of each kind's value.
UNITS = {"distance": "mm", "angle": "°"}
FORMAT = "surgplan-measurements"
VERSION = 1
#: Longest label kept (a caption, not a note).
MAX_LABEL_CHARS = 80


@dataclass(frozen=True)
class Measurement:
    """One finished measurement.

    Attributes
    ----------
    kind : str
        ``'distance'`` or ``'angle'``.
    points_lps : tuple of (x, y, z)
        Patient LPS millimetres: two ends of a distance, or (arm end, vertex, arm
        end) of an angle.  Lengths and angles are the true 3D values.
    label : str
        What was measured, in the user's words (``'foraminal height'``); may be empty.

    Iterates as ``(kind, [point arrays])``, the pairs the slice scenes draw.
    """

    kind: str
    points_lps: Tuple[Tuple[float, float, float], ...]
    label: str = ""

    def __post_init__(self):
        if self.kind not in POINT_COUNT:
            raise ValueError(f"measurement kind {self.kind!r}: use 'distance' or 'angle'")
        try:
            pts = tuple(tuple(float(c) for c in p) for p in self.points_lps)
        except (TypeError, ValueError):
            raise ValueError(f"a {self.kind} needs LPS points (x, y, z) of numbers, got "
                             f"{self.points_lps!r}") from None
        if len(pts) != POINT_COUNT[self.kind] or any(len(p) != 3 for p in pts):
            raise ValueError(f"a {self.kind} needs {POINT_COUNT[self.kind]} LPS points (x, y, z)"
                             f", got {self.points_lps!r}")
        if not all(math.isfinite(c) for p in pts for c in p):
            raise ValueError(f"{self.kind} points must be finite millimetres: {pts!r}")
        if not isinstance(self.label, str):
            raise ValueError(f"a measurement's label must be text, got {self.label!r}")
        label = " ".join(self.label.split())  # one line: it is a caption
        if len(label) > MAX_LABEL_CHARS:
            raise ValueError(f"measurement label of {len(label)} characters: keep it under "
                             f"{MAX_LABEL_CHARS} ({label[:30]!r}…)")
        object.__setattr__(self, "points_lps", pts)
        object.__setattr__(self, "label", label)

    @classmethod
    def of(cls, kind: str, points, label: str = "") -> "Measurement":
        """From any sequence of three-vectors (numpy arrays as the views give them)."""
        return cls(kind, tuple(tuple(np.asarray(p, float).tolist()) for p in points), label)

    def __iter__(self):
        yield self.kind
        yield [np.array(p, float) for p in self.points_lps]

    def with_label(self, label: str) -> "Measurement":
        """The same measurement called ``label``."""
        return Measurement(self.kind, self.points_lps, label)

    @property
    def value(self) -> float:
        """Length (mm) of a distance, or angle (degrees) at the vertex of an angle."""
        pts = [np.asarray(p) for p in self.points_lps]
        if self.kind == "distance":
            return float(np.linalg.norm(pts[1] - pts[0]))
        a, b = pts[0] - pts[1], pts[2] - pts[1]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 or nb == 0:
            return float("nan")
        return float(np.degrees(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))))

    @property
    def unit(self) -> str:
        """``'mm'`` for a distance, ``'°'`` for an angle."""
        return UNITS[self.kind]

    @property
    def value_text(self) -> str:
        """``'18.2 mm'`` or ``'32.0°'`` (``'undefined'`` for an angle with a zero arm)."""
        v = self.value
        if not math.isfinite(v):
            return "undefined (an arm has no length)"
        return f"{v:.1f} mm" if self.kind == "distance" else f"{v:.1f}°"

    @property
    def title(self) -> str:
        """The label, or the kind (``'Distance'``, ``'Angle'``) when there is none."""
        return self.label or self.kind.capitalize()

    @property
    def centre_lps(self) -> np.ndarray:
        """Mean of the points (LPS mm); for an angle the vertex counts like the arm ends."""
        return np.mean(np.asarray(self.points_lps, float), axis=0)


def measurements_to_json(items: Iterable[Measurement]) -> dict:
    """The JSON object a case file stores (LPS millimetres)."""
    out = []
    for m in items:
        d = {"kind": m.kind, "points_lps": [list(p) for p in m.points_lps]}
        if m.label:
            d["label"] = m.label
        v = m.value
        d["value"] = round(v, 3) if math.isfinite(v) else None
        d["unit"] = "mm" if m.kind == "distance" else "deg"
        out.append(d)
    return {"format": FORMAT, "version": VERSION, "frame": "LPS", "unit": "mm",
            "measurements": out}


def measurements_from_json(data, source: str = "measurements.json") -> List[Measurement]:
    """Measurements from :func:`measurements_to_json`'s form (with or without labels).

    Raises
    ------
    PlanFileError
        Not that form, a newer version, or a measurement that is not valid; the
        message names ``source``.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PlanFileError(f"{source}: not a SurgPlan measurement list")
    try:
        version = int(data.get("version", 0))
    except (TypeError, ValueError):
        raise PlanFileError(f"{source}: version {data.get('version')!r} is not a number; "
                            "the file is damaged: save the case again") from None
    if version > VERSION:
        raise PlanFileError(f"{source}: measurements written by a newer SurgPlan (version "
                            f"{data.get('version')}); update SurgPlan to open them")
    items = data.get("measurements", [])
    if not isinstance(items, list):
        raise PlanFileError(f"{source}: 'measurements' is not a list; the file is damaged: "
                            "save the case again")
    out = []
    for n, m in enumerate(items):
        try:
            out.append(Measurement(m["kind"], tuple(tuple(p) for p in m["points_lps"]),
                                   m.get("label", "") or ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanFileError(f"{source}: measurement {n + 1} is not valid ({exc}); "
                                "the file is damaged: save the case again") from None
    return out


# --- where a measurement lies --------------------------------------------------------------
def _vertebra_near(anatomy, p_lps, search_mm: float) -> Optional[str]:
    """The vertebra whose label holds ``p_lps``, else the nearest within ``search_mm``."""
    aff = np.asarray(anatomy.ijk_to_lps, float)
    ijk = np.linalg.solve(aff, np.append(np.asarray(p_lps, float), 1.0))[:3]
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    r = np.ceil(search_mm / spacing).astype(int)
    centre = np.round(ijk).astype(int)  # (i, j, k)
    nk, nj, ni = anatomy.shape
    lo = np.maximum(centre - r, 0)
    hi = np.minimum(centre + r + 1, (ni, nj, nk))
    if np.any(hi <= lo):
        return None
    block = anatomy.vertebrae[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    kk, jj, ii = np.nonzero(block)
    if not len(kk):
        return None
    idx = np.stack([ii + lo[0], jj + lo[1], kk + lo[2]]).astype(float)
    pts = aff[:3, :3] @ idx + aff[:3, 3:4]
    d = np.linalg.norm(pts - np.asarray(p_lps, float)[:, None], axis=0)
    best = int(np.argmin(d))
    if d[best] > search_mm:
        return None
    value = int(block[kk[best], jj[best], ii[best]])
    for s in anatomy.items:
        if s.map == "vertebrae" and int(s.label) == value:
            return s.name
    return None


def measurement_level(anatomy, measurement: Measurement, *, search_mm: float = 12.0) -> str:
    """The vertebra or level a measurement lies at, from the anatomy's vertebra labels.

    Each point is given the vertebra whose label holds it, or the nearest one
    within ``search_mm`` (a point in a disc, a foramen or the canal).  One
    vertebra for every point gives its name (``'L4'``), two neighbours a level
    (``'L4-L5'``), more a range (``'L1 to S1'``: a lordosis angle).  The side is
    added (``'L4-L5 left'``) when every point lies more than 10 mm to one side of
    the vertebrae's centres (a foraminal height).

    Parameters
    ----------
    anatomy : Anatomy
        The case's segmentation (its vertebra labels and centroids, LPS mm).
    measurement : Measurement
    search_mm : float
        How far from a point a vertebra may be and still name it (mm).

    Returns
    -------
    str
        ``''`` when no vertebra is near any point.
    """
    from surgplan.imaging.structures import VERTEBRA_ORDER

    names = []
    for p in measurement.points_lps:
        v = _vertebra_near(anatomy, p, search_mm)
        if v is not None:
            names.append(v)
    if not names:
        return ""
    order = [v for v in VERTEBRA_ORDER if v in set(names)]
    order += sorted(set(names) - set(order))
    if len(order) == 1:
        where = order[0]
    elif len(order) == 2 and _adjacent(order[0], order[1], anatomy):
        where = f"{order[0]}-{order[1]}"
    else:
        where = f"{order[0]} to {order[-1]}"
    # Side: relative to the centres of the vertebrae named (the midline at that level).
    centres = [anatomy.centroid_lps(v) for v in order if v in anatomy.names]
    centres = [c for c in centres if c is not None]
    if centres:
        mid_x = float(np.mean([c[0] for c in centres]))
        dx = np.asarray(measurement.points_lps, float)[:, 0] - mid_x
        if np.all(dx > 10.0):
            where += " left"  # LPS: +x is the patient's left
        elif np.all(dx < -10.0):
            where += " right"
    return where


def _adjacent(a: str, b: str, anatomy) -> bool:
    """True when ``a`` and ``b`` are neighbours in the anatomy's order (or the usual one)."""
    from surgplan.imaging.structures import VERTEBRA_ORDER

    order = [v for v in anatomy.vertebra_names] or list(VERTEBRA_ORDER)
    if a in order and b in order:
        return abs(order.index(a) - order.index(b)) == 1
    return False


__all__ = ["Measurement", "MAX_LABEL_CHARS", "POINT_COUNT", "UNITS", "measurement_level",
           "measurements_from_json", "measurements_to_json"]
