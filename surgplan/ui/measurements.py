"""Distance and angle measurements as values, and their JSON form in case files.

No Qt here: :mod:`surgplan.ui.case_files` saves them headless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Tuple

import numpy as np

from surgplan.core.errors import PlanFileError

#: Points per finished measurement: a distance's two ends; an angle's first arm end,
#: vertex, second arm end.
POINT_COUNT = {"distance": 2, "angle": 3}
FORMAT = "surgplan-measurements"
VERSION = 1


@dataclass(frozen=True)
class Measurement:
    """One finished measurement on the slices.

    Attributes
    ----------
    kind : str
        ``'distance'`` or ``'angle'``.
    points_lps : tuple of (x, y, z)
        Patient LPS millimetres: two ends of a distance, or (arm end, vertex, arm
        end) of an angle.  Lengths and angles are the true 3D values.

    Iterates as ``(kind, [point arrays])``, the pairs the slice scenes draw.
    """

    kind: str
    points_lps: Tuple[Tuple[float, float, float], ...]

    def __post_init__(self):
        if self.kind not in POINT_COUNT:
            raise ValueError(f"measurement kind {self.kind!r}: use 'distance' or 'angle'")
        pts = tuple(tuple(float(c) for c in p) for p in self.points_lps)
        if len(pts) != POINT_COUNT[self.kind] or any(len(p) != 3 for p in pts):
            raise ValueError(f"a {self.kind} needs {POINT_COUNT[self.kind]} LPS points (x, y, z)"
                             f", got {self.points_lps!r}")
        if not all(math.isfinite(c) for p in pts for c in p):
            raise ValueError(f"{self.kind} points must be finite millimetres: {pts!r}")
        object.__setattr__(self, "points_lps", pts)

    @classmethod
    def of(cls, kind: str, points) -> "Measurement":
        """From any sequence of three-vectors (numpy arrays as the views give them)."""
        return cls(kind, tuple(tuple(np.asarray(p, float).tolist()) for p in points))

    def __iter__(self):
        yield self.kind
        yield [np.array(p, float) for p in self.points_lps]

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


def measurements_to_json(items: Iterable[Measurement]) -> dict:
    """The JSON object a case file stores (LPS millimetres)."""
    return {"format": FORMAT, "version": VERSION, "frame": "LPS", "unit": "mm",
            "measurements": [{"kind": m.kind, "points_lps": [list(p) for p in m.points_lps]}
                             for m in items]}


def measurements_from_json(data, source: str = "measurements.json") -> List[Measurement]:
    """Measurements from :func:`measurements_to_json`'s form.

    Raises
    ------
    PlanFileError
        Not that form, a newer version, or a measurement that is not valid; the
        message names ``source``.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PlanFileError(f"{source}: not a SurgPlan measurement list")
    if int(data.get("version", 0)) > VERSION:
        raise PlanFileError(f"{source}: measurements written by a newer SurgPlan (version "
                            f"{data.get('version')}); update SurgPlan to open them")
    out = []
    for n, m in enumerate(data.get("measurements", [])):
        try:
            out.append(Measurement(m["kind"], tuple(tuple(p) for p in m["points_lps"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanFileError(f"{source}: measurement {n + 1} is not valid ({exc}); "
                                "the file is damaged: save the case again") from None
    return out


__all__ = ["Measurement", "measurements_from_json", "measurements_to_json"]
