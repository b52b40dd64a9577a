"""The plan model: tools, trajectories and the plan of one case.

Immutable, validated values; every point in patient LPS millimetres.  Edits make
new values (``dataclasses.replace`` or :meth:`Plan.with_trajectory`), so the GUI's
undo history is a list of plans.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

SIDES = ("left", "right", "midline")


def _finite(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return v


def as_point(value, what: str) -> Tuple[float, float, float]:
    """Three finite floats (LPS mm) from any sequence; ValueError names ``what``."""
    try:
        vals = [float(v) for v in np.asarray(value, float).ravel()]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be three numbers (LPS mm), got {value!r}") from None
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what} must be three finite numbers (LPS mm), got {value!r}")
    return tuple(vals)


@dataclass(frozen=True)
class Tool:
    """A working cannula, needle or screw.

    Attributes
    ----------
    name : str
        Unique name (``teld-cannula-7.0``).
    diameter_mm : float
        Outer diameter (mm).
    working_length_mm : float
        Longest skin-to-target depth the tool reaches (mm).
    description : str
    source : str
        Where the dimensions come from (catalogue default) or ``"user"``.
    implant_length_mm : float or None
        For a screw: its length (mm); the screw is the last ``implant_length_mm``
        of the trajectory, ending at the target.
    """

    name: str
    diameter_mm: float
    working_length_mm: float
    description: str = ""
    source: str = "user"
    implant_length_mm: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"tool name must be a non-empty text, got {self.name!r}")
        d = _finite(self.diameter_mm, f"tool {self.name!r} diameter_mm")
        if not 0.1 <= d <= 30:
            raise ValueError(f"tool {self.name!r} diameter_mm must be 0.1–30 mm, got {d}")
        w = _finite(self.working_length_mm, f"tool {self.name!r} working_length_mm")
        if not 5 <= w <= 600:
            raise ValueError(f"tool {self.name!r} working_length_mm must be 5–600 mm, got {w}")
        object.__setattr__(self, "diameter_mm", d)
        object.__setattr__(self, "working_length_mm", w)
        if self.implant_length_mm is not None:
            il = _finite(self.implant_length_mm, f"tool {self.name!r} implant_length_mm")
            if not 5 <= il <= 200:
                raise ValueError(
                    f"tool {self.name!r} implant_length_mm must be 5–200 mm, got {il}")
            object.__setattr__(self, "implant_length_mm", il)

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Trajectory:
    """One planned path: from a skin entry to a target, with its procedure and tool.

    Attributes
    ----------
    procedure : str
        Catalogue key (``teld`` …).
    level : str
        ``L4-L5`` for disc procedures, ``L4`` for a pedicle screw.
    side : str
        ``left``, ``right`` or ``midline``.
    tool : Tool
    entry_lps, target_lps : tuple of float
        LPS mm.  They must be at least 1 mm apart.
    notes : str
    name : str
        Label for the user (``"teld L4-L5 left"`` by default).
    """

    procedure: str
    level: str
    side: str
    tool: Tool
    entry_lps: Tuple[float, float, float]
    target_lps: Tuple[float, float, float]
    notes: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        from surgplan.planning.procedures import PROCEDURES

        if self.procedure not in PROCEDURES:
            raise ValueError(f"procedure must be one of {sorted(PROCEDURES)}, "
                             f"got {self.procedure!r}")
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        if not isinstance(self.tool, Tool):
            raise ValueError(f"tool must be a Tool, got {type(self.tool).__name__}")
        if not isinstance(self.level, str) or not self.level:
            raise ValueError(f"level must be text such as 'L4-L5', got {self.level!r}")
        from surgplan.planning.procedures import get_procedure, split_level

        try:
            split_level(get_procedure(self.procedure), self.level)
        except ValueError as exc:
            raise ValueError(f"level: {exc}") from None
        e = as_point(self.entry_lps, "entry_lps")
        t = as_point(self.target_lps, "target_lps")
        if math.dist(e, t) < 1.0:
            raise ValueError(f"entry_lps {e} and target_lps {t} are less than 1 mm apart")
        object.__setattr__(self, "entry_lps", e)
        object.__setattr__(self, "target_lps", t)
        if not self.name:
            object.__setattr__(self, "name", f"{self.procedure} {self.level} {self.side}")

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from entry to target."""
        d = np.subtract(self.target_lps, self.entry_lps)
        return d / np.linalg.norm(d)

    @property
    def length_mm(self) -> float:
        """Entry–target distance (mm)."""
        return math.dist(self.entry_lps, self.target_lps)

    def with_entry(self, entry_lps) -> "Trajectory":
        return dataclasses.replace(self, entry_lps=as_point(entry_lps, "entry_lps"))

    def with_target(self, target_lps) -> "Trajectory":
        return dataclasses.replace(self, target_lps=as_point(target_lps, "target_lps"))


@dataclass(frozen=True)
class CaseReference:
    """Which images a plan belongs to (its coordinates only mean something there).

    Attributes
    ----------
    series_uid : str
        Series Instance UID of the planning volume ('' when not recorded).
    frame_of_reference_uid : str
        Frame of Reference UID ('' when not recorded).
    patient_id, study_uid, description : str
    """

    series_uid: str = ""
    frame_of_reference_uid: str = ""
    patient_id: str = ""
    study_uid: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not isinstance(getattr(self, f.name), str):
                raise ValueError(f"case {f.name} must be text, got {getattr(self, f.name)!r}")

    @classmethod
    def from_volume(cls, volume) -> "CaseReference":
        """The reference of a :class:`~surgplan.imaging.volume.Volume`."""
        md = volume.metadata
        return cls(series_uid=md.series_instance_uid or "",
                   frame_of_reference_uid=volume.frame_of_reference_uid or "",
                   patient_id=md.patient_id or "", study_uid=md.study_instance_uid or "",
                   description=md.series_description or "")


@dataclass(frozen=True)
class Plan:
    """A case reference, one or more trajectories, and notes."""

    case: CaseReference
    trajectories: Tuple[Trajectory, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.case, CaseReference):
            raise ValueError(f"case must be a CaseReference, got {type(self.case).__name__}")
        trs = tuple(self.trajectories)
        for i, t in enumerate(trs):
            if not isinstance(t, Trajectory):
                raise ValueError(f"trajectories[{i}] must be a Trajectory, "
                                 f"got {type(t).__name__}")
        names = [t.name for t in trs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"trajectory names must be unique; repeated: {dup}")
        object.__setattr__(self, "trajectories", trs)

    def with_trajectory(self, trajectory: Trajectory) -> "Plan":
        """A new plan with ``trajectory`` added, or replacing the one of the same name."""
        rest = tuple(t for t in self.trajectories if t.name != trajectory.name)
        if len(rest) < len(self.trajectories):
            out = tuple(trajectory if t.name == trajectory.name else t for t in self.trajectories)
        else:
            out = self.trajectories + (trajectory,)
        return dataclasses.replace(self, trajectories=out)

    def without(self, name: str) -> "Plan":
        """A new plan without the trajectory called ``name`` (KeyError if absent)."""
        if name not in [t.name for t in self.trajectories]:
            raise KeyError(f"no trajectory {name!r} in the plan")
        return dataclasses.replace(
            self, trajectories=tuple(t for t in self.trajectories if t.name != name))
