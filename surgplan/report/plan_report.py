"""From a case and a plan to the report: evaluate, draw, lay out; and the metrics CSV.

:func:`build_report` is what ``surgplan report`` and ``surgplan plan --pdf`` run:
it checks that the plan belongs to the images and is complete, evaluates every
trajectory with the planning engine (:func:`surgplan.planning.metrics.evaluate`
on a :class:`~surgplan.planning.context.PlanningContext`), computes the entry risk
map on the skin, renders the pictures offscreen and writes the PDF
(:func:`surgplan.report.pdf.write_report_pdf`) and, when asked, the metrics CSV.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from surgplan.core.atomic import publish_file
from surgplan.core.errors import PlanFileError
from surgplan.core.progress import CancelToken, ProgressCallback, SubProgress, check

#: Columns of the metrics CSV: one row per trajectory and critical structure.
CSV_COLUMNS = (
    "trajectory", "procedure", "level", "side", "tool", "tool_diameter_mm",
    "tool_working_length_mm", "entry_x_mm", "entry_y_mm", "entry_z_mm", "target_x_mm",
    "target_y_mm", "target_z_mm", "depth_mm", "reaches", "midline_distance_mm",
    "caudal_tilt_deg", "medial_tilt_deg", "risk_category", "bone_removed_ml", "kambin_fits",
    "gertzbein_robbins_grade", "structure", "provenance", "assessed", "clearance_mm",
    "margin_mm", "no_go", "contact_probability", "cumulative_risk",
)


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote and measured."""

    pdf: Path
    csv: Optional[Path]
    metrics: tuple
    pages: int


def check_plan_matches(plan, volume, source: str = "the plan") -> None:
    """Refuse a plan made on other images (its coordinates would mean nothing here).

    Raises
    ------
    PlanFileError
        The plan's series or frame of reference differs from the volume's (when both
        are recorded).
    """
    case = plan.case
    md = volume.metadata
    if case.series_uid and md.series_instance_uid and case.series_uid != md.series_instance_uid:
        raise PlanFileError(
            f"{source} was made on series {case.series_uid}, but the images given are series "
            f"{md.series_instance_uid}; open the series the plan was made on."
        )
    for_uid = volume.frame_of_reference_uid
    if case.frame_of_reference_uid and for_uid and case.frame_of_reference_uid != for_uid:
        raise PlanFileError(
            f"{source} is in frame of reference {case.frame_of_reference_uid}, the images in "
            f"{for_uid}; its coordinates do not apply to them."
        )


def evaluate_plan(plan, anatomy, volume, *, context=None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None):
    """The planning context (built unless given) and the metrics of every trajectory."""
    from surgplan.planning.context import PlanningContext
    from surgplan.planning.metrics import evaluate

    ctx = context if context is not None and context.anatomy is anatomy else \
        PlanningContext.build(anatomy, volume, progress=SubProgress(progress, 0, 0.8),
                              cancel=cancel)
    metrics = []
    for t in plan.trajectories:
        check(cancel)
        metrics.append(evaluate(ctx, t))
    return ctx, tuple(metrics)


def skin_risk_map(ctx, trajectory, *, max_triangles: int = 20_000):
    """(skin Mesh, risk per vertex in [0, 1]) for entering anywhere and going to the target.

    The skin is contoured from the body outline pooled to voxels of about 3 mm (a
    picture, not a measurement).  Skin farther from the target than the tool's
    working length cannot be an entry: it gets risk 1 without being evaluated.
    ``(None, None)`` when the anatomy has no body outline.
    """
    import numpy as np

    from surgplan.imaging.meshes import mesh_from_mask
    from surgplan.planning.propose import entry_risk_map

    if ctx.outline is None or not np.any(ctx.outline):
        return None, None
    aff = np.asarray(ctx.anatomy.ijk_to_lps, float)
    step = max(1, int(round(3.0 / float(np.min(np.linalg.norm(aff[:3, :3], axis=0))))))
    pooled = ctx.outline[::step, ::step, ::step]
    paff = aff.copy()
    paff[:3, :3] = aff[:3, :3] * step
    mesh = mesh_from_mask(pooled, paff, "skin", max_triangles=max_triangles)
    if mesh is None:
        return None, None
    v = mesh.vertices_lps.astype(float)
    target = np.asarray(trajectory.target_lps, float)
    near = np.linalg.norm(v - target, axis=1) <= trajectory.tool.working_length_mm + 5.0
    values = np.ones(len(v), np.float32)
    if near.any():
        values[near] = entry_risk_map(
            ctx, trajectory.procedure, target, v[near], level=trajectory.level,
            side=trajectory.side if trajectory.side in ("left", "right") else None,
            tool=trajectory.tool)
    return mesh, values


