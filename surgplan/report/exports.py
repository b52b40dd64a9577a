"""Every export of a case in one folder: label maps, DICOM SEG, meshes, pictures, plan, metrics.

``surgplan export`` runs :func:`export_case`.  What it writes into ``out_dir``:

``labels/vertebrae.nii.gz``, ``labels/structures.nii.gz``, ``labels/labels.json``
    the label maps on the image grid (NIfTI; RAS on disk, as the format requires)
    and the value → name, kind, provenance table;
``segmentation.dcm``
    the DICOM SEG referencing the source series (:mod:`surgplan.report.dicom_seg`);
``meshes/NAME.stl|.ply`` and ``meshes/meshes.json``
    one closed surface per structure in LPS mm (:mod:`surgplan.report.mesh_export`);
``pictures/*.png``
    the report's pictures: the segmentation, and per trajectory of the plan the 3D
    overview, the planes through the tool, the view along it and the entry risk map;
``plan.json``, ``metrics.csv``
    the plan (the planning schema) and its metrics, when a plan is given.

With ``anonymous=True`` nothing written names the patient, the dates, the UIDs or
the input path: the tables leave the source out, the SEG is de-identified (its
references then point at pseudonymous UIDs), the plan's case reference is emptied.
The folder is complete or absent: files go into a private sibling first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional

from surgplan.core.atomic import publish_folder_contents
from surgplan.core.progress import CancelToken, ProgressCallback, SubProgress, check


def write_label_maps(anatomy, volume, out_dir: Path, *, anonymous: bool = False) -> Dict[str, Path]:
    """The label maps as NIfTI and their table (``labels.json``) into ``out_dir``: the
    files of ``surgplan segment`` without its meshes, so that ``read_segmentation``
    (and ``--segmentation DIR``) reads them back."""
    from surgplan.imaging.segmentation_files import LABELS_FILE, write_label_files

    out_dir.mkdir(parents=True, exist_ok=True)
    table = write_label_files(anatomy, volume, out_dir, anonymous=anonymous)
    (out_dir / LABELS_FILE).write_text(json.dumps(table, indent=1))
    written = {name: out_dir / f"{name}.nii.gz" for name in ("vertebrae", "structures", "parts")}
    written["table"] = out_dir / LABELS_FILE
    return written


def anonymous_plan(plan):
    """``plan`` with an empty case reference (no patient ID, UIDs or series description)."""
    from surgplan.planning import CaseReference

    return dataclasses.replace(plan, case=CaseReference())


def export_case(
    volume,
    anatomy,
    out_dir: "os.PathLike[str] | str",
    *,
    nifti: bool = True,
    dicom_seg: bool = False,
    meshes: bool = True,
    pictures: bool = True,
    plan=None,
    source: "os.PathLike[str] | str | None" = None,
    anonymous: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Dict[str, object]:
    """Write the chosen exports of a case into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    volume, anatomy
        The images and their segmentation (same grid).
    out_dir : path-like
        Created; files of the same names in it are replaced once everything is written.
    nifti, dicom_seg, meshes, pictures : bool
        Which exports.
    plan : Plan, optional
        Adds ``plan.json``, ``metrics.csv`` and the trajectory pictures.
    source : path-like, optional
        Where the DICOM series is, for the SEG (default ``volume.source``).
    anonymous : bool
        Nothing written names the patient, dates, UIDs or paths. A DICOM SEG then
        needs an anonymised copy of the images as ``source`` (its headers are already
        pseudonymous and the SEG references that copy's UIDs); identified images are
        refused.

    Returns
    -------
    dict
        What was written, by export (paths).

    Raises
    ------
    DicomImportError
        ``dicom_seg`` for a volume that cannot be referenced (see
        :func:`surgplan.report.dicom_seg.source_datasets`), or with ``anonymous`` for
        images that are not an anonymised copy; checked before anything else is done.
    PlanFileError
        ``plan`` belongs to other images or has no trajectory.
    """
    from surgplan.render import write_png

    out = Path(out_dir)
    if dicom_seg:  # fail before minutes of work
        from surgplan.report.dicom_seg import require_anonymised_source, source_datasets

        headers = source_datasets(volume, source, cancel=cancel)
        if anonymous:  # a SEG must reference UIDs a copy of the images carries
            require_anonymised_source(headers, source or volume.source)
    if plan is not None:
        from surgplan.report.pdf import check_complete
        from surgplan.report.plan_report import check_plan_matches

        if not plan.trajectories:
            check_complete(plan, ())
        check_plan_matches(plan, volume)
    report = progress or (lambda f, m: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    written: Dict[str, object] = {}
    try:
        if nifti:
            report(0.02, "export: label maps")
            written["labels"] = write_label_maps(anatomy, volume, tmp / "labels",
                                                 anonymous=anonymous)
        check(cancel)
        if dicom_seg:
            from surgplan.report.dicom_seg import write_dicom_seg

            report(0.1, "export: DICOM SEG")
            written["dicom_seg"] = write_dicom_seg(
                # anonymous: the source is an anonymised copy (checked above), whose
                # pseudonymous headers the SEG copies so that it overlays that copy
                anatomy, volume, tmp / "segmentation.dcm", source=source,
                progress=SubProgress(progress, 0.1, 0.3), cancel=cancel)
        if meshes:
            from surgplan.report.mesh_export import export_meshes

            written["meshes"] = export_meshes(
                anatomy, tmp / "meshes", source=volume.source, anonymous=anonymous,
                progress=SubProgress(progress, 0.3, 0.6), cancel=cancel)
        metrics = ()
        ctx = None
        if plan is not None:
            from surgplan.planning import save_plan
            from surgplan.report.plan_report import evaluate_plan, write_metrics_csv

            report(0.6, "export: plan metrics")
            ctx, metrics = evaluate_plan(plan, anatomy, volume,
                                         progress=SubProgress(progress, 0.6, 0.75),
                                         cancel=cancel)
            written["plan"] = save_plan(anonymous_plan(plan) if anonymous else plan,
                                        tmp / "plan.json")
            written["metrics"] = write_metrics_csv(tmp / "metrics.csv", metrics)
        if pictures:
            from surgplan.report.figures import (anatomy_figures, meshes_for_report,
                                                 trajectory_figures)
            from surgplan.report.plan_report import skin_risk_map

            report(0.75, "export: pictures")
            (tmp / "pictures").mkdir()
            surfaces = meshes_for_report(anatomy, cancel=cancel)
            pngs = []
            for f in anatomy_figures(volume, anatomy, meshes=surfaces, cancel=cancel):
                pngs.append(write_png(f.rgb, tmp / "pictures" / f"segmentation-{f.key}.png"))
            for n, m in enumerate(metrics, 1):
                check(cancel)
                t = m.trajectory
                skin, values = skin_risk_map(ctx, t)
                for f in trajectory_figures(volume, anatomy, t.entry_lps, t.target_lps,
                                            t.tool.diameter_mm, label=t.name, meshes=surfaces,
                                            skin_mesh=skin, skin_values=values,
                                            skin_range=(0.0, 1.0), cancel=cancel):
                    pngs.append(write_png(f.rgb, tmp / "pictures" / f"trajectory{n}-{f.key}.png"))
            written["pictures"] = pngs
        check(cancel)
        publish_folder_contents(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, "export done")
    return _relocate(written, tmp, out)


def _relocate(obj, old: Path, new: Path):
    """Paths in the result pointed into the private folder: give them their final place."""
    if isinstance(obj, Path):
        try:
            return new / obj.relative_to(old)
        except ValueError:
            return obj
    if isinstance(obj, dict):
        return {k: _relocate(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relocate(v, old, new) for v in obj]
    return obj
