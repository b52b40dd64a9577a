"""Metrics of one trajectory: :func:`evaluate` and the values it returns.

All numbers come from sampling the context's distance fields along the tool
(:mod:`surgplan.planning.context`):

* **clearance** of a structure: the smallest signed distance from the tool's
  *surface* (axis distance minus the tool radius) over the path from the skin to
  the target; negative means the tool cuts into it.
* **cumulative risk**: the mean along the path of a danger function that is 1
  within the structure's margin and falls linearly to 0 at ``margin + 10 mm``
  (Sparks 2017, Essert 2012 in DOMAIN.md).
* **contact probability** under placement error: the tip is displaced in the plane
  across the tool (isotropic Gaussian, ``error_mm`` per axis) and the direction tilted
  (``error_deg`` per axis) about the target; for each of ``n_samples`` fixed
  perturbations (common random numbers, so the estimate moves smoothly with the
  entry) the perturbed tool's clearance ``c`` counts as ``Φ(−c / softness_mm)``.
* **bone in the way**: the tool's cylinder is sampled on discs (3 equal-area rings ×
  12 angles every 0.5 mm) and each sample's bone code counted (ml per part).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

import numpy as np
from scipy.special import ndtr

from surgplan.planning import procedures as P
from surgplan.planning.context import (BONE_ILIUM_LEFT, BONE_ILIUM_RIGHT, BONE_NAMES, BONE_RIB,
                                       BONE_VERTEBRA_OTHER, PlanningContext, apply_affine)
from surgplan.planning.plan import Trajectory

CATEGORIES = ("low", "moderate", "high", "infeasible")
#: Danger falls from 1 at the margin to 0 this far beyond it (mm).
FALLOFF_MM = 10.0
STEP_MM = 0.5
MC_STEP_MM = 1.0
SOFTNESS_MM = 0.25


@dataclass(frozen=True)
class StructureRisk:
    """The risk one critical structure carries for a trajectory.

    ``clearance_mm`` is from the tool's surface; ``far`` is True when the structure lies
    beyond the distance field's reach (30 mm from the axis): the clearance is then at
    least the value given;
    ``contact_probability`` in [0, 1]; ``assessed`` False when the structure is
    not in the anatomy (then the numbers are None and ``note`` says so).
    ``allowance_mm`` is the structure's safe zone (the procedure's
    :class:`~surgplan.planning.procedures.CriticalStructure`): the tool may enter it that
    deep without harm, and ``contact_probability`` is then the probability of entering
    deeper; ``harm`` False for a space that only holds the harmful structures.
    """

    name: str
    provenance: Optional[str]
    assessed: bool
    clearance_mm: Optional[float]
    margin_mm: float
    hard: bool
    cumulative_risk: Optional[float]
    contact_probability: Optional[float]
    closest_lps: Optional[Tuple[float, float, float]]
    note: str = ""
    far: bool = False
    allowance_mm: float = 0.0
    harm: bool = True

    @property
    def breach_clearance_mm(self) -> Optional[float]:
        """Clearance less the allowance: negative when the tool enters beyond the safe zone."""
        return None if self.clearance_mm is None else self.clearance_mm + self.allowance_mm

    def to_dict(self) -> dict:
        r = (lambda x, n=3: None if x is None else round(float(x), n))
        return {"name": self.name, "provenance": self.provenance, "assessed": self.assessed,
                "clearance_mm": r(self.clearance_mm, 2), "far": self.far,
                "margin_mm": self.margin_mm, "allowance_mm": self.allowance_mm,
                "harm": self.harm,
                "hard": self.hard, "cumulative_risk": r(self.cumulative_risk),
                "contact_probability": r(self.contact_probability, 4),
                "closest_lps": None if self.closest_lps is None else
                [round(v, 2) for v in self.closest_lps], "note": self.note}


@dataclass(frozen=True)
class KambinFit:
    """Kambin's triangle at the trajectory's level and side, and whether the tool fits."""

    triangle: object  # targets.KambinTriangle
    tool_diameter_mm: float
    fits: bool
    crossing_lps: Optional[Tuple[float, float, float]]
    passes_inside: Optional[bool]

    def to_dict(self) -> dict:
        d = self.triangle.to_dict()
        d.update(tool_diameter_mm=self.tool_diameter_mm, fits=self.fits,
                 crossing_lps=None if self.crossing_lps is None else
                 [round(v, 2) for v in self.crossing_lps],
                 passes_inside=self.passes_inside)
        return d


@dataclass(frozen=True)
class PedicleFit:
    """A pedicle screw against its pedicle.

    ``breach_mm`` is how far the screw's surface leaves the vertebra past its first
    5 mm in bone; ``grade`` the Gertzbein–Robbins grade it predicts from the breach less
    half a voxel (the label map's uncertainty); shares sum to 1.
    """

    vertebra: str
    side: str
    isthmus_width_mm: float
    screw_diameter_mm: float
    fits: bool
    breach_mm: float
    grade: str
    cortical_share: float
    cancellous_share: float
    soft_share: float
    hu_source: str

    def to_dict(self) -> dict:
        # a width that could not be measured is NaN here and null in JSON (NaN is not JSON)
        return {k: ((round(v, 3) if math.isfinite(v) else None) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Risk:
    """The overall category, the reasons that drive it (worst first) and a ranking score."""

    category: str
    reasons: Tuple[str, ...]
    score: float


@dataclass(frozen=True)
class TrajectoryMetrics:
    """Everything measured on one trajectory (see the module docstring)."""

    trajectory: Trajectory
    skin_entry_lps: Optional[Tuple[float, float, float]]
    length_mm: float
    reaches: bool
    midline_distance_mm: float
    angles_deg: Mapping[str, Mapping[str, float]]
    structures: Tuple[StructureRisk, ...]
    bone_removed_ml: Mapping[str, float]
    kambin: Optional[KambinFit]
    kambin_note: str
    pedicle: Optional[PedicleFit]
    risk: Risk
    notes: Tuple[str, ...] = ()

    @property
    def category(self) -> str:
        return self.risk.category

    def structure(self, name: str) -> StructureRisk:
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(f"{name!r} is not among the critical structures of this trajectory")

    def to_dict(self) -> dict:
        t = self.trajectory
        return {
            "name": t.name, "procedure": t.procedure, "level": t.level, "side": t.side,
            "tool": t.tool.to_dict(),
            "entry_lps": [round(v, 2) for v in t.entry_lps],
            "target_lps": [round(v, 2) for v in t.target_lps],
            "skin_entry_lps": None if self.skin_entry_lps is None else
            [round(v, 2) for v in self.skin_entry_lps],
            "length_mm": round(self.length_mm, 2), "reaches": self.reaches,
            "midline_distance_mm": round(self.midline_distance_mm, 2),
            "angles_deg": {k: {a: round(b, 2) for a, b in v.items()}
                           for k, v in self.angles_deg.items()},
            "bone_removed_ml": {k: round(v, 3) for k, v in self.bone_removed_ml.items()},
            "kambin": None if self.kambin is None else self.kambin.to_dict(),
            "kambin_note": self.kambin_note,
            "pedicle": None if self.pedicle is None else self.pedicle.to_dict(),
            "risk": {"category": self.risk.category, "reasons": list(self.risk.reasons),
                     "score": round(self.risk.score, 4),
                     "structures": [s.to_dict() for s in self.structures]},
            "notes": list(self.notes),
        }


# --- geometry helpers -----------------------------------------------------------------------
def perpendicular_basis(d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ⟂ ``d`` and each other, varying smoothly with ``d``."""
    ref = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(d, ref)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(d, e1)


def line_angles_deg(direction: np.ndarray, lr: np.ndarray, ap: np.ndarray, si: np.ndarray,
                    side_sign: float) -> dict:
    """Angles of a tool direction in a frame (``lr`` left, ``ap`` posterior, ``si`` superior).

    ``axial``/``sagittal``/``coronal``: angle between the tool and that plane.
    ``medial_tilt``: in the axial projection, angle from the sagittal plane, positive
    when the tool points toward the midline from the planned side.
    ``caudal_tilt``: in the sagittal projection, angle from the axial plane, positive
    when the tool points caudally (the C-arm's cranio-caudal angle).
    """
    d = direction / np.linalg.norm(direction)
    u, v, w = d @ lr, d @ ap, d @ si
    deg = math.degrees
    out = {"axial": deg(math.asin(min(1.0, abs(w)))),
           "sagittal": deg(math.asin(min(1.0, abs(u)))),
           "coronal": deg(math.asin(min(1.0, abs(v))))}
    med = deg(math.atan2(abs(u), abs(v)))
    if side_sign != 0 and u * side_sign > 0:  # heading away from the midline
        med = -med
    out["medial_tilt"] = med
    out["caudal_tilt"] = deg(math.atan2(-w, abs(v)))
    return out


# --- the contact-probability sampler ------------------------------------------------------------
_CRN: dict = {}


def _crn(n: int) -> np.ndarray:
    """Fixed standard normals (n, 4): tip offset (2) and tilt (2); common to every call."""
    if n not in _CRN:
        _CRN[n] = np.random.default_rng(20240101).standard_normal((n, 4))
    return _CRN[n]


def contact_probabilities(fields: dict, target: np.ndarray, direction: np.ndarray,
                          length_mm: float, radius_mm: float, error_mm: float, error_deg: float,
                          n_samples: int = 128, softness_mm: float = SOFTNESS_MM,
                          step_mm: float = MC_STEP_MM,
                          lps_to_ijk: Optional[np.ndarray] = None,
                          allowance_mm: Optional[Mapping[str, float]] = None) -> dict:
    """Probability that the perturbed tool touches each field's structure.

    Parameters
    ----------
    fields : dict of name → DistanceField
    target, direction : numpy.ndarray
        Tip (LPS mm) and unit direction entry → target.
    length_mm : float
        Length of the tool inside the body (from the tip backwards).
    error_mm, error_deg : float
        Standard deviation per axis of the tip offset across the tool and of its tilt.
    allowance_mm : mapping of name → float, optional
        Safe-zone depth per structure: the probability is that of entering deeper.

    Returns
    -------
    dict of name → float
    """
    z = _crn(n_samples)
    e1, e2 = perpendicular_basis(direction)
    tips = target[None, :] + error_mm * (z[:, :1] * e1 + z[:, 1:2] * e2)
    tilt = math.radians(error_deg)
    dirs = direction[None, :] + tilt * (z[:, 2:3] * e1 + z[:, 3:4] * e2)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ts = np.arange(0.0, length_mm + 1e-9, step_mm)
    pts = tips[:, None, :] - ts[None, :, None] * dirs[:, None, :]
    out = {}
    if lps_to_ijk is not None:  # one transform shared by every field
        ijk = apply_affine(lps_to_ijk, pts.reshape(-1, 3))
    for name, f in fields.items():
        if lps_to_ijk is not None and f.offset_ijk is not None:
            c = f.sample_index(ijk).reshape(pts.shape[:2]).min(axis=1) - radius_mm
        else:
            c = f.sample(pts).min(axis=1) - radius_mm
        if allowance_mm:
            c = c + allowance_mm.get(name, 0.0)
        out[name] = float(ndtr(-c / softness_mm).mean())
    return out


def danger(clearance: np.ndarray, margin_mm: float, falloff_mm: float = FALLOFF_MM) -> np.ndarray:
    """1 within the margin, falling linearly to 0 at ``margin + falloff``."""
    return np.clip((margin_mm + falloff_mm - clearance) / falloff_mm, 0.0, 1.0)


# --- evaluate ------------------------------------------------------------------------------------
def skin_crossing(ctx: PlanningContext, entry: np.ndarray, target: np.ndarray
                  ) -> Optional[np.ndarray]:
    """Where the line from ``target`` back through ``entry`` leaves the body outline."""
    if ctx.outline is None:
        return None
    d = target - entry
    L = np.linalg.norm(d)
    d = d / L
    ts = np.arange(0.0, L + 250.0, 0.5)
    pts = target[None, :] - ts[:, None] * d[None, :]
    inside = ctx.in_body(pts)
    if not inside.any():
        return None
    out = np.nonzero(~inside)[0]
    first_out = out[out > np.argmax(inside)]
    if not len(first_out):
        return None
    k = first_out[0]
    return pts[k - 1] if k > 0 else pts[0]


def evaluate(ctx: PlanningContext, trajectory: Trajectory, *,
             error_mm: float = P.PLACEMENT_ERROR_MM, error_deg: float = P.PLACEMENT_ERROR_DEG,
             n_samples: int = 128) -> TrajectoryMetrics:
    """All metrics of ``trajectory`` on the prepared anatomy (≈ 5–20 ms).

    The tool runs from where the line leaves the skin (the body outline; the given
    entry when there is no outline) to the target.  See the module docstring for
    the definitions.
    """
    proc = P.get_procedure(trajectory.procedure)
    upper, lower = P.split_level(proc, trajectory.level)
    side = trajectory.side
    sgn = {"left": 1.0, "right": -1.0}.get(side, 0.0)
    tool = trajectory.tool
    r = tool.radius_mm
    entry = np.asarray(trajectory.entry_lps)
    target = np.asarray(trajectory.target_lps)
    d = (target - entry) / np.linalg.norm(target - entry)
    notes = []
    skin = skin_crossing(ctx, entry, target)
    if skin is None:
        start = entry
        notes.append(ctx.skin_note if ctx.outline is None else
                     "the line does not cross the body outline: depth measured from the entry")
    else:
        start = skin
        gap = float(np.linalg.norm(entry - skin))
        if gap > 3.0:
            notes.append(f"the entry lies {gap:.1f} mm from where the line crosses the skin; "
                         "the depth is measured from the skin")
    length = float(np.linalg.norm(target - start))
    reaches = length <= tool.working_length_mm
    ts = np.arange(0.0, length + 1e-9, STEP_MM)
    axis = target[None, :] - ts[:, None] * d[None, :]

    # frame and angles ---------------------------------------------------------------------
    fv = lower if lower in ctx.frames else upper
    fr = ctx.frames.get(fv)
    if fr is None:
        lr, ap, si, origin = (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                              np.array([0, 0, 1.0]), target)
        notes.append(f"{fv} is not in the anatomy: angles in patient axes only")
    else:
        lr, ap, si, origin = fr.lr, fr.ap, fr.si, fr.origin_lps
    angles = {"patient": line_angles_deg(d, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                                         np.array([0, 0, 1.0]), sgn),
              "vertebra": line_angles_deg(d, lr, ap, si, sgn)}
    midline = float(abs((start - origin) @ lr))

    # structures ---------------------------------------------------------------------------
    risks = []
    near_fields = {}
    sigma_far = 3 * (error_mm + length * math.radians(error_deg)) + 3.0
    specs = []
    for cs in proc.critical:
        name = cs.name(upper, lower, side if side in ("left", "right") else "left")
        if any(name == n for _, n in specs):
            continue
        specs.append((cs, name))
    axis_ijk = apply_affine(ctx.lps_to_ijk, axis)
    for cs, name in specs:
        if name not in ctx.fields:
            why = "not in the anatomy: its risk is not assessed" if not ctx.has(name) else \
                "empty in the anatomy: its risk is not assessed"
            risks.append(StructureRisk(name, ctx.provenance.get(name), False, None, cs.margin_mm,
                                       cs.hard, None, None, None, f"{name} {why}",
                                       allowance_mm=cs.allowance_mm, harm=cs.harm))
            continue
        f = ctx.fields[name]
        sd = f.sample_index(axis_ijk)
        k = int(np.argmin(sd))
        c = float(sd[k]) - r
        cum = float(danger(sd - r + cs.allowance_mm, cs.margin_mm).mean()) if len(sd) else 0.0
        risks.append(StructureRisk(name, ctx.provenance.get(name), True, c, cs.margin_mm,
                                   cs.hard, cum, 0.0, tuple(float(v) for v in axis[k]),
                                   far=bool(sd[k] >= f.cap_mm - 1e-3),
                                   allowance_mm=cs.allowance_mm, harm=cs.harm))
        if c + cs.allowance_mm < sigma_far:
            near_fields[name] = f
    if near_fields and length > 0:
        probs = contact_probabilities(near_fields, target, d, length, r, error_mm, error_deg,
                                      n_samples, lps_to_ijk=ctx.lps_to_ijk,
                                      allowance_mm={s.name: s.allowance_mm for s in risks})
        risks = [dataclasses.replace(s, contact_probability=probs[s.name])
                 if s.name in probs else s for s in risks]

    # bone in the cylinder -----------------------------------------------------------------
    bone_ml, hard_bone_ml = _bone_in_cylinder(ctx, axis, d, r, proc, upper, lower, side)

    # Kambin, pedicle ----------------------------------------------------------------------
    kfit, knote = None, ""
    if proc.key in ("teld", "intradiscal") and side in ("left", "right"):
        from surgplan.planning.targets import kambin_triangle

        tri, knote = kambin_triangle(ctx, trajectory.level, side)
        if tri is not None:
            kfit = _kambin_fit(tri, entry, d, tool.diameter_mm)
    pfit = None
    if proc.key == "pedicle-screw" and side in ("left", "right"):
        pfit, pnote = _pedicle_fit(ctx, upper, side, target, d, tool, length)
        if pnote:
            notes.append(pnote)

    risk = _categorise(proc, trajectory, risks, bone_ml, hard_bone_ml, length, reaches, angles,
                       midline, kfit, knote, pfit, ctx, skin is not None)
    return TrajectoryMetrics(trajectory, None if skin is None else tuple(map(float, skin)),
                             length, reaches, midline, MappingProxyType(angles), tuple(risks),
                             MappingProxyType(bone_ml), kfit, knote, pfit, risk, tuple(notes))


_RING_R = np.sqrt((np.arange(3) + 0.5) / 3.0)
_RING_A = np.linspace(0, 2 * np.pi, 12, endpoint=False)


def cylinder_samples(axis: np.ndarray, d: np.ndarray, radius: float) -> np.ndarray:
    """(n_axis, 36, 3) points filling the cylinder of ``radius`` around ``axis`` samples.

    3 equal-area rings × 12 angles: each point stands for π r² / 36 of the section.
    """
    e1, e2 = perpendicular_basis(d)
    rr = radius * _RING_R[:, None]
    off = (rr * np.cos(_RING_A))[..., None] * e1 + (rr * np.sin(_RING_A))[..., None] * e2
    off = off.reshape(-1, 3)
    return axis[:, None, :] + off[None, :, :]


def _bone_in_cylinder(ctx, axis, d, r, proc, upper, lower, side):
    if len(axis) < 2:
        return {}, 0.0
    pts = cylinder_samples(axis, d, r)
    dv = np.pi * r * r / pts.shape[1] * STEP_MM / 1000.0  # ml per sample
    codes = ctx.lookup(ctx.bone, pts).ravel()
    inb = ctx.inside_grid(pts).ravel()
    codes = np.where(inb, codes, 0)
    hit = codes > 0
    out = {}
    if not hit.any():
        return out, 0.0
    verts = ctx.lookup(ctx.anatomy.vertebrae, pts).ravel()
    other = np.isin(codes, (BONE_ILIUM_LEFT, BONE_ILIUM_RIGHT, BONE_RIB))
    if other.any():  # ilium and ribs are named by their own structure label
        verts = np.where(other, ctx.lookup(ctx.anatomy.structures, pts).ravel(), verts)
    vname = {s.label: s.name for s in ctx.anatomy.items if s.map == "vertebrae"}
    sname = {s.label: s.name for s in ctx.anatomy.items if s.map == "structures"}
    keys = codes[hit].astype(np.int64) * 65536 + verts[hit].astype(np.int64)
    uk, cnt = np.unique(keys, return_counts=True)
    hard = 0.0
    hard_names = {n.format(upper=upper, lower=lower, side=side) for n in proc.hard_bone}
    any_rib = any(n.startswith("rib") for n in proc.hard_bone)
    for k, n in zip(uk, cnt):
        code, vl = int(k // 65536), int(k % 65536)
        if code in (BONE_ILIUM_LEFT, BONE_ILIUM_RIGHT, BONE_RIB):
            label = sname.get(vl, BONE_NAMES[code])
        else:
            label = f"{vname.get(vl, 'vertebra')} {BONE_NAMES[code]}"
        ml = float(n) * dv
        out[label] = out.get(label, 0.0) + ml
        if label in hard_names or (code == BONE_RIB and any_rib):
            hard += ml
    return dict(sorted(out.items(), key=lambda kv: -kv[1])), hard


def _kambin_fit(tri, entry, d, diameter) -> KambinFit:
    n = tri.plane_normal
    denom = float(d @ n)
    crossing, inside = None, None
    if abs(denom) > 1e-6:
        t = float((tri.plane_point_lps - entry) @ n) / denom
        x = entry + t * d
        crossing = tuple(float(v) for v in x)
        fr = tri.frame
        c2 = [np.array([(p - fr.origin_lps) @ fr.lr, (p - fr.origin_lps) @ fr.si])
              for p in tri.corners_lps]
        q = np.array([(x - fr.origin_lps) @ fr.lr, (x - fr.origin_lps) @ fr.si])
        a, b, c = c2
        m = np.array([b - a, c - a]).T
        try:
            lam = np.linalg.solve(m, q - a)
            inside = bool(lam[0] >= 0 and lam[1] >= 0 and lam.sum() <= 1)
        except np.linalg.LinAlgError:
            inside = None
    return KambinFit(tri, diameter, bool(diameter <= tri.inscribed_diameter_mm), crossing,
                     inside)


GR_GRADES = ((0.0, "A"), (2.0, "B"), (4.0, "C"), (6.0, "D"))


def gertzbein_robbins(breach_mm: float) -> str:
    """Grade of a cortical breach (mm): A none, B < 2, C 2–4, D 4–6, E ≥ 6 (DOMAIN.md)."""
    if breach_mm <= 0.0:
        return "A"
    for limit, g in GR_GRADES[1:]:
        if breach_mm < limit:
            return g
    return "E"


def _pedicle_fit(ctx, vertebra, side, target, d, tool, length):
    if vertebra not in ctx.fields:
        return None, f"{vertebra} is not in the anatomy: the screw cannot be graded"
    f = ctx.fields[vertebra]
    L = min(tool.implant_length_mm or 45.0, length)
    ts = np.arange(0.0, L + 1e-9, STEP_MM)
    axis = target[None, :] - ts[:, None] * d[None, :]
    sd = f.sample(axis)
    inside = np.nonzero(sd[::-1] < 0)[0]  # from the screw's back end toward the tip
    r = tool.radius_mm
    if not len(inside):
        breach = float(r + sd.min())
    else:
        first = len(sd) - 1 - inside[0]  # index (from the tip) where the axis enters bone
        skip = int(5.0 / STEP_MM)
        part = sd[: max(first - skip, 1)]
        breach = float(max(0.0, (part + r).max()))
    # the surfaces are known to half a voxel: a smaller excursion is not called a breach
    tol = 0.5 * float(np.max(ctx.anatomy.ijk_spacing_mm))
    grade = gertzbein_robbins(breach - tol)
    width = float("nan")
    try:
        from surgplan.planning.targets import pedicle_axis

        ax = pedicle_axis(ctx, vertebra, side)
        width = ax["isthmus_width_mm"]
    except Exception as exc:  # noqa: BLE001 - reported to the user, not swallowed
        note = f"pedicle isthmus not measured: {exc}"
    else:
        note = ""
    pts = cylinder_samples(axis, d, r).reshape(-1, 3)
    label = ctx.anatomy.structure(vertebra).label
    in_v = ctx.lookup(ctx.anatomy.vertebrae, pts) == label
    if ctx.volume is not None:
        hu = ctx.lookup(np.asarray(ctx.volume.array), pts).astype(float)
        cort = in_v & (hu >= 400.0)
        canc = in_v & ~cort
        src = "CT numbers (≥ 400 HU cortical) inside the vertebra's mask"
    else:
        depth = f.sample(pts)
        cort = in_v & (depth > -1.0)
        canc = in_v & ~cort
        src = "masks: the outer 1 mm of the vertebra is cortical (no CT numbers)"
    n = max(len(pts), 1)
    # templating rule (procedures.SRC_SCREW_SIZE): a screw within 80 % of the isthmus'
    # outer width deforms and then fractures the pedicle
    fits = bool(np.isfinite(width) and tool.diameter_mm <= P.SCREW_WIDTH_FRACTION * width + 1e-6)
    return PedicleFit(vertebra, side, width, tool.diameter_mm, fits, breach, grade,
                      float(cort.sum() / n), float(canc.sum() / n),
                      float((~in_v).sum() / n), src), note


def _removable(label: str, proc) -> bool:
    """Whether ``label`` ("L5 superior articular process left") is the procedure's own bone work.

    Bone whose parts were not separated cannot be told and counts as removable.
    """
    if label.endswith(BONE_NAMES[BONE_VERTEBRA_OTHER]):
        return True
    part = label.split(" ", 1)[1] if " " in label else label
    part = part.removesuffix(" left").removesuffix(" right")
    return part in proc.removable_parts


def _categorise(proc, traj, risks, bone_ml, hard_bone_ml, length, reaches, angles, midline,
                kfit, knote, pfit, ctx, has_skin) -> Risk:
    infeasible, high, moderate = [], [], []
    score = 0.0
    up, lo = P.split_level(proc, traj.level)
    sd_ = traj.side if traj.side in ("left", "right") else "left"
    severity = {c.name(up, lo, sd_): c.severity for c in proc.critical}
    for s in risks:
        if not s.assessed:
            moderate.append(s.note)
            continue
        p = s.contact_probability or 0.0
        sev = severity.get(s.name, 1.0)
        # judged beyond the structure's safe zone (0 for every structure that is harmed by
        # contact; 2 mm of the canal for a pedicle screw, procedures.SRC_SCREW_CANAL)
        c = s.breach_clearance_mm
        score += sev * (p + 0.5 * danger(np.array(c), s.margin_mm) + 0.5 * s.cumulative_risk)
        if s.allowance_mm > 0:
            txt = (f"{s.name} ({s.provenance}): clearance {s.clearance_mm:.1f} mm "
                   f"(safe zone {s.allowance_mm:g} mm inside it, margin {s.margin_mm:g} mm), "
                   f"probability of entering deeper {100 * p:.1f} %")
        else:
            txt = (f"{s.name} ({s.provenance}): clearance {s.clearance_mm:.1f} mm "
                   f"(margin {s.margin_mm:g} mm), contact probability {100 * p:.1f} %")
        beyond = f" beyond its {s.allowance_mm:g} mm safe zone" if s.allowance_mm > 0 else ""
        if c < 0 and s.hard:
            infeasible.append(f"the tool crosses the {txt}")
        elif c < 0:
            high.append(f"the tool enters{beyond}: {txt}" if beyond else
                        f"the tool touches the {txt}")
        elif s.harm and (c < s.margin_mm or p >= 0.05):
            high.append(txt)
        elif c < s.margin_mm + 3.0 or p >= 0.005:
            # a space that only holds the harmful structures (harm False) is never more
            # than moderate short of a breach beyond its safe zone
            moderate.append(txt)
    if hard_bone_ml > 0.02:
        blk = ", ".join(f"{k} {v:.2f} ml" for k, v in bone_ml.items()
                        if k.startswith(("ilium", "rib")))
        infeasible.append(f"bone blocks the path: {blk} in the tool's cylinder")
        score += 5.0
    if not reaches:
        infeasible.append(f"the target is {length:.0f} mm deep, beyond the {traj.tool.name}'s "
                          f"working length of {traj.tool.working_length_mm:g} mm")
    med = angles["vertebra"]["medial_tilt"]
    if not proc.medial_tilt_hard_deg.contains(med):
        infeasible.append(f"medial tilt {med:.0f}° is outside {proc.medial_tilt_hard_deg.text()}°"
                          f" ({proc.medial_tilt_hard_deg.source})")
    if proc.bone_is_obstacle:
        obstacle = {k: v for k, v in bone_ml.items() if not k.startswith(("ilium", "rib"))}
        total = sum(obstacle.values())
        # bone outside the technique's own bone work (foraminoplasty: the articular
        # processes) bounds the corridor: a pedicle, a body, the sacrum
        # (procedures.SRC_FORAMINOPLASTY)
        other = {k: v for k, v in obstacle.items() if not _removable(k, proc)}
        other_ml = sum(other.values())
        score += (P.REMOVABLE_BONE_SCORE_PER_ML * (total - other_ml)
                  + P.OTHER_BONE_SCORE_PER_ML * other_ml)
        if other_ml > P.OTHER_BONE_HIGH_ML:
            names = ", ".join(f"{k} {v:.2f} ml" for k, v in other.items() if v >= 0.01)
            msg = (f"the tool passes through {other_ml:.2f} ml of bone the technique does not "
                   f"remove ({names}; more than {P.OTHER_BONE_HIGH_ML:g} ml; it removes "
                   f"{' and '.join(proc.removable_parts)} bone)")
            if " pedicle" in max(other, key=other.get):
                msg += (": a transpedicular path, kept for highly migrated herniations "
                        "(Krzok et al. 2016)")
            high.append(msg)
        if total > 0.05:
            parts = ", ".join(f"{k} {v:.2f} ml" for k, v in obstacle.items() if v >= 0.01)
            msg = f"bone to remove {total:.2f} ml ({parts})"
            (high if total > 2.0 else moderate).append(msg)
    lv = traj.level
    rng = proc.midline_mm.get(lv)
    if rng is not None and has_skin and not rng.contains(midline):
        moderate.append(f"entry {midline:.0f} mm from the midline, outside the usual "
                        f"{rng.text()} mm at {lv} ({rng.source})")
        score += 0.01 * rng.excess(midline)
    rng = proc.medial_tilt_deg.get(lv)
    if rng is not None and not rng.contains(med):
        moderate.append(f"medial tilt {med:.0f}°, outside the usual {rng.text()}° at {lv} "
                        f"({rng.source})")
        score += 0.02 * rng.excess(med)
    rng = proc.caudal_tilt_deg.get(lv)
    # the usual tilts were measured against the image's axial plane (patient axes), where
    # they follow the lordosis; the lower vertebra's own frame is tilted by that lordosis
    # (≈ 16° at L5 on the phantom, ≈ 31° on a real CT) and would shift every figure by it
    cau = angles["patient"]["caudal_tilt"]
    if rng is not None and not rng.contains(cau):
        moderate.append(f"craniocaudal tilt {cau:.0f}° in patient axes (positive = caudal), "
                        f"outside the usual {rng.text()}° at {lv} ({rng.source})")
        score += 0.01 * rng.excess(cau)
    if kfit is not None and not kfit.fits:
        moderate.append(f"Kambin's triangle at {lv} {traj.side}: inscribed circle "
                        f"{kfit.triangle.inscribed_diameter_mm:.1f} mm < tool "
                        f"{kfit.tool_diameter_mm:g} mm: foraminoplasty needed")
    elif kfit is None and knote:
        moderate.append(knote)
    if pfit is not None:
        msg = (f"{pfit.vertebra} {pfit.side} pedicle: breach {pfit.breach_mm:.1f} mm, "
               f"Gertzbein–Robbins grade {pfit.grade} (isthmus {pfit.isthmus_width_mm:.1f} mm, "
               f"screw {pfit.screw_diameter_mm:g} mm)")
        if not pfit.fits and math.isfinite(pfit.isthmus_width_mm):
            msg += (f": wider than {100 * P.SCREW_WIDTH_FRACTION:.0f} % of the isthmus, which "
                    "deforms and then fractures the pedicle (Misenhimer 1989)")
        score += 0.5 * pfit.breach_mm
        if pfit.grade in ("C", "D", "E"):
            high.append(msg)
        elif pfit.grade == "B" or not pfit.fits:
            moderate.append(msg)
    if not has_skin:
        moderate.append(ctx.skin_note)
    cat = "infeasible" if infeasible else "high" if high else "moderate" if moderate else "low"
    if infeasible:
        score += 10.0
    return Risk(cat, tuple(infeasible + high + moderate), float(score))
