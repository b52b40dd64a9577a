"""``surgplan plan``: propose or evaluate a trajectory on a study and print its metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional


def _point(text: str, what: str):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3:
        raise SystemExit(f"surgplan plan: {what} must be three numbers x,y,z in LPS mm, "
                         f"got {text!r}")
    return tuple(vals)


def parse_tool(proc, text: str):
    """A catalogue tool by name, or a user tool from ``NAME:DIAMETER_MM:WORKING_LENGTH_MM``.

    Raises
    ------
    KeyError
        Not a catalogue name and not in the user form (the message lists the names).
    ValueError
        The user form with invalid numbers.
    """
    from surgplan.planning.plan import Tool

    parts = text.split(":")
    if len(parts) == 3:
        try:
            d, length = float(parts[1]), float(parts[2])
        except ValueError:
            raise ValueError(f"--tool {text!r}: diameter and working length must be numbers "
                             "(mm), e.g. cannula:7.5:180") from None
        return Tool(parts[0], d, length, "user tool", "user")
    try:
        return proc.tool(text)
    except KeyError as exc:
        raise KeyError(f"{exc.args[0]}; or give your own as NAME:DIAMETER_MM:LENGTH_MM") from None


def add_parser(sub) -> None:
    """Register ``plan`` on the ``surgplan`` sub-parsers."""
    from surgplan.planning.procedures import PROCEDURES

    s = sub.add_parser(
        "plan",
        help="propose or evaluate a trajectory (TELD, IELD, pedicle screw …) with its risks",
        description="Load and segment a study (or read a `surgplan segment` folder), then "
        "propose the best trajectories for the procedure at the level and side, or evaluate "
        "the one given by --entry and --target (LPS mm), and print the metrics table.",
    )
    s.add_argument("path", help="folder, .zip, DICOMDIR, DICOM file or volume file")
    s.add_argument("--procedure", required=True, choices=sorted(PROCEDURES))
    s.add_argument("--level", required=True, help="disc level (L4-L5) or vertebra (L4)")
    s.add_argument("--side", required=True, choices=["left", "right", "both"],
                   help="'both' proposes on each side and reports conflicts between them")
    s.add_argument("--tool", help="catalogue tool name (default: the procedure's first), or "
                   "your own as NAME:DIAMETER_MM:WORKING_LENGTH_MM, e.g. cannula:7.5:180")
    s.add_argument("--entry", help="x,y,z entry in LPS mm (with --target: evaluate it); "
                   "write --entry=-70,60,55 when the first value is negative")
    s.add_argument("--target", help="x,y,z target in LPS mm")
    s.add_argument("--count", type=int, default=3, help="proposals to show (default 3)")
    s.add_argument("--json", metavar="FILE", help="also write the metrics as JSON to FILE")
    s.add_argument("--save-plan", metavar="FILE",
                   help="also save the plan (the best trajectory of each side, or the given "
                   "one) as a plan file for `surgplan report --plan` and the window")
    s.add_argument("--segmentation", metavar="DIR",
                   help="reuse a folder written by `surgplan segment` instead of segmenting")
    s.add_argument("--series", help="Series Instance UID to use (default: CT, most slices)")
    s.add_argument("--modality", choices=["ct", "mr"], help="what the image is (NIfTI input)")
    s.add_argument("--pdf", metavar="FILE", help="also write the plan report of the best "
                   "trajectory as a PDF")
    s.add_argument("--anonymous", action="store_true",
                   help="leave the patient's identity, dates, UIDs and paths out of the PDF")
    s.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from surgplan.cli import TerminalProgress
    from surgplan.core.progress import SubProgress
    from surgplan.cli_export import load_case
    from surgplan.planning import PlanningContext, Trajectory, evaluate, propose
    from surgplan.planning.procedures import get_procedure, split_level

    if args.side == "both" and args.entry:
        print("surgplan plan: --entry/--target give one trajectory: choose --side left or right",
              file=sys.stderr)
        return 2
    if bool(args.entry) != bool(args.target):
        print("surgplan plan: give both --entry and --target, or neither (to propose)",
              file=sys.stderr)
        return 2
    proc = get_procedure(args.procedure)
    try:
        split_level(proc, args.level)  # before minutes of loading and segmenting
        tool = parse_tool(proc, args.tool) if args.tool else None
    except (KeyError, ValueError) as exc:
        print(f"surgplan plan: {exc.args[0]}", file=sys.stderr)
        return 2
    progress = TerminalProgress(stream=sys.stderr)  # the current stream (tests swap it)
    vol, anatomy = load_case(args.path, series=args.series, modality=args.modality,
                             segmentation=args.segmentation,
                             progress=SubProgress(progress, 0, 0.7))
    ctx = PlanningContext.build(anatomy, vol, progress=SubProgress(progress, 0.7, 0.95))
    if args.entry:
        t = tool or proc.tools[0]
        tr = Trajectory(proc.key, args.level, args.side, t, _point(args.entry, "--entry"),
                        _point(args.target, "--target"))
        results = [evaluate(ctx, tr)]
    else:
        sides = ("left", "right") if args.side == "both" else (args.side,)
        per_side = [propose(ctx, proc, args.level, sd, tool=tool, count=args.count)
                    for sd in sides]
        results = [m for props in per_side for m in props]
    progress.done()
    for n, m in enumerate(results, 1):
        print_metrics(m, n if len(results) > 1 else None)
    conflicts = []
    if len(results) > 1 and not args.entry:
        from surgplan.planning import plan_conflicts

        # the plan a surgeon would take: the best trajectory of each side
        best = [props[0].trajectory for props in per_side if props]
        conflicts = plan_conflicts(best) if len(best) > 1 else []
        if len(best) > 1:
            print("\nconflicts between the best trajectories: " +
                  ("none" if not conflicts else ""))
            for c in conflicts:
                print(f"  - {c.message}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"source": str(args.path), "skin": ctx.skin_note,
             "trajectories": [m.to_dict() for m in results],
             "conflicts": [c.to_dict() for c in conflicts]}, indent=2))
        print(f"metrics written to {args.json}")
    if args.save_plan:
        from surgplan.planning import CaseReference, Plan, save_plan

        chosen = ([results[0].trajectory] if args.entry
                  else [props[0].trajectory for props in per_side if props])
        save_plan(Plan(CaseReference.from_volume(vol), tuple(chosen)), args.save_plan)
        print(f"plan saved to {args.save_plan} ({len(chosen)} trajectory(ies))")
    if args.pdf:
        from surgplan.report.plan_report import report_proposal

        rep = report_proposal(vol, anatomy, ctx, results[0], args.pdf, anonymous=args.anonymous,
                              progress=TerminalProgress(stream=sys.stderr))
        print(f"report of {results[0].trajectory.name}: {rep.pdf} ({rep.pages} pages)")
    return 0


def print_metrics(m, rank: Optional[int] = None, out=None) -> None:
    """A plain-text table of one trajectory's metrics."""
    from surgplan.planning.procedures import describe_tool

    out = out or sys.stdout
    t = m.trajectory
    head = f"#{rank} " if rank else ""
    w = out.write
    w(f"\n{head}{t.procedure} {t.level} {t.side} — "
      f"{describe_tool(t.tool, name=True, driver_reach=True)}\n")
    w(f"  risk: {m.risk.category.upper()}\n")
    fmt = lambda p: "  ".join(f"{v:7.1f}" for v in p)  # noqa: E731
    w(f"  entry  (LPS mm) {fmt(t.entry_lps)}\n  target (LPS mm) {fmt(t.target_lps)}\n")
    w(f"  depth {m.length_mm:.1f} mm ({'reaches' if m.reaches else 'does NOT reach'}); "
      f"entry {m.midline_distance_mm:.1f} mm from the midline\n")
    for frame in ("patient", "vertebra"):
        a = m.angles_deg[frame]
        w(f"  angles ({frame:8s}) medial tilt {a['medial_tilt']:6.1f}°  caudal tilt "
          f"{a['caudal_tilt']:6.1f}°  to axial {a['axial']:5.1f}°  sagittal "
          f"{a['sagittal']:5.1f}°  coronal {a['coronal']:5.1f}°\n")
    w(f"  {'structure':28s} {'provenance':10s} {'clearance':>10s} {'P(contact)':>11s} "
      f"{'cum. risk':>9s}\n")
    for s in m.structures:
        if not s.assessed:
            w(f"  {s.name:28s} {'—':10s} {'not in the anatomy: not assessed':>32s}\n")
            continue
        c = f"{s.clearance_mm:.1f} mm" if not s.far else f"> {s.clearance_mm:.0f} mm"
        w(f"  {s.name:28s} {s.provenance or '':10s} {c:>10s} "
          f"{100 * (s.contact_probability or 0):10.1f}% {s.cumulative_risk:9.3f}\n")
    bone = {k: v for k, v in m.bone_removed_ml.items() if v >= 0.005}
    if bone:
        w("  bone in the tool's path: " + ", ".join(f"{k} {v:.2f} ml" for k, v in bone.items())
          + "\n")
    if m.kambin is not None:
        k = m.kambin
        where = "" if k.passes_inside is None else \
            f"; the axis passes {'inside' if k.passes_inside else 'outside'} it"
        w(f"  Kambin triangle: inscribed circle {k.triangle.inscribed_diameter_mm:.1f} mm; "
          f"tool {'fits' if k.fits else 'does not fit'}{where}\n")
    elif m.kambin_note:
        w(f"  {m.kambin_note}\n")
    if m.pedicle is not None:
        p = m.pedicle
        w(f"  pedicle: isthmus {p.isthmus_width_mm:.1f} mm, screw {p.screw_diameter_mm:g} mm, "
          f"breach {p.breach_mm:.1f} mm → Gertzbein–Robbins {p.grade}; cortical "
          f"{100 * p.cortical_share:.0f} %, cancellous {100 * p.cancellous_share:.0f} %, soft "
          f"{100 * p.soft_share:.0f} %\n")
    for r in m.risk.reasons:
        w(f"  - {r}\n")
    for note in m.notes:
        w(f"  note: {note}\n")


def main(argv: Optional[List[str]] = None) -> int:  # pragma: no cover - via surgplan.cli
    from surgplan.cli import main as cli_main

    return cli_main(["plan"] + list(argv or []))