def write_metrics_csv(path: "os.PathLike[str] | str", metrics: Sequence[object]) -> Path:
    """One row per trajectory and critical structure (:data:`CSV_COLUMNS`), written atomically.

    Holds no patient identity: coordinates are LPS mm of the images.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for m in metrics:
                t = m.trajectory
                ang = m.angles_deg.get("vertebra") or m.angles_deg.get("patient") or {}
                base = [
                    t.name, t.procedure, t.level, t.side, t.tool.name, f"{t.tool.diameter_mm:g}",
                    f"{t.tool.working_length_mm:g}", *(f"{v:.2f}" for v in t.entry_lps),
                    *(f"{v:.2f}" for v in t.target_lps), f"{m.length_mm:.2f}",
                    "yes" if m.reaches else "no", f"{m.midline_distance_mm:.2f}",
                    _num(ang.get("caudal_tilt")), _num(ang.get("medial_tilt")),
                    m.risk.category, f"{sum(m.bone_removed_ml.values()):.3f}",
                    "" if m.kambin is None else ("yes" if m.kambin.fits else "no"),
                    "" if m.pedicle is None else m.pedicle.grade,
                ]
                for s in m.structures:
                    w.writerow(base + [
                        s.name, s.provenance or "", "yes" if s.assessed else "no",
                        _num(s.clearance_mm), _num(s.margin_mm), "yes" if s.hard else "no",
                        _num(s.contact_probability, 4), _num(s.cumulative_risk, 4),
                    ])
        publish_file(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _num(v, n: int = 2) -> str:
    return "" if v is None else f"{float(v):.{n}f}"


def build_report(
    volume,
    anatomy,
    plan,
    pdf_path: "os.PathLike[str] | str",
    *,
    csv_path: "os.PathLike[str] | str | None" = None,
    anonymous: bool = False,
    plan_source: str = "the plan",
    context=None,
    measurements: Sequence[object] = (),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> ReportResult:
    """Evaluate ``plan`` on the case and write the PDF report (and the metrics CSV).

    Parameters
    ----------
    volume : Volume
        The images the plan was made on.
    anatomy : Anatomy
        Their segmentation (same grid).
    plan : Plan
        With at least one trajectory.
    pdf_path : path-like
    csv_path : path-like, optional
        Also write the metrics CSV there.
    anonymous : bool
        Leave the patient's identity, dates, UIDs and paths out of every file.
    plan_source : str
        How to name the plan in messages (its file).
    context : PlanningContext, optional
        Already built for ``anatomy`` (saves rebuilding the distance fields).
    measurements : sequence of Measurement, optional
        The user's distances and angles on these images (LPS mm,
        :mod:`surgplan.planning.measurements`): listed with their level and a
        picture each, and drawn on the slice pictures whose plane holds them.

    Raises
    ------
    PlanFileError
        The plan is incomplete or belongs to other images; nothing is written.
    """
    from surgplan.planning.procedures import PROCEDURES
    from surgplan.report.figures import (anatomy_figures, meshes_for_report,
                                         measurement_figures, trajectory_figures)
    from surgplan.report.pdf import ReportInputs, check_complete, write_report_pdf
    from surgplan.render import ToolGlyph

    if not plan.trajectories:
        check_complete(plan, (), plan_source)
    check_plan_matches(plan, volume, plan_source)
    if tuple(anatomy.shape) != tuple(volume.array.shape):
        raise PlanFileError(f"{plan_source}: the anatomy is not on the grid of the images; "
                            "segment these images again.")
    measurements = tuple(measurements)
    report = progress or (lambda f, m: None)
    ctx, metrics = evaluate_plan(plan, anatomy, volume, context=context,
                                 progress=SubProgress(progress, 0, 0.3), cancel=cancel)
    check_complete(plan, metrics, plan_source)
    report(0.32, "report: surfaces")
    meshes = meshes_for_report(anatomy, progress=SubProgress(progress, 0.32, 0.45), cancel=cancel)
    per: List[list] = []
    glyphs = [ToolGlyph(t.entry_lps, t.target_lps, t.tool.diameter_mm, label=t.name)
              for t in plan.trajectories]
    for n, (t, m) in enumerate(zip(plan.trajectories, metrics)):
        check(cancel)
        report(0.45 + 0.35 * n / len(metrics), f"report: pictures of {t.name}")
        skin, values = skin_risk_map(ctx, t)
        per.append(trajectory_figures(
            volume, anatomy, t.entry_lps, t.target_lps, t.tool.diameter_mm, label=t.name,
            meshes=meshes, others=[g for i, g in enumerate(glyphs) if i != n],
            skin_mesh=skin, skin_values=values, skin_range=(0.0, 1.0),
            measurements=measurements, cancel=cancel))
    focus = plan.trajectories[0].target_lps
    anat_figs = anatomy_figures(volume, anatomy, meshes=meshes, focus_lps=focus,
                                measurements=measurements, cancel=cancel)
    meas_figs = measurement_figures(volume, anatomy, measurements, cancel=cancel) \
        if measurements else []
    inputs = ReportInputs(volume=volume, anatomy=anatomy, plan=plan, metrics=metrics,
                          trajectory_figures=per, anatomy_figures=anat_figs,
                          anonymous=anonymous,
                          procedure_titles={k: p.title for k, p in PROCEDURES.items()},
                          measurements=measurements, measurement_figures=meas_figs)
    pdf = write_report_pdf(pdf_path, inputs, progress=SubProgress(progress, 0.8, 0.97),
                           cancel=cancel)
    csv_out = write_metrics_csv(csv_path, metrics) if csv_path is not None else None
    report(1.0, "report done")
    return ReportResult(pdf, csv_out, metrics, _count_pages(pdf))


def _count_pages(pdf: Path) -> int:
    import re

    data = pdf.read_bytes()
    return len(re.findall(rb"/Type\s*/Page[^s]", data))


def report_proposal(volume, anatomy, context, metrics, pdf_path, *, anonymous: bool = False,
                    csv_path=None, measurements: Sequence[object] = (),
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> ReportResult:
    """The report of one proposed or evaluated trajectory (``surgplan plan --pdf``).

    A plan of that trajectory alone is made on the volume's series and reported
    with :func:`build_report`, reusing the already built planning ``context``.
    """
    from surgplan.planning import CaseReference, Plan

    plan = Plan(CaseReference.from_volume(volume), (metrics.trajectory,))
    return build_report(volume, anatomy, plan, pdf_path, csv_path=csv_path,
                        anonymous=anonymous, context=context, measurements=measurements,
                        progress=progress, cancel=cancel)
