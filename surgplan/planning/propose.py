"""Automatic proposals, the entry risk map, and conflicts between trajectories.

:func:`entry_risk_map` scores every candidate skin entry for a target at once
(vectorised: candidates × samples along each path × structures) with the closed
form of the contact probability for a Gaussian placement error; :func:`propose`
ranks the reachable skin by that map, evaluates the best few in full
(:func:`~surgplan.planning.metrics.evaluate`), refines around them and returns the
best distinct trajectories.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy.special import ndtr

from surgplan.core.errors import PlanningError
from surgplan.core.progress import CancelToken, check
from surgplan.planning import procedures as P
from surgplan.planning.context import (BONE_ILIUM_LEFT, BONE_ILIUM_RIGHT, BONE_RIB,
                                       BONE_VERTEBRA_OTHER, PlanningContext, apply_affine)
from surgplan.planning.metrics import (CATEGORIES, SOFTNESS_MM, TrajectoryMetrics, danger,
                                       evaluate)
from surgplan.planning.plan import Tool, Trajectory
from surgplan.planning.targets import SIDE_SIGN, compute_target
from surgplan.imaging.structures import PART_NAMES

MAP_STEP_MM = 2.0


def _removable_codes(proc: P.Procedure) -> list:
    """Bone codes of the procedure's own bone work, and of bone whose parts are unknown."""
    keep = set(proc.removable_parts)
    return [c for c, n in PART_NAMES.items()
            if n.removesuffix(" left").removesuffix(" right") in keep] + [BONE_VERTEBRA_OTHER]


