"""The catalogue of procedures SurgPlan plans, with their tools, dangers and ranges.

Each :class:`Procedure` says how its target is found (``target_rule``), which
tools it uses, which structures are dangerous and with what safety margin, what
rejects a path outright (hard constraints) and which entry distances and angles
are usual.  Every default carries its source (``/work/shared/DOMAIN.md`` and
``ANATOMY.md``, the project's clinical notes) so that a number in a plan can be
traced; a plan outside a usual range is not wrong, but the metrics say so.

Structure names are patterns over the shared names of
:mod:`surgplan.imaging.structures`: ``{upper}``, ``{lower}`` (the vertebrae of
the planned level; for a single-vertebra procedure both are the vertebra) and
``{side}`` are filled in per trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

from surgplan.planning.plan import Tool

#: Placement error defaults (navigation / fluoroscopy): 1.5 mm and 1.5°.
#: DOMAIN.md "Figures to respect": navigated and robotic series report 1.6–1.8 mm and 1.6°,
#: typical error 1–2 mm and 1–2°.
PLACEMENT_ERROR_MM = 1.5
PLACEMENT_ERROR_DEG = 1.5


@dataclass(frozen=True)
class CriticalStructure:
    """A structure a tool must keep away from.

    Attributes
    ----------
    pattern : str
        Shared structure name with ``{upper}``, ``{lower}``, ``{side}``,
        ``{other_side}`` placeholders.
    margin_mm : float
        Safety margin from the tool's surface (mm); closer is a risk.
    hard : bool
        True when touching it (tool surface clearance < 0) makes the path infeasible.
    severity : float
        Weight of this structure in the risk score (1 = a nerve root or the dura).
    source : str
        Where the margin and the danger come from.
    allowance_mm : float
        Safe zone: how deep the tool's surface may enter the structure without harm
        (mm, ≥ 0).  Clearance, margin and contact probability are judged on
        ``clearance + allowance``: the probability is that of entering deeper than this.
    harm : bool
        False for a space that only *holds* the harmful structures (the spinal canal's
        epidural fat around the dural sac and the roots, which are assessed on their
        own): entering it beyond ``allowance_mm`` is still a high risk, but its contact
        probability or a near pass raises the category to moderate at most.
    """

    pattern: str
    margin_mm: float
    hard: bool
    severity: float
    source: str
    allowance_mm: float = 0.0
    harm: bool = True

    def __post_init__(self):
        if self.allowance_mm < 0:
            raise ValueError(f"{self.pattern}: allowance_mm must be ≥ 0, got {self.allowance_mm}")

    def name(self, upper: str, lower: str, side: str) -> str:
        other = "right" if side == "left" else "left"
        return self.pattern.format(upper=upper, lower=lower, side=side, other_side=other)


@dataclass(frozen=True)
class Range:
    """A usual range ``[low, high]`` with its source; ``None`` bounds are open."""

    low: Optional[float]
    high: Optional[float]
    source: str

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def excess(self, value: float) -> float:
        """How far ``value`` lies outside the range (0 inside)."""
        if self.low is not None and value < self.low:
            return self.low - value
        if self.high is not None and value > self.high:
            return value - self.high
        return 0.0

    def text(self) -> str:
        lo = "…" if self.low is None else f"{self.low:g}"
        hi = "…" if self.high is None else f"{self.high:g}"
        return f"{lo}–{hi}"


@dataclass(frozen=True)
class Procedure:
    """One procedure of the catalogue.

    Attributes
    ----------
    key : str
        ``teld``, ``ield``, ``pedicle-screw``, ``intradiscal`` or ``facet``.
    title : str
        Name shown to the user.
    level_kind : str
        ``"disc"`` (levels like ``L4-L5``) or ``"vertebra"`` (``L4``).
    target_rule : str
        How the target is computed from the anatomy, in words
        (:mod:`surgplan.planning.targets` implements it).
    tools : tuple of Tool
        Catalogue tools; the first is the default.
    critical : tuple of CriticalStructure
    bone_is_obstacle : bool
        True when bone in the tool's cylinder must be removed (foraminoplasty,
        laminotomy); False for a screw, whose path is meant to be in bone.
    hard_bone : tuple of str
        Bone structures (shared names, patterns allowed) that block the path
        outright (the ilium for a transforaminal approach).
    midline_mm : Mapping[str, Range]
        Usual distance of the skin entry from the midline per level (mm).
    medial_tilt_deg : Mapping[str, Range]
        Usual medial tilt (angle between the tool and the sagittal plane, in
        the axial projection, tool pointing medially) per level.
    caudal_tilt_deg : Mapping[str, Range]
        Usual craniocaudal tilt per level (positive: the tool points caudally), in
        *patient axes*: the angle between the tool and the scan's axial plane in the
        sagittal projection.  The source measured it so on sagittal MRI, where it follows
        the discs' lordosis (3° cephalad at L3-4 to 27° caudal at L5-S1); in the lower
        vertebra's own frame those figures would all be near 0.
    medial_tilt_hard_deg : Range
        Tilts outside this range are not an approach of this procedure (hard constraint).
    removable_parts : tuple of str
        Vertebral parts (``PART_NAMES`` without the side) whose bone the technique removes
        when ``bone_is_obstacle`` (foraminoplasty: the articular processes); any other bone
        in the path costs more and beyond :data:`OTHER_BONE_HIGH_ML` is a high risk.
        Bone whose parts were not separated counts as removable (it cannot be told).
    sources : tuple of str
    """

    key: str
    title: str
    level_kind: str
    target_rule: str
    tools: Tuple[Tool, ...]
    critical: Tuple[CriticalStructure, ...]
    bone_is_obstacle: bool
    hard_bone: Tuple[str, ...]
    midline_mm: Mapping[str, Range] = field(default_factory=dict)
    medial_tilt_deg: Mapping[str, Range] = field(default_factory=dict)
    caudal_tilt_deg: Mapping[str, Range] = field(default_factory=dict)
    medial_tilt_hard_deg: Range = Range(-30.0, 85.0, "geometry: a posterior or posterolateral "
                                        "approach on the planned side")
    removable_parts: Tuple[str, ...] = ("superior articular process",
                                        "inferior articular process")
    sources: Tuple[str, ...] = ()

    def tool(self, name: Optional[str] = None) -> Tool:
        """The tool called ``name`` (default: the first); KeyError lists the choices."""
        if name is None:
            return self.tools[0]
        for t in self.tools:
            if t.name == name:
                return t
        raise KeyError(f"{self.key} has no tool {name!r}; tools: {[t.name for t in self.tools]}")


# --- sources ----------------------------------------------------------------------------------
SRC_ROOT = ("DOMAIN.md: the exiting root is the commonest complication of TELD; margin = "
            "placement error 1.5–2 mm (navigated series 1.6–1.8 mm)")
SRC_DURA = "DOMAIN.md: dural sac, a no-go structure of every posterior or posterolateral approach"
SRC_CANAL = "DOMAIN.md: medial breach into the canal (pedicle screws); holds the dural sac"
SRC_SCREW_CANAL = (
    "Gertzbein & Robbins, Spine 1990 (in vivo CT of 167 pedicle screws): medial encroachment "
    "up to 4 mm (≈ 2 mm epidural space + 2 mm subarachnoid space) caused no neurological "
    "deficit, the 'safe zone'; the accepted standard is grade A/B, a breach < 2 mm (DOMAIN.md: "
    "navigated placement ≥ 95 % A+B). What a medial breach harms is the dural sac and the "
    "roots, assessed on their own; the canal's epidural fat counts beyond a 2 mm breach "
    "(grade C), and the chance of that under placement error (about the ≤ 5 % C–E rate of "
    "navigated series) is no more than a moderate risk")
SRC_FORAMINOPLASTY = (
    "foraminoplasty widens the foramen by undercutting the superior articular process, at "
    "times the inferior one (DOMAIN.md: facet bone that must be removed); the pedicles, "
    "the bodies, the transverse processes and the sacrum bound the corridor and are not "
    "part of it: a cannula through the lower vertebra's pedicle is the transpedicular route "
    "kept for highly migrated herniations (Krzok et al., Eur Spine J 2016), and a path "
    "through the sacrum or a body is not a transforaminal approach")
SRC_LAMINOTOMY = ("interlaminar approach: the lamina's edge and the medial facet are trimmed "
                  "(laminotomy, DOMAIN.md: IELD)")
#: Risk score per ml of bone in a disc approach's cylinder: the procedure's own bone work
#: (``Procedure.removable_parts``) and any other bone (SRC_FORAMINOPLASTY), so that a path
#: skimming the SAP is preferred to one through a pedicle, a body or the sacrum.
REMOVABLE_BONE_SCORE_PER_ML = 0.3
OTHER_BONE_SCORE_PER_ML = 2.0
#: More bone than this (ml) outside ``removable_parts`` in a disc approach's cylinder is a
#: high risk: about a quarter of a 7 mm cannula's section over 15 mm (a pedicle's height);
#: an endplate rim clipped at the target stays below it.
OTHER_BONE_HIGH_ML = 0.15
#: Medial breach into the canal a pedicle screw may make without harm (SRC_SCREW_CANAL).
SCREW_CANAL_ALLOWANCE_MM = 2.0
SRC_VESSEL = ("DOMAIN.md: great vessels if the tip passes the anterior annulus; ANATOMY.md: "
              "artery–disc gap 1–3 mm, common iliacs 3–8 mm")
SRC_BOWEL = "DOMAIN.md: bowel/peritoneum if the entry is too lateral"
SRC_KIDNEY = "ANATOMY.md: kidneys ≈ 5 cm from the midline at L1, T11–L2"
SRC_ILIUM = ("DOMAIN.md: iliac crest blocking the path at L5-S1 (Sousa et al., CT n=200: the "
             "steepest path hits the ilium in 28 %)")
SRC_TELD_ENTRY = ("DOMAIN.md: transforaminal entry, MRI n=102 — lateral nucleus 32/45/55–60 mm "
                  "and 12/20/27° medial tilt, centre of the nucleus 64/77/85 mm and 40/47/52° "
                  "at L3-4/L4-5/L5-S1")
SRC_TELD_SAGITTAL = ("DOMAIN.md: sagittal tilt ≈ 3° cephalad at L3-4, 10° caudal at L4-5, "
                     "27° caudal at L5-S1 against the image's axial plane (Rajagopal et al., "
                     "MRI n=102)")
SRC_CANNULA = "DOMAIN.md: working cannula + endoscope 6–8 mm outer diameter, ~150–200 mm long"
SRC_SCREW = "DOMAIN.md: lumbar pedicle screws 4.5–7.5 mm × 35–55 mm"
SRC_NEEDLE = "DOMAIN.md: spinal needle 18–22 G (0.7–1.3 mm), 90–180 mm"
SRC_SCREW_SIZE = ("screw diameter ≤ 80 % of the pedicle isthmus' outer cortical width: the "
                  "pedicle deforms plastically, then fractures, once the thread comes within "
                  "80 % of it (Misenhimer et al., Spine 1989, cadaver CT); ≈ 80 % is the "
                  "adopted criterion (Solitro et al., Int J Spine Surg 2019, review); typical "
                  "6.5–7.5 mm at L4–L5, 5.5–6.5 mm at L1–L2 (ANATOMY.md: isthmus L1 ≈ 8 → "
                  "L5 ≈ 16 mm). Length ≈ 80 % of the pedicle-axis chord from the posterior "
                  "bone to the anterior cortex: optimal screws reached 88 % (L1) → 79 % (L5) "
                  "of the body on the lateral view (Oh et al., Asian Spine J 2019, 771 screws)")

#: Screw diameter / pedicle isthmus outer width, at most (SRC_SCREW_SIZE).
SCREW_WIDTH_FRACTION = 0.8
#: Screw length / pedicle-axis chord to the anterior cortex (SRC_SCREW_SIZE).
SCREW_CHORD_FRACTION = 0.8
#: Lumbar screw sizes (DOMAIN.md: 4.5–7.5 mm × 35–55 mm), in the usual 0.5 / 5 mm steps.
SCREW_DIAMETERS_MM = (4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5)
SCREW_LENGTHS_MM = (35.0, 40.0, 45.0, 50.0, 55.0)
SRC_GR = ("DOMAIN.md: Gertzbein–Robbins grade A none, B < 2 mm, C 2–4 mm, D 4–6 mm, "
          "E ≥ 6 mm breach")

_ROOT_EXIT = "nerve root {upper} {side}"
_ROOT_TRAVERSE = "nerve root {lower} {side}"
_VESSELS = ("aorta", "inferior vena cava", "common iliac artery left", "common iliac artery right",
            "common iliac vein left", "common iliac vein right")


def _common_visceral(vessel_margin: float, bowel_margin: float = 5.0,
                     bowel_source: str = SRC_BOWEL) -> tuple:
    out = [CriticalStructure(v, vessel_margin, True, 1.0, SRC_VESSEL) for v in _VESSELS]
    out.append(CriticalStructure("bowel", bowel_margin, True, 1.0, bowel_source))
    out.append(CriticalStructure("kidney {side}", 5.0, True, 0.8, SRC_KIDNEY))
    return tuple(out)


def _per_level(values: dict, source: str) -> Mapping[str, Range]:
    return MappingProxyType({lv: Range(lo, hi, source) for lv, (lo, hi) in values.items()})


# Entry distance and tilt: between the lateral-nucleus and the nucleus-centre figures
# (MRI n=102); levels above L3-4 extrapolated down by the same steps, marked as such.
_TELD_MIDLINE = {"L1-L2": (20, 50), "L2-L3": (25, 57), "L3-L4": (32, 64), "L4-L5": (45, 77),
                 "L5-S1": (55, 85), "L5-L6": (55, 85), "L6-S1": (55, 85)}
_TELD_TILT = {"L1-L2": (5, 35), "L2-L3": (8, 38), "L3-L4": (12, 40), "L4-L5": (20, 47),
              "L5-S1": (27, 52), "L5-L6": (27, 52), "L6-S1": (27, 52)}
_TELD_CAUDAL = {"L1-L2": (-18, 12), "L2-L3": (-18, 12), "L3-L4": (-18, 12),
                "L4-L5": (-5, 25), "L5-S1": (12, 42), "L5-L6": (12, 42), "L6-S1": (12, 42)}
_CENTRE_MIDLINE = {"L1-L2": (40, 80), "L2-L3": (45, 85), "L3-L4": (50, 80), "L4-L5": (60, 95),
                   "L5-S1": (70, 115), "L5-L6": (70, 115), "L6-S1": (70, 115)}
_CENTRE_TILT = {"L1-L2": (25, 55), "L2-L3": (28, 55), "L3-L4": (30, 50), "L4-L5": (37, 57),
                "L5-S1": (42, 62), "L5-L6": (42, 62), "L6-S1": (42, 62)}

TELD = Procedure(
    key="teld",
    title="Transforaminal endoscopic lumbar discectomy",
    level_kind="disc",
    target_rule=("posterolateral disc at the foramen: on the disc's mid-plane, 5 mm in front of "
                 "the posterior disc wall, halfway from the midline to the disc's lateral edge "
                 "on the planned side"),
    tools=(
        Tool("teld-cannula-7.0", 7.0, 175.0, "working cannula", SRC_CANNULA),
        Tool("teld-cannula-6.0", 6.0, 175.0, "working cannula", SRC_CANNULA),
        Tool("teld-cannula-8.0", 8.0, 200.0, "working cannula", SRC_CANNULA),
    ),
    critical=(
        CriticalStructure(_ROOT_EXIT, 2.0, True, 1.0, SRC_ROOT),
        CriticalStructure(_ROOT_TRAVERSE, 2.0, True, 1.0, SRC_ROOT),
        # The epidural space (the rest of the spinal canal) is where a herniation is
        # removed: entering it is the purpose, not a risk; the dural sac inside is.
        CriticalStructure("dural sac", 2.0, True, 1.0, SRC_DURA),
    ) + _common_visceral(5.0),
    bone_is_obstacle=True,
    hard_bone=("ilium {side}", "rib T12 {side}"),
    midline_mm=_per_level(_TELD_MIDLINE, SRC_TELD_ENTRY),
    medial_tilt_deg=_per_level(_TELD_TILT, SRC_TELD_ENTRY),
    caudal_tilt_deg=_per_level(_TELD_CAUDAL, SRC_TELD_SAGITTAL),
    medial_tilt_hard_deg=Range(0.0, 85.0, "a transforaminal path comes from the side and "
                               "behind, pointing medially"),
    sources=(SRC_CANNULA, SRC_ROOT, SRC_TELD_ENTRY, SRC_TELD_SAGITTAL, SRC_ILIUM,
             SRC_FORAMINOPLASTY),
)

IELD = Procedure(
    key="ield",
    title="Interlaminar endoscopic lumbar discectomy",
    level_kind="disc",
    target_rule=("posterior disc through the interlaminar window: on the disc's mid-plane, 3 mm "
                 "in front of the posterior disc wall, 8 mm from the midline on the planned side"),
    tools=(
        Tool("ield-cannula-7.0", 7.0, 165.0, "working cannula", SRC_CANNULA),
        Tool("ield-cannula-8.0", 8.0, 165.0, "working cannula", SRC_CANNULA),
    ),
    critical=(
        # The surgeon retracts the dural sac and the traversing root in IELD: touching them
        # is a high risk, not a reason to refuse the path.
        CriticalStructure("dural sac", 1.0, False, 1.0, SRC_DURA),
        CriticalStructure(_ROOT_TRAVERSE, 1.0, False, 1.0,
                          "DOMAIN.md: IELD main dangers: dural sac, traversing nerve root"),
        CriticalStructure(_ROOT_EXIT, 2.0, True, 1.0, SRC_ROOT),
    ) + _common_visceral(5.0),
    bone_is_obstacle=True,
    hard_bone=("ilium {side}",),
    midline_mm=_per_level({lv: (0, 30) for lv in _TELD_MIDLINE}, "posterior interlaminar approach "
                          "(DOMAIN.md: same cannula, posterior approach)"),
    medial_tilt_deg=_per_level({lv: (-10, 25) for lv in _TELD_MIDLINE},
                               "posterior interlaminar approach, near sagittal"),
    medial_tilt_hard_deg=Range(-30.0, 45.0, "an interlaminar path comes from behind"),
    removable_parts=("lamina", "inferior articular process", "superior articular process"),
    sources=(SRC_CANNULA, "DOMAIN.md: IELD mostly at L5-S1", SRC_LAMINOTOMY),
)

PEDICLE_SCREW = Procedure(
    key="pedicle-screw",
    title="Percutaneous pedicle screw",
    level_kind="vertebra",
    target_rule=("along the pedicle's own axis (the axis of the pedicle's bone, found from its "
                 "mask) into the anterior third of the body: the tip ≈ 80 % of the way from the "
                 "posterior bone to the anterior cortex (the screw's length from its entry in "
                 "bone)"),
    tools=(
        Tool("screw-6.5x45", 6.5, 150.0, "pedicle screw 6.5 × 45 mm", SRC_SCREW, 45.0),
        Tool("screw-4.5x35", 4.5, 150.0, "pedicle screw 4.5 × 35 mm", SRC_SCREW, 35.0),
        Tool("screw-5.5x40", 5.5, 150.0, "pedicle screw 5.5 × 40 mm", SRC_SCREW, 40.0),
        Tool("screw-7.5x50", 7.5, 150.0, "pedicle screw 7.5 × 50 mm", SRC_SCREW, 50.0),
    ),
    critical=(
        CriticalStructure("dural sac", 1.0, True, 1.0, "DOMAIN.md: medial breach into the canal"),
        # the canal itself is a space: a grade A/B medial breach (< 2 mm) is the accepted
        # safe zone; its contents (dural sac, roots) carry the harm
        CriticalStructure("spinal canal", 0.0, False, 0.3, SRC_SCREW_CANAL,
                          allowance_mm=SCREW_CANAL_ALLOWANCE_MM, harm=False),
        CriticalStructure(_ROOT_EXIT, 1.0, False, 1.0,
                          "DOMAIN.md: inferior breach onto the exiting root"),
    ) + _common_visceral(3.0, 3.0, "DOMAIN.md: anterior breach toward vessels — a screw "
                         "reaches the bowel the same way, through the vertebral body's cortex, "
                         "so it keeps the vessels' margin (the 5 mm of the needle routes is for "
                         "an entry too lateral through soft tissue)"),
    bone_is_obstacle=False,
    hard_bone=(),
    medial_tilt_deg=MappingProxyType({
        "L1": Range(0, 20, "ANATOMY.md: pedicle medial angle L1 ≈ 5–15°"),
        "L2": Range(0, 22, "ANATOMY.md: ≈ 5° per level"),
        "L3": Range(3, 25, "ANATOMY.md: ≈ 5° per level"),
        "L4": Range(5, 28, "ANATOMY.md: L4 ≈ 15°"),
        "L5": Range(10, 34, "ANATOMY.md: L5 ≈ 20–24°"),
        "S1": Range(25, 50, "ANATOMY.md: S1 ≈ 41–43°"),
    }),
    medial_tilt_hard_deg=Range(-20.0, 60.0, "a transpedicular path converges medially"),
    sources=(SRC_SCREW, SRC_SCREW_SIZE, SRC_GR, SRC_SCREW_CANAL),
)

INTRADISCAL = Procedure(
    key="intradiscal",
    title="Intradiscal injection (PRP, cell therapy, discography)",
    level_kind="disc",
    target_rule="centre of the nucleus pulposus: the disc's centroid",
    tools=(
        Tool("needle-20G-150", 0.9, 150.0, "spinal needle 20 G", SRC_NEEDLE),
        Tool("needle-18G-180", 1.3, 180.0, "spinal needle 18 G", SRC_NEEDLE),
        Tool("needle-22G-90", 0.7, 90.0, "spinal needle 22 G", SRC_NEEDLE),
    ),
    critical=(
        CriticalStructure(_ROOT_EXIT, 2.0, True, 1.0, SRC_ROOT),
        CriticalStructure(_ROOT_TRAVERSE, 2.0, True, 1.0, SRC_ROOT),
        CriticalStructure("dural sac", 2.0, True, 1.0, SRC_DURA),
        CriticalStructure("spinal canal", 0.0, False, 0.6, SRC_CANAL),
    ) + _common_visceral(5.0),
    bone_is_obstacle=True,
    hard_bone=("ilium {side}", "rib T12 {side}"),
    midline_mm=_per_level(_CENTRE_MIDLINE, SRC_TELD_ENTRY),
    medial_tilt_deg=_per_level(_CENTRE_TILT, SRC_TELD_ENTRY),
    caudal_tilt_deg=_per_level(_TELD_CAUDAL, SRC_TELD_SAGITTAL),
    medial_tilt_hard_deg=Range(0.0, 85.0, "same corridor as TELD"),
    sources=(SRC_NEEDLE, "DOMAIN.md: same corridor as TELD"),
)

FACET = Procedure(
    key="facet",
    title="Facet joint injection / medial branch ablation",
    level_kind="disc",
    target_rule=("the facet joint between the upper vertebra's inferior and the lower vertebra's "
                 "superior articular process on the planned side: the centre of the bone where "
                 "the two processes meet"),
    tools=(
        Tool("needle-22G-90", 0.7, 90.0, "spinal needle 22 G", SRC_NEEDLE),
        Tool("needle-20G-150", 0.9, 150.0, "spinal needle 20 G", SRC_NEEDLE),
        Tool("rf-cannula-18G-100", 1.3, 100.0, "radiofrequency cannula 18 G",
             SRC_NEEDLE),
    ),
    critical=(
        CriticalStructure("spinal canal", 2.0, False, 1.0, "DOMAIN.md: facet: canal"),
        CriticalStructure("dural sac", 2.0, True, 1.0, SRC_DURA),
        CriticalStructure(_ROOT_EXIT, 2.0, False, 1.0, "DOMAIN.md: facet: exiting root"),
    ) + _common_visceral(5.0),
    bone_is_obstacle=False,
    hard_bone=(),
    midline_mm=_per_level({lv: (10, 60) for lv in _TELD_MIDLINE}, "posterior oblique approach"),
    medial_tilt_deg=_per_level({"L1-L2": (-5, 35), "L2-L3": (-5, 40), "L3-L4": (-5, 45),
                                "L4-L5": (0, 55), "L5-S1": (0, 55)},
                               "ANATOMY.md: facet angle to the midsagittal plane 30° (L2/3) "
                               "→ 47° (L4/5, L5/S1), Jentzsch 2013"),
    medial_tilt_hard_deg=Range(-30.0, 70.0, "a posterior oblique approach"),
    sources=(SRC_NEEDLE,),
)

#: The catalogue, by key.
PROCEDURES: Mapping[str, Procedure] = MappingProxyType(
    {p.key: p for p in (TELD, IELD, PEDICLE_SCREW, INTRADISCAL, FACET)})


def screw_size(isthmus_width_mm: float, chord_mm: float) -> Tuple[float, float, str]:
    """Diameter and length (mm) of the pedicle screw a surgeon templates on CT.

    The widest lumbar size within :data:`SCREW_WIDTH_FRACTION` of the isthmus' outer
    width, and the length step nearest :data:`SCREW_CHORD_FRACTION` of the chord from
    the posterior bone to the anterior cortex along the axis (``SRC_SCREW_SIZE``).

    Returns
    -------
    diameter_mm, length_mm : float
    note : str
        Empty, or why the size is at a limit of the lumbar range (a pedicle too narrow
        for the smallest screw, a width that could not be measured).
    """
    import math

    note = ""
    if not math.isfinite(isthmus_width_mm):
        diameter = SCREW_DIAMETERS_MM[0]
        note = ("the pedicle isthmus could not be measured: the smallest lumbar screw "
                f"({diameter:g} mm) is proposed")
    else:
        fits = [d for d in SCREW_DIAMETERS_MM
                if d <= SCREW_WIDTH_FRACTION * isthmus_width_mm + 1e-6]
        diameter = fits[-1] if fits else SCREW_DIAMETERS_MM[0]
        if not fits:
            note = (f"pedicle isthmus {isthmus_width_mm:.1f} mm: even the smallest lumbar screw "
                    f"({diameter:g} mm) exceeds {100 * SCREW_WIDTH_FRACTION:.0f} % of it")
    want = SCREW_CHORD_FRACTION * chord_mm if math.isfinite(chord_mm) else 45.0
    length = min(SCREW_LENGTHS_MM, key=lambda L: (abs(L - want), L))
    return float(diameter), float(length), note


def describe_tool(tool: Tool, *, name: bool = False, driver_reach: bool = False,
                  short: bool = False) -> str:
    """How a tool reads to a person, the same on the terminal, in the window and the PDF.

    A screw (a tool with ``implant_length_mm``) reads as its implant, diameter ×
    length: ``pedicle screw 7.5 × 50 mm``.  Its ``working_length_mm`` is how deep the
    driver reaches, not the screw; printed after the diameter it was taken for the
    screw's length, so it is shown only on request and named as the driver's reach.
    A cannula or a needle reads as its kind, diameter and working length (the length
    that matters for it: whether it reaches the target).

    Parameters
    ----------
    tool : Tool
        A catalogue tool, a screw sized by :mod:`surgplan.planning.propose`, or a
        user's tool.
    name : bool
        Start with the tool's catalogue name (``screw-7.5x50: …``), the one ``--tool``
        takes, where a reader may need to name the tool again (terminal, PDF).
    driver_reach : bool
        For a screw, add the driver's reach (mm); ignored for other tools.
    short : bool
        Sizes only, for a line that already names the procedure (``screw 7.5 × 50 mm``,
        ``Ø 7 mm, working length 175 mm``).

    Returns
    -------
    str
        E.g. ``pedicle screw 7.5 × 50 mm``, ``pedicle screw 7.5 × 50 mm, driver reach
        150 mm``, ``working cannula, Ø 7 mm, working length 175 mm``.
    """
    if tool.implant_length_mm is not None:
        text = (f"{'screw' if short else 'pedicle screw'} {tool.diameter_mm:g} × "
                f"{tool.implant_length_mm:g} mm")
        if driver_reach:
            text += f", driver reach {tool.working_length_mm:g} mm"
    else:
        kind = tool.description.strip() or tool.name
        if tool.source == "user" and tool.name not in kind and not name:
            # a user's tool is chosen by its name (--tool NAME:…): keep it in sight
            kind = f"{tool.name} ({kind})"
        text = (f"{'' if short else kind + ', '}Ø {tool.diameter_mm:g} mm, "
                f"working length {tool.working_length_mm:g} mm")
    return f"{tool.name}: {text}" if name and not text.startswith(tool.name) else text


def get_procedure(key: str) -> Procedure:
    """The catalogue entry ``key``; KeyError lists the procedures."""
    try:
        return PROCEDURES[key]
    except KeyError:
        raise KeyError(f"unknown procedure {key!r}; choose one of {sorted(PROCEDURES)}") from None


def with_tool(procedure: Procedure, tool: Tool) -> Procedure:
    """A copy of ``procedure`` whose catalogue also holds the user's ``tool`` (first)."""
    import dataclasses

    others = tuple(t for t in procedure.tools if t.name != tool.name)
    return dataclasses.replace(procedure, tools=(tool,) + others)


def split_level(procedure: Procedure, level: str) -> Tuple[str, str]:
    """``("L4", "L5")`` for ``L4-L5``; ``("L4", "L4")`` for a vertebra procedure at ``L4``.

    Raises
    ------
    PlanningError
        ``level`` does not have the form the procedure needs (a ValueError).
    """
    from surgplan.core.errors import PlanningError
    from surgplan.imaging.structures import is_vertebra

    if procedure.level_kind == "disc":
        parts = level.split("-")
        if len(parts) != 2 or not all(is_vertebra(p) for p in parts):
            raise PlanningError(f"{procedure.key} is planned at a disc level such as L4-L5, "
                                f"got {level!r}")
        return parts[0], parts[1]
    if not is_vertebra(level):
        raise PlanningError(f"{procedure.key} is planned at a vertebra such as L4, got {level!r}")
    return level, level
