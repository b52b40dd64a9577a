"""Plans as versioned JSON files.

Format (``schema_version`` 1)::

    {"schema_version": 1, "generator": "surgplan 0.x",
     "case": {"series_uid": "…", "frame_of_reference_uid": "…", "patient_id": "…",
              "study_uid": "…", "description": "…"},
     "notes": "…",
     "trajectories": [{"name": "…", "procedure": "teld", "level": "L4-L5", "side": "left",
                       "tool": {"name": "…", "diameter_mm": 7.0, "working_length_mm": 175.0,
                                "description": "…", "source": "…", "implant_length_mm": null},
                       "entry_lps": [x, y, z], "target_lps": [x, y, z], "notes": "…"}]}

Loading checks every field and raises :class:`~surgplan.core.errors.PlanFileError`
naming the file and the offending field (``trajectories[0].entry_lps``); a file
written by a newer SurgPlan (higher ``schema_version``) is refused rather than
half-read.  Saving writes a temporary sibling and renames it, so a failed save
never leaves a truncated plan.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Union

from surgplan import __version__
from surgplan.core.errors import PlanFileError
from surgplan.planning.plan import CaseReference, Plan, Tool, Trajectory

SCHEMA_VERSION = 1


def plan_to_dict(plan: Plan) -> dict:
    """The JSON-ready dict of ``plan`` (the file format above)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"surgplan {__version__}",
        "case": {
            "series_uid": plan.case.series_uid,
            "frame_of_reference_uid": plan.case.frame_of_reference_uid,
            "patient_id": plan.case.patient_id,
            "study_uid": plan.case.study_uid,
            "description": plan.case.description,
        },
        "notes": plan.notes,
        "trajectories": [
            {
                "name": t.name, "procedure": t.procedure, "level": t.level, "side": t.side,
                "tool": t.tool.to_dict(), "entry_lps": list(t.entry_lps),
                "target_lps": list(t.target_lps), "notes": t.notes,
            }
            for t in plan.trajectories
        ],
    }


def save_plan(plan: Plan, path: Union[str, Path]) -> Path:
    """Write ``plan`` as JSON to ``path`` (atomically); returns the path."""
    path = Path(path)
    text = json.dumps(plan_to_dict(plan), indent=2)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or "."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _need(obj: dict, key: str, kind, where: str, src: str):
    if not isinstance(obj, dict):
        raise PlanFileError(f"{src}: {where} must be an object")
    if key not in obj:
        raise PlanFileError(f"{src}: field {where}.{key} is missing".replace(": .", ": "))
    val = obj[key]
    if kind is float:
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise PlanFileError(f"{src}: field {where}.{key} must be a number, got {val!r}"
                                .replace(": .", ": "))
        return float(val)
    if not isinstance(val, kind):
        raise PlanFileError(f"{src}: field {where}.{key} must be {kind.__name__}, got {val!r}"
                            .replace(": .", ": "))
    return val


def plan_from_dict(data: dict, source: str = "plan") -> Plan:
    """Build a :class:`Plan` from the dict of a plan file.

    Raises
    ------
    PlanFileError
        A field is missing, of the wrong type or invalid (the message names it), or the
        ``schema_version`` is newer than this SurgPlan reads.
    """
    if not isinstance(data, dict):
        raise PlanFileError(f"{source}: a plan file holds one JSON object, got "
                            f"{type(data).__name__}")
    ver = data.get("schema_version")
    if ver is None and any(isinstance(t, dict) and "length_mm" in t
                           for t in data.get("trajectories") or []):
        raise PlanFileError(
            f"{source}: this holds the metrics written by `surgplan plan --json`, not a plan; "
            "save a plan with `surgplan plan … --save-plan plan.json`")
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise PlanFileError(f"{source}: field schema_version must be an integer, got {ver!r}")
    if ver > SCHEMA_VERSION:
        raise PlanFileError(
            f"{source}: field schema_version is {ver}, newer than this SurgPlan reads "
            f"({SCHEMA_VERSION}); update SurgPlan to open this plan")
    if ver < 1:
        raise PlanFileError(f"{source}: field schema_version must be ≥ 1, got {ver}")
    case = _need(data, "case", dict, "", source)
    try:
        case_ref = CaseReference(**{k: _need(case, k, str, "case", source)
                                    for k in ("series_uid", "frame_of_reference_uid")},
                                 **{k: str(case.get(k, "")) for k in
                                    ("patient_id", "study_uid", "description")})
    except ValueError as exc:
        if isinstance(exc, PlanFileError):
            raise
        raise PlanFileError(f"{source}: field case: {exc}") from None
    trs = _need(data, "trajectories", list, "", source)
    out = []
    for i, t in enumerate(trs):
        where = f"trajectories[{i}]"
        tool_d = _need(t, "tool", dict, where, source)
        tw = f"{where}.tool"
        il = tool_d.get("implant_length_mm")
        try:
            tool = Tool(name=_need(tool_d, "name", str, tw, source),
                        diameter_mm=_need(tool_d, "diameter_mm", float, tw, source),
                        working_length_mm=_need(tool_d, "working_length_mm", float, tw, source),
                        description=str(tool_d.get("description", "")),
                        source=str(tool_d.get("source", "user")),
                        implant_length_mm=None if il is None else float(il))
        except (ValueError, TypeError) as exc:
            if isinstance(exc, PlanFileError):
                raise
            raise PlanFileError(f"{source}: field {tw}: {exc}") from None
        fields = {k: _need(t, k, str, where, source) for k in ("procedure", "level", "side")}
        pts = {}
        for k in ("entry_lps", "target_lps"):
            v = _need(t, k, list, where, source)
            if len(v) != 3 or any(isinstance(a, bool) or not isinstance(a, (int, float))
                                  for a in v):
                raise PlanFileError(f"{source}: field {where}.{k} must be three numbers "
                                    f"(LPS mm), got {v!r}")
            pts[k] = tuple(float(a) for a in v)
        try:
            out.append(Trajectory(tool=tool, notes=str(t.get("notes", "")),
                                  name=str(t.get("name", "")), **fields, **pts))
        except ValueError as exc:
            msg = str(exc)
            field = next((k for k in ("procedure", "side", "level", "entry_lps", "target_lps")
                          if msg.startswith(k)), "")
            raise PlanFileError(f"{source}: field {where}{'.' + field if field else ''}: "
                                f"{msg}") from None
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise PlanFileError(f"{source}: field notes must be text, got {notes!r}")
    try:
        return Plan(case_ref, tuple(out), notes)
    except ValueError as exc:
        raise PlanFileError(f"{source}: field trajectories: {exc}") from None


def load_plan(path: Union[str, Path]) -> Plan:
    """Read a plan file written by :func:`save_plan`.

    Raises
    ------
    PlanFileError
        Not JSON, invalid or newer; the message names the file and the field.
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PlanFileError(f"{path}: not a SurgPlan plan file (not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): "
                            f"{exc.msg}; is this a SurgPlan plan file?") from None
    return plan_from_dict(data, str(path))