def _dot(rows: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Row-wise dot products (N, 3)·(3,) without BLAS (slow for this shape when cores are busy)."""
    return rows[:, 0] * vec[0] + rows[:, 1] * vec[1] + rows[:, 2] * vec[2]


def _bone_hard_codes(proc: P.Procedure, side: str) -> set:
    codes = set()
    for pat in proc.hard_bone:
        n = pat.format(side=side, upper="", lower="")
        if n == "ilium left":
            codes.add(BONE_ILIUM_LEFT)
        elif n == "ilium right":
            codes.add(BONE_ILIUM_RIGHT)
        elif n.startswith("rib"):
            codes.add(BONE_RIB)
    return codes


def entry_risk_map(ctx: PlanningContext, procedure, target_lps, vertices_lps, *,
                   level: Optional[str] = None, side: Optional[str] = None,
                   tool: Optional[Tool] = None, error_mm: float = P.PLACEMENT_ERROR_MM,
                   error_deg: float = P.PLACEMENT_ERROR_DEG) -> np.ndarray:
    """Risk in [0, 1] of entering at each vertex and going straight to ``target_lps``.

    Parameters
    ----------
    ctx : PlanningContext
    procedure : str or Procedure
    target_lps : sequence of 3 float
    vertices_lps : (N, 3) array
        Candidate entries (e.g. the skin mesh's vertices), LPS mm.
    level, side : str, optional
        The planned level and side; taken from the nearest disc/vertebra and the
        target's side of the midline when omitted.
    tool : Tool, optional
        Default: the procedure's first tool.

    Returns
    -------
    numpy.ndarray
        float32 (N,): 1 where the path is infeasible (a no-go structure or blocking
        bone crossed, beyond the tool's reach, a tilt the approach cannot take),
        else ``1 − exp(−score)`` with the score of
        :func:`~surgplan.planning.metrics.evaluate` computed on each path's axis
        (contact probability in closed form, no Monte Carlo).
    """
    proc = P.get_procedure(procedure) if isinstance(procedure, str) else procedure
    target = np.asarray(target_lps, float)
    V = np.asarray(vertices_lps, float).reshape(-1, 3)
    if level is None or side is None:
        lv, sd = _guess_level_side(ctx, proc, target)
        level, side = level or lv, side or sd
    tool = tool or proc.tools[0]
    score, feasible = _map_scores(ctx, proc, level, side, tool, target, V, error_mm, error_deg)
    risk = np.where(feasible, 1.0 - np.exp(-score), 1.0)
    return risk.astype(np.float32)


def _guess_level_side(ctx, proc, target):
    best, bd = None, np.inf
    for s in ctx.anatomy.items:
        if (proc.level_kind == "disc" and s.kind == "disc") or \
                (proc.level_kind == "vertebra" and s.map == "vertebrae"):
            c = s.centroid_lps if s.centroid_lps is not None else ctx.frames.get(s.name)
            if c is None:
                continue
            c = getattr(c, "origin_lps", c)
            dd = float(np.linalg.norm(np.asarray(c) - target))
            if dd < bd:
                best, bd = s.name, dd
    if best is None:
        raise PlanningError("no disc or vertebra in the anatomy to plan at")
    level = best.split(" ", 1)[1] if proc.level_kind == "disc" else best
    upper, lower = P.split_level(proc, level)
    fr = ctx.frames.get(lower) or ctx.frames.get(upper)
    side = "left" if fr is None or (target - fr.origin_lps) @ fr.lr >= 0 else "right"
    return level, side


def _map_scores(ctx, proc, level, side, tool, target, V, error_mm, error_deg,
                chunk: int = 4000):
    """(score, feasible) per candidate entry ``V`` (N, 3), vectorised in chunks of paths."""
    upper, lower = P.split_level(proc, level)
    r = tool.radius_mm
    n = len(V)
    score = np.zeros(n)
    feasible = np.ones(n, bool)
    if n == 0:
        return score, feasible
    fr = ctx.frames.get(lower) or ctx.frames.get(upper)
    lr, ap = (fr.lr, fr.ap) if fr is not None else (np.array([1.0, 0, 0]),
                                                    np.array([0, 1.0, 0]))
    origin = fr.origin_lps if fr is not None else target
    sgn = SIDE_SIGN.get(side, 0.0)
    D = target[None, :] - V
    L = np.linalg.norm(D, axis=1)
    d = D / np.maximum(L, 1e-9)[:, None]
    feasible &= L <= tool.working_length_mm
    u, v = _dot(d, lr), _dot(d, ap)
    med = np.degrees(np.arctan2(np.abs(u), np.abs(v)))
    med = np.where(u * sgn > 0, -med, med) if sgn else med
    feasible &= (med >= (proc.medial_tilt_hard_deg.low or -180)) & \
        (med <= (proc.medial_tilt_hard_deg.high or 180))
    rng = proc.medial_tilt_deg.get(level)
    if rng is not None:
        exc = np.maximum((rng.low if rng.low is not None else -1e9) - med, 0) + \
            np.maximum(med - (rng.high if rng.high is not None else 1e9), 0)
        score += 0.02 * exc
    rng = proc.caudal_tilt_deg.get(level)
    if rng is not None:  # in patient axes, as the usual tilts were measured (procedures.py)
        cau = np.degrees(np.arctan2(-d[:, 2], np.abs(d[:, 1])))
        exc = np.maximum(rng.low - cau, 0) + np.maximum(cau - rng.high, 0)
        score += 0.01 * exc
    rng = proc.midline_mm.get(level)
    if rng is not None:
        mid = np.abs(_dot(V - origin, lr))
        exc = np.maximum(rng.low - mid, 0) + np.maximum(mid - rng.high, 0)
        score += 0.01 * exc
    Lmax = float(min(L.max(), tool.working_length_mm + 1.0))
    ts = np.arange(0.0, Lmax + MAP_STEP_MM, MAP_STEP_MM)
    tilt = math.radians(error_deg)
    hard_codes = _bone_hard_codes(proc, side)
    specs = []
    for cs in proc.critical:
        name = cs.name(upper, lower, side if side in ("left", "right") else "left")
        if name in ctx.fields and name not in [s[1] for s in specs]:
            specs.append((cs, name))
    # paths in anatomy-grid indices: ijk(t) = ijk_target − t · step_ijk (per candidate)
    A = ctx.lps_to_ijk
    tgt_ijk = apply_affine(A, target[None, :])[0]
    dir_ijk = d @ A[:3, :3].T if len(d) < 64 else (
        d[:, 0:1] * A[:3, 0] + d[:, 1:2] * A[:3, 1] + d[:, 2:3] * A[:3, 2])
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        Lc = L[a:b]
        valid = ts[None, :] <= Lc[:, None]
        dj = dir_ijk[a:b].astype(np.float32)
        ijk3 = tgt_ijk.astype(np.float32)[None, None, :] - \
            ts.astype(np.float32)[None, :, None] * dj[:, None, :]
        ijk = ijk3.reshape(-1, 3)
        for cs, name in specs:
            f = ctx.fields[name]
            # only the stretch of each path inside the field's box is sampled (slab test)
            lo, hi = f.box_ijk
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (tgt_ijk[None, :] - lo[None, :]) / dj
                t2 = (tgt_ijk[None, :] - hi[None, :]) / dj
            par = dj == 0
            inside_par = (tgt_ijk >= lo) & (tgt_ijk <= hi)
            t_lo = np.where(par, np.where(inside_par, -np.inf, np.inf), np.minimum(t1, t2))
            t_hi = np.where(par, np.where(inside_par, np.inf, -np.inf), np.maximum(t1, t2))
            tmin, tmax = t_lo.max(1), t_hi.min(1)
            use = valid & (ts[None, :] >= tmin[:, None]) & (ts[None, :] <= tmax[:, None])
            if not use.any():
                continue  # no path comes near: clearance ≥ cap, no danger
            rows, cols = np.nonzero(use)
            vals = f.sample_index(ijk[rows * len(ts) + cols])
            sd = np.full(valid.shape, f.cap_mm, np.float32)
            sd[rows, cols] = vals
            k = np.argmin(sd, axis=1)
            # judged beyond the structure's safe zone, as evaluate does
            c = sd[np.arange(b - a), k] - r + cs.allowance_mm
            # danger is 0 beyond margin + falloff (< cap), so only the sampled stretch counts
            cum = np.bincount(rows, weights=danger(vals - r + cs.allowance_mm, cs.margin_mm),
                              minlength=b - a) / np.maximum(valid.sum(1), 1)
            sig = np.sqrt(error_mm ** 2 + (ts[k] * tilt) ** 2 + SOFTNESS_MM ** 2)
            p = ndtr(-c / sig)
            score[a:b] += cs.severity * (p + 0.5 * danger(c, cs.margin_mm) + 0.5 * cum)
            if cs.hard:
                feasible[a:b] &= c >= 0
        nk, nj, ni = ctx.anatomy.shape
        ii = np.rint(ijk).astype(np.intp)
        inb = ((ii >= 0) & (ii < np.array([ni, nj, nk]))).all(1)
        np.clip(ii, 0, np.array([ni - 1, nj - 1, nk - 1]), out=ii)
        codes = ctx.bone[ii[:, 2], ii[:, 1], ii[:, 0]]
        codes = np.where(valid & inb.reshape(valid.shape), codes.reshape(valid.shape), 0)
        if hard_codes:
            feasible[a:b] &= ~np.isin(codes, list(hard_codes)).any(1)
        if proc.bone_is_obstacle:
            ml_per_sample = MAP_STEP_MM * math.pi * r * r / 1000.0  # on the axis only
            bone = (codes > 0) & (codes < BONE_ILIUM_LEFT)
            other_n = (bone & ~np.isin(codes, _removable_codes(proc))).sum(1)
            score[a:b] += (P.REMOVABLE_BONE_SCORE_PER_ML * (bone.sum(1) - other_n)
                           + P.OTHER_BONE_SCORE_PER_ML * other_n) * ml_per_sample
    return score, feasible


def _candidates(ctx, proc, target, side, tool, fr) -> np.ndarray:
    V = ctx.skin_vertices_lps
    if not len(V):
        raise PlanningError(f"no skin entry can be proposed: {ctx.skin_note}")
    dist = np.linalg.norm(V - target, axis=1)
    keep = dist <= tool.working_length_mm
    if fr is not None:
        keep &= _dot(V - target, fr.ap) > 0  # from behind the target (prone patient)
        sgn = SIDE_SIGN.get(side, 0.0)
        if proc.key in ("teld", "intradiscal"):
            keep &= _dot(V - fr.origin_lps, fr.lr) * sgn > 0
    V = V[keep]
    if not len(V):
        raise PlanningError(f"no skin lies within the {tool.name}'s working length "
                            f"({tool.working_length_mm:g} mm) behind the target")
    return V


def _thin(points: np.ndarray, order: np.ndarray, min_mm: float, count: int) -> List[int]:
    """Indices (in ``order``) of up to ``count`` points at least ``min_mm`` apart."""
    chosen: List[int] = []
    for i in order:
        if all(np.linalg.norm(points[i] - points[j]) >= min_mm for j in chosen):
            chosen.append(int(i))
            if len(chosen) >= count:
                break
    return chosen


def _rank(m: TrajectoryMetrics) -> Tuple[int, float]:
    return CATEGORIES.index(m.risk.category), m.risk.score


def propose(ctx: PlanningContext, procedure, level: str, side: str, tool: Optional[Tool] = None,
            count: int = 3, *, error_mm: float = P.PLACEMENT_ERROR_MM,
            error_deg: float = P.PLACEMENT_ERROR_DEG,
            cancel: Optional[CancelToken] = None) -> List[TrajectoryMetrics]:
    """The ``count`` best trajectories for ``procedure`` at ``level`` and ``side``.

    The target comes from the anatomy (:func:`~surgplan.planning.targets.compute_target`);
    entries are searched on the reachable skin behind it.  Results are sorted best first
    (category, then score) and at least 10 mm apart at the skin.  A proposal that meets
    no hard constraint is still returned, with category ``infeasible`` and its reasons,
    so the user sees why.

    Raises
    ------
    PlanningError
        The level, its target or the skin is not in the anatomy (the message says which).
    """
    proc = P.get_procedure(procedure) if isinstance(procedure, str) else procedure
    tool_given = tool
    if tool is None:
        tool = proc.tools[0]
    upper, lower = P.split_level(proc, level)
    tgt = compute_target(ctx, proc, level, side)
    target = np.asarray(tgt.target_lps, float)
    fr = ctx.frames.get(lower) or ctx.frames.get(upper)
    note = f"target: {tgt.description}"

    def make(entry) -> Trajectory:
        return Trajectory(proc.key, level, side, tool, tuple(map(float, entry)),
                          tuple(map(float, target)), notes=note)

    def ev(entry) -> TrajectoryMetrics:
        return evaluate(ctx, make(entry), error_mm=error_mm, error_deg=error_deg)

    if tgt.direction is not None:
        if proc.key == "pedicle-screw":
            tool, target, why = _screw_for(ctx, upper, side, tool_given)
            if why:
                note = f"{note}; {why}"
        return _propose_along_axis(ctx, tgt, target, ev, count, cancel)
    V = _candidates(ctx, proc, target, side, tool, fr)
    if len(V) > 8000:  # the local refinement below looks at every skin point near the best
        V = V[np.linspace(0, len(V) - 1, 8000).astype(int)]
    score, feasible = _map_scores(ctx, proc, level, side, tool, target, V, error_mm, error_deg)
    check(cancel)
    order = np.lexsort((score, ~feasible))
    first = _thin(V, order, 8.0, 10)
    results = {}
    for i in first:
        results[i] = ev(V[i])
    check(cancel)
    # refine around the best three: neighbouring skin points within 6 mm
    best = sorted(results, key=lambda i: _rank(results[i]))[:3]
    for i in best:
        near = np.nonzero(np.linalg.norm(V - V[i], axis=1) < 6.0)[0]
        near = near[np.argsort(score[near])][:5]
        for j in near:
            if int(j) not in results:
                results[int(j)] = ev(V[j])
        check(cancel)
    ranked = sorted(results, key=lambda i: _rank(results[i]))
    pick = _thin(V, np.array(ranked), 10.0, count)
    out = [results[i] for i in pick]
    if out:
        out[0] = _explain_tilt(proc, level, target, V, score, feasible, out[0], ev)
    return out


def _explain_tilt(proc, level, target, V, score, feasible, best, ev) -> TrajectoryMetrics:
    """``best`` with a note on why it lies outside the usual craniocaudal tilt, if it does.

    A surgeon expects the usual tilt (e.g. ≈ 10° caudal at L4-L5); when the proposal
    departs from it, the best entry within it is evaluated and its first reason given
    (a root in the way, the iliac crest), so the departure is explained, not only flagged.
    Five entries within the usual tilt are evaluated in full (≈ 0.1 s).
    """
    rng = proc.caudal_tilt_deg.get(level)
    if rng is None or rng.contains(best.angles_deg["patient"]["caudal_tilt"]):
        return best
    D = target[None, :] - V
    cau = np.degrees(np.arctan2(-D[:, 2], np.abs(D[:, 1])))  # patient axes, + caudal
    inside = np.ones(len(V), bool)
    if rng.low is not None:
        inside &= cau >= rng.low
    if rng.high is not None:
        inside &= cau <= rng.high
    head = f"the usual craniocaudal tilt at {level} is {rng.text()}° ({rng.source})"
    idx = np.nonzero(inside)[0]
    if not len(idx):
        note = f"{head}: no reachable skin entry behind the target gives it"
    else:
        # the map samples the axis only: evaluate a few in full (cylinder, Monte Carlo)
        order = idx[np.lexsort((score[idx], ~feasible[idx]))]
        alt = min((ev(V[j]) for j in _thin(V, order, 8.0, 5)), key=_rank)
        why = alt.risk.reasons[0] if alt.risk.reasons else "no reason against it"
        note = (f"{head}; the best path within it "
                f"({alt.angles_deg['patient']['caudal_tilt']:.0f}°) is {alt.category}: {why}")
    return dataclasses.replace(best, notes=best.notes + (note,))


def _screw_for(ctx, vertebra, side, given: Optional[Tool]):
    """The screw and its tip, templated on the pedicle as a surgeon does on CT.

    Without ``given``, the size comes from :func:`~surgplan.planning.procedures.screw_size`
    (diameter ≤ 80 % of the isthmus' outer width, length ≈ 80 % of the axis chord).  The
    tip lies the screw's length beyond the bone entry along the pedicle axis (a given
    screw without a length keeps the rule's tip).

    Returns
    -------
    tool : Tool
    target : numpy.ndarray
        The tip (LPS mm).
    note : str
        Why the size is at a limit of the lumbar range, else empty.
    """
    from surgplan.planning.targets import pedicle_axis

    ax = pedicle_axis(ctx, vertebra, side)
    note = ""
    if given is None:
        dia, length, note = P.screw_size(ax["isthmus_width_mm"], ax["chord_mm"])
        tool = Tool(f"screw-{dia:g}x{length:g}", dia, 150.0,
                    f"pedicle screw {dia:g} × {length:g} mm (isthmus "
                    f"{ax['isthmus_width_mm']:.1f} mm, chord {ax['chord_mm']:.0f} mm)",
                    P.SRC_SCREW_SIZE, length)
    else:
        tool = given
    if tool.implant_length_mm is None:
        return tool, np.asarray(ax["target_lps"], float), note
    d = np.asarray(ax["direction"], float)
    return tool, np.asarray(ax["bone_entry_lps"], float) + tool.implant_length_mm * d, note


def _propose_along_axis(ctx, tgt, target, ev, count, cancel) -> List[TrajectoryMetrics]:
    """Screws: the entry is where the pedicle axis (or a small tilt of it) meets the skin."""
    d0 = tgt.direction / np.linalg.norm(tgt.direction)
    from surgplan.planning.metrics import perpendicular_basis, skin_crossing

    e1, e2 = perpendicular_basis(d0)
    out = []
    # the pedicle axis and small tilts of it (medial/lateral up to 8°, cranio-caudal 2°)
    for da, db in [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (4, 0), (-4, 0), (6, 0), (-6, 0),
                   (8, 0), (-8, 0)]:
        d = d0 + math.radians(da) * e1 + math.radians(db) * e2
        d /= np.linalg.norm(d)
        far = target - 300.0 * d
        skin = skin_crossing(ctx, far, target) if ctx.outline is not None else None
        entry = skin if skin is not None else target - 120.0 * d
        out.append(ev(entry))
        check(cancel)
    # a screw is first judged by its breach of the pedicle (Gertzbein–Robbins)
    out.sort(key=lambda m: (m.risk.category == "infeasible",
                            round(m.pedicle.breach_mm, 1) if m.pedicle else 0.0) + _rank(m))
    return out[:count]


# --- conflicts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conflict:
    """Two trajectories that come too close (tool surfaces, mm) or share a skin entry."""

    first: str
    second: str
    distance_mm: float
    message: str

    def to_dict(self) -> dict:
        return {"first": self.first, "second": self.second,
                "distance_mm": round(self.distance_mm, 2), "message": self.message}


def segment_distance(p0, p1, q0, q1) -> float:
    """Shortest distance (mm) between segments p0–p1 and q0–q1."""
    p0, p1, q0, q1 = (np.asarray(x, float) for x in (p0, p1, q0, q1))
    u, v, w0 = p1 - p0, q1 - q0, p0 - q0
    a, b, c, d, e = u @ u, u @ v, v @ v, u @ w0, v @ w0
    den = a * c - b * b
    cands = []
    if den > 1e-12:  # the closest points of the two lines, if both lie on the segments
        s = (b * e - c * d) / den
        t = (a * e - b * d) / den
        if 0 <= s <= 1 and 0 <= t <= 1:
            cands.append(np.linalg.norm(w0 + s * u - t * v))
    # otherwise the minimum is at an end point against the other segment
    for pt, a0, a1 in ((p0, q0, q1), (p1, q0, q1), (q0, p0, p1), (q1, p0, p1)):
        seg = a1 - a0
        tt = np.clip((pt - a0) @ seg / max(seg @ seg, 1e-12), 0, 1)
        cands.append(np.linalg.norm(pt - (a0 + tt * seg)))
    return float(min(cands))


def plan_conflicts(trajectories: Sequence[Trajectory], min_gap_mm: float = 3.0,
                   min_entry_mm: float = 15.0) -> List[Conflict]:
    """Pairs of trajectories whose tools pass within ``min_gap_mm`` of each other.

    The gap is between the tools' surfaces (segment distance minus both radii); two
    entries closer than ``min_entry_mm`` at the skin are reported too (one incision or
    crowded instruments).
    """
    out = []
    trs = list(trajectories)
    for i in range(len(trs)):
        for j in range(i + 1, len(trs)):
            a, b = trs[i], trs[j]
            gap = segment_distance(a.entry_lps, a.target_lps, b.entry_lps, b.target_lps) \
                - a.tool.radius_mm - b.tool.radius_mm
            if gap < min_gap_mm:
                what = "cross" if gap < 0 else "pass within"
                out.append(Conflict(a.name, b.name, gap,
                                    f"{a.name} and {b.name} {what} {max(gap, 0):.1f} mm of "
                                    f"each other (tool surfaces; minimum {min_gap_mm:g} mm)"))
            ed = float(np.linalg.norm(np.subtract(a.entry_lps, b.entry_lps)))
            if ed < min_entry_mm:
                out.append(Conflict(a.name, b.name, ed,
                                    f"{a.name} and {b.name} enter the skin {ed:.1f} mm apart "
                                    f"(under {min_entry_mm:g} mm: one incision or crowded "
                                    "instruments)"))
    return out
