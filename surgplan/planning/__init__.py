"""Trajectory planning and risk: procedures, plans, metrics, proposals, entry maps.

Pure Python (numpy / SciPy), no Qt.  Every point is in patient LPS millimetres.

Public API (names are stable; the GUI and the report call them)::

    from surgplan.planning import (
        PlanningContext, evaluate, propose, entry_risk_map, plan_conflicts,
        Tool, Trajectory, Plan, CaseReference, save_plan, load_plan,
        PROCEDURES, get_procedure, kambin_triangle, pedicle_axis, compute_target)

    ctx = PlanningContext.build(anatomy, volume=None, progress=None, cancel=None)
        # once per Anatomy: signed distance fields (≈1 mm, capped at 30 mm) of every
        # critical structure present, the skin surface (ctx.skin_vertices_lps, (N, 3)),
        # bone-part codes, vertebra frames.  ctx.skin_note says where the skin came from.
    m = evaluate(ctx, trajectory, error_mm=1.5, error_deg=1.5, n_samples=128)
        # -> TrajectoryMetrics (≤ 20 ms): length_mm, reaches, midline_distance_mm,
        # angles_deg {"patient"|"vertebra": {axial, sagittal, coronal, medial_tilt,
        # caudal_tilt}}; the usual-range checks take the medial tilt in the vertebra's
        # frame and the craniocaudal tilt in patient axes, as their sources measured
        # them (procedures.Procedure), structures (StructureRisk: name, provenance, clearance_mm from
        # the tool's surface, cumulative_risk, contact_probability; assessed=False with a
        # note when the structure is not in the anatomy; allowance_mm, the safe zone the
        # tool may enter without harm — 2 mm of the spinal canal for a pedicle screw, whose
        # probability is then that of a deeper breach — and harm=False for the canal, a
        # space whose contents carry the harm: never more than moderate unless breached
        # beyond the allowance), bone_removed_ml {"L5 superior
        # articular process left": ml, …}, kambin (KambinFit) / pedicle (PedicleFit),
        # risk (category infeasible|high|moderate|low, reasons, score); m.to_dict() is
        # the JSON of `surgplan plan --json`.
    proposals = propose(ctx, "teld", "L4-L5", "left", tool=None, count=3)
        # -> [TrajectoryMetrics], best first; raises PlanningError when the level,
        # target or skin is missing (the message says which).
    risk = entry_risk_map(ctx, "teld", target_lps, vertices_lps, level=None, side=None,
                          tool=None)   # -> float32 (N,) in [0, 1]; 1 = infeasible
    conflicts = plan_conflicts(trajectories)   # -> [Conflict(first, second, distance_mm,
                                               #     message)]
    save_plan(plan, path); plan = load_plan(path)   # versioned JSON, PlanFileError

Modules: :mod:`.procedures` (catalogue and sources), :mod:`.plan` (value types),
:mod:`.plan_files`, :mod:`.context`, :mod:`.targets` (targets, Kambin's triangle,
pedicle axes from the anatomy), :mod:`.metrics`, :mod:`.propose`.

Structures missing from the anatomy are never invented: their risk is reported as
not assessed ("dural sac not in the anatomy: its risk is not assessed"), which
keeps a plan from being rated ``low``.  Each structure's provenance (segmented,
modelled, edited) travels with its numbers.
"""

from surgplan.planning.context import PlanningContext
from surgplan.planning.metrics import (KambinFit, PedicleFit, Risk, StructureRisk,
                                       TrajectoryMetrics, evaluate, gertzbein_robbins)
from surgplan.planning.plan import CaseReference, Plan, Tool, Trajectory
from surgplan.planning.plan_files import load_plan, save_plan
from surgplan.planning.procedures import PROCEDURES, Procedure, get_procedure
from surgplan.planning.propose import Conflict, entry_risk_map, plan_conflicts, propose
from surgplan.planning.targets import compute_target, kambin_triangle, pedicle_axis

__all__ = [
    "PlanningContext", "evaluate", "propose", "entry_risk_map", "plan_conflicts", "Conflict",
    "TrajectoryMetrics", "StructureRisk", "KambinFit", "PedicleFit", "Risk",
    "gertzbein_robbins", "Tool", "Trajectory", "Plan", "CaseReference", "save_plan",
    "load_plan", "PROCEDURES", "Procedure", "get_procedure", "compute_target",
    "kambin_triangle", "pedicle_axis",
]
