"""One file for a planned case: the plan JSON and the (edited) segmentation together.

A ``.surgplan`` file is a zip archive::

    manifest.json        {"format": "surgplan-case", "version": 1, "source": study path,
                          "series_uid": …, "selected": index of the edited trajectory}
    plan.json            the plan (surgplan.planning.save_plan format)
    segmentation/        labels.json + label maps (surgplan.imaging.segmentation_files)
    measurements.json    distances and angles drawn on the slices, LPS mm
                         (surgplan.planning.measurements); absent from files written
                         before it existed, which read as having none

The images are not copied into it (they can be large and carry patient data):
reopening needs the study, found at ``source`` or already open.  No Qt here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Tuple

from surgplan.core.errors import PlanFileError

FORMAT = "surgplan-case"
VERSION = 1
SUFFIX = ".surgplan"
MEASUREMENTS = "measurements.json"


def save_case(path, plan, anatomy, volume, *, source: str = "", selected: int = -1,
              measurements=None, progress=None, cancel=None) -> Path:
    """Write ``plan`` and ``anatomy`` (may be None) to ``path`` atomically.

    ``measurements`` (:class:`~surgplan.planning.measurements.Measurement` values, LPS mm)
    are stored when given.  The version stays 1: the member is optional, so older
    SurgPlan versions still open the file (without the measurements).
    """
    from surgplan.planning.measurements import measurements_to_json

    from surgplan.imaging.segmentation_files import write_segmentation
    from surgplan.planning import save_plan

    path = Path(path)
    work = Path(tempfile.mkdtemp(prefix="surgplan-save-"))
    try:
        manifest = {"format": FORMAT, "version": VERSION, "source": str(source),
                    "series_uid": volume.metadata.series_instance_uid if volume is not None else "",
                    "selected": int(selected)}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if plan is not None:
            save_plan(plan, work / "plan.json")
        if measurements is not None:
            (work / MEASUREMENTS).write_text(
                json.dumps(measurements_to_json(measurements), indent=1))
        if anatomy is not None:
            write_segmentation(anatomy, volume, work / "segmentation", meshes=False,
                               progress=progress, cancel=cancel)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or "."))
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(work.rglob("*")):
                    if f.is_file():
                        zf.write(f, f.relative_to(work).as_posix())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def read_manifest(path) -> dict:
    """The manifest of a ``.surgplan`` file (to find its study before reading the rest)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanFileError(f"{path}: not a SurgPlan case file ({exc}); "
                            "open a file saved with File ▸ Save plan") from None
    if manifest.get("format") != FORMAT:
        raise PlanFileError(f"{path}: not a SurgPlan case file (format "
                            f"{manifest.get('format')!r})")
    if int(manifest.get("version", 0)) > VERSION:
        raise PlanFileError(f"{path}: written by a newer SurgPlan (version "
                            f"{manifest.get('version')}); update SurgPlan to open it")
    return manifest


def load_case(path, volume) -> Tuple[dict, Optional[object], Optional[object]]:
    """Read ``(manifest, plan or None, anatomy or None)``; the anatomy on ``volume``'s grid.

    Raises
    ------
    PlanFileError
        Not a case file, a newer version, or a member that does not read.
    """
    from surgplan.imaging.segmentation_files import read_segmentation
    from surgplan.planning import load_plan

    path = Path(path)
    manifest = read_manifest(path)
    work = Path(tempfile.mkdtemp(prefix="surgplan-open-"))
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                p = Path(name)
                if p.is_absolute() or ".." in p.parts:
                    raise PlanFileError(f"{path}: refuses member {name!r} (outside the archive)")
            zf.extractall(work)
        plan = load_plan(work / "plan.json") if (work / "plan.json").is_file() else None
        anatomy = None
        if (work / "segmentation" / "labels.json").is_file():
            anatomy = read_segmentation(work / "segmentation", volume)
        return manifest, plan, anatomy
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_measurements(path) -> list:
    """The measurements kept in a ``.surgplan`` file (``[]`` for files without them).

    Raises
    ------
    PlanFileError
        Not a case file, or its measurements do not read.
    """
    from surgplan.planning.measurements import measurements_from_json

    path = Path(path)
    read_manifest(path)
    with zipfile.ZipFile(path) as zf:
        if MEASUREMENTS not in zf.namelist():
            return []
        try:
            data = json.loads(zf.read(MEASUREMENTS).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanFileError(f"{path}: {MEASUREMENTS} does not read ({exc}); "
                                "the file is damaged: save the case again") from None
    return measurements_from_json(data, f"{path}: {MEASUREMENTS}")
