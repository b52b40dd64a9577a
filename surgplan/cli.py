"""The ``surgplan`` command: the same pipeline as the GUI, with no display.

Each subcommand is a function ``cmd_NAME(args) -> int`` (the exit status);
:func:`main` parses the arguments, runs one, and turns SurgPlan's own errors
into a one-paragraph message and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, TextIO

from surgplan import __version__
from surgplan.core.errors import OperationCancelled, SurgplanError


class TerminalProgress:
    """A progress bar on stderr for work that takes more than a second.

    On a terminal the bar redraws in place; in a log (not a TTY) a line is
    written at most every 10 %, so CI logs stay short.
    """

    def __init__(self, stream: TextIO = sys.stderr, delay_s: float = 1.0, quiet: bool = False):
        self._stream = stream
        self._start = time.monotonic()
        self._delay_s = delay_s
        self._quiet = quiet
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._drawn = False

    def __call__(self, fraction: float, message: str) -> None:
        if self._quiet or time.monotonic() - self._start < self._delay_s:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        if self._tty:
            width = 30
            filled = int(round(width * fraction))
            bar = "#" * filled + "-" * (width - filled)
            self._stream.write(f"\r[{bar}] {fraction * 100:5.1f}% {message[:60]:<60}")
            self._stream.flush()
            self._drawn = True
        else:
            decile = int(fraction * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                self._stream.write(f"  {fraction * 100:3.0f}% {message}\n")
                self._stream.flush()

    def done(self) -> None:
        """End the bar's line (call once the work is over)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# --- inspect -------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from surgplan.imaging.loader import index_input

    progress = TerminalProgress(quiet=args.json)
    errors: List[str] = []
    try:
        study = index_input(args.path, progress=progress)
    except SurgplanError as exc:
        progress.done()
        if args.json:
            _print_json({"series": [], "skipped": [], "errors": [str(exc)]})
            return 1
        raise
    progress.done()
    with study:
        if not study.series:
            errors.append(study.no_volume_message())
        if args.json:
            d = study.as_dict()
            d["errors"] = errors
            _print_json(d)
        else:
            _print_study(study)
            for e in errors:
                print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


def _print_study(study) -> None:
    print(f"{study.source}: {len(study.series)} series, {len(study.skipped)} file(s) skipped")
    for n, s in enumerate(study.series, 1):
        sx, sy, sz = s.spacing_mm
        m = s.metadata
        print(f"\n[{n}] {s.modality or '??'}  {s.description or '(no description)'}")
        print(f"    uid        {s.uid}")
        print(f"    size       {s.columns} × {s.rows} × {s.slices} slices")
        print(f"    spacing    {sx:.3f} × {sy:.3f} × {sz:.3f} mm")
        if s.orientation:
            print("    orientation " + " ".join(f"{o:+.3f}" for o in s.orientation))
        who = " · ".join(x for x in (m.patient_name, m.patient_id, m.study_date) if x)
        if who:
            print(f"    patient    {who}")
        what = " · ".join(
            x
            for x in (
                m.manufacturer,
                m.body_part,
                m.convolution_kernel,
                f"{m.kvp:g} kVp" if m.kvp else "",
                f"{m.slice_thickness_mm:g} mm thick" if m.slice_thickness_mm else "",
            )
            if x
        )
        if what:
            print(f"    acquired   {what}")
        for w in s.warnings:
            print(f"    warning    [{w.code}] {w.message}")
    if study.skipped:
        print("\nskipped files:")
        for sk in study.skipped[:40]:
            print(f"    {sk.path}: {sk.reason}")
        if len(study.skipped) > 40:
            print(f"    … and {len(study.skipped) - 40} more")


# --- demo ----------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from surgplan.imaging.phantom import PhantomSpec, write_demo

    out = Path(args.out)
    progress = TerminalProgress()
    spacing = tuple(args.spacing) * (3 if len(args.spacing) == 1 else 1)
    if len(spacing) != 3 or min(spacing) < 0.3 or max(spacing) > 5.0:
        raise SurgplanError(
            f"--spacing {' '.join(map(str, args.spacing))}: give one value or three (x y z), "
            "each between 0.3 and 5 mm."
        )
    written = write_demo(out, PhantomSpec(seed=args.seed, spacing_mm=spacing), progress=progress)
    progress.done()
    print(f"demo case written to {out}/")
    print(f"    {out / 'ct'}/  ({len(written['ct'])} CT slices)")
    print(f"    {out / 'mr'}/  ({len(written['mr'])} MR slices)")
    for key in ("labels", "label_table", "landmarks"):
        print(f"    {written[key]}")
    return 0


# --- segment -----------------------------------------------------------------------------


def cmd_segment(args: argparse.Namespace) -> int:
    from surgplan.core.progress import SubProgress
    from surgplan.imaging.loader import load_volume
    from surgplan.imaging.segment import segment_volume, with_modality
    from surgplan.imaging.segmentation_files import write_segmentation

    progress = TerminalProgress()
    modality = args.modality.upper() if args.modality else None
    vol = load_volume(
        args.path, series_uid=args.series, modality=modality, progress=SubProgress(progress, 0, 0.2)
    )
    vol = with_modality(vol, modality, args.path)
    if args.dicom_seg:  # refuse before minutes of work when the SEG cannot be made
        from surgplan.report.dicom_seg import (
            require_anonymised_source, source_datasets, write_dicom_seg,
        )

        headers = source_datasets(vol, args.path)
        if args.anonymous:
            require_anonymised_source(headers, args.path)
    anatomy = segment_volume(vol, progress=SubProgress(progress, 0.2, 0.75))
    out = write_segmentation(
        anatomy, vol, args.out, meshes=not args.no_meshes, anonymous=args.anonymous,
        progress=SubProgress(progress, 0.75, 1)
    )
    if args.dicom_seg:
        # With --anonymous the source is an anonymised copy (checked above): the SEG copies
        # its already pseudonymous headers and references its UIDs, so it overlays that copy.
        write_dicom_seg(anatomy, vol, out / "segmentation.dcm", source=args.path)
    progress.done()
    _print_anatomy_summary(anatomy, out)
    if args.dicom_seg:
        print(f"DICOM SEG referencing series {vol.metadata.series_instance_uid}: "
              f"{out / 'segmentation.dcm'}")
    return 0


def _print_anatomy_summary(anatomy, out: Path) -> None:
    verts = [s for s in anatomy.items if s.map == "vertebrae"]
    others = [s for s in anatomy.items if s.map != "vertebrae"]
    names = ", ".join(s.name + ("?" if s.provisional else "") for s in verts) or "none"
    print(f"vertebrae ({len(verts)}): {names}")
    if any(s.provisional for s in verts):
        print("    ? = provisional name: check the level before planning (see findings)")
    print(f"other structures ({len(others)}): " + (", ".join(s.name for s in others) or "none"))
    for f in anatomy.findings:
        print(f"finding: {f}")
    print(f"written to {out}/: vertebrae.nii.gz, structures.nii.gz, labels.json, meshes/")


# --- gui -----------------------------------------------------------------------------


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def cmd_gui(args: argparse.Namespace) -> int:
    if not _has_display():
        print(
            "surgplan: no display (DISPLAY is not set), so the window cannot open; "
            "running the headless pipeline instead (or run under `xvfb-run -a surgplan gui`).",
            file=sys.stderr,
        )
        if getattr(args, "screenshot", None):
            return 1
        # Without a window, do what the window would: load (and segment) the
        # study, and say what was found.
        return headless_pipeline(args.path)
    from surgplan.ui.app import run

    return run(args.path, screenshot=getattr(args, "screenshot", None))


def phantom_fingerprint() -> str:
    """Eight hex digits that change whenever the phantom's code changes.

    The demo case is the phantom written to DICOM once; a copy made by older
    phantom code (another lamina, no S1 roots) would go on being shown, with
    truth labels the current segmentation no longer matches.
    """
    import hashlib

    import surgplan.imaging as imaging

    digest = hashlib.sha1()
    for f in sorted(Path(imaging.__file__).parent.glob("phantom*.py")):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:8]


def demo_cache_dir() -> Path:
    """Where the built-in demo case is written once and reused (one per phantom code)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "surgplan" / f"demo-{__version__}-{phantom_fingerprint()}"


def ensure_demo_case(progress=None) -> Path:
    """Write the demo case to the cache unless a complete copy is there.

    Copies this version wrote with other phantom code are removed (≈ 60 MB each).
    """
    import shutil

    from surgplan.imaging.phantom import PhantomSpec, write_demo

    out = demo_cache_dir()
    marker = out / ".complete"
    if not marker.exists():
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        write_demo(tmp, PhantomSpec(), progress=progress)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        marker.write_text("ok\n")
        for old in out.parent.glob(f"demo-{__version__}*"):
            if old != out and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return out


def headless_pipeline(path: Optional[str]) -> int:
    """Load a study (or the demo case) through the real readers and report it."""
    import numpy as np

    from surgplan.imaging.loader import index_input

    progress = TerminalProgress()
    if path is None:
        print("SurgPlan: preparing the built-in demo case (a synthetic lumbar CT and MR) …")
        demo = ensure_demo_case(progress)
        progress.done()
        path = str(demo)
        truth = json.loads((demo / "truth-labels.json").read_text())
    else:
        truth = None
    with index_input(path, progress=progress) as study:
        progress.done()
        _print_study(study)
        entry = study.default_series()
        t0 = time.perf_counter()
        vol = entry.load(progress=progress)
        progress.done()
        dt = time.perf_counter() - t0
    lo, hi = vol.bounds_lps()
    print(
        f"\nloaded {entry.modality} series {entry.uid} in {dt:.1f} s: "
        f"{vol.array.shape[2]}×{vol.array.shape[1]}×{vol.array.shape[0]} voxels, "
        f"LPS box {np.round(lo, 1).tolist()} … {np.round(hi, 1).tolist()} mm"
    )
    for w in vol.warnings:
        print(f"    warning [{w.code}] {w.message}")
    if vol.modality in ("CT", "MR"):
        from surgplan.imaging.segment import segment_volume

        t0 = time.perf_counter()
        anatomy = segment_volume(vol, progress=progress)
        progress.done()
        print(f"\nsegmented in {time.perf_counter() - t0:.1f} s:")
        verts = [s.name + ("?" if s.provisional else "") for s in anatomy.items
                 if s.map == "vertebrae"]
        print(f"    vertebrae: {', '.join(verts) or 'none'}")
        for f in anatomy.findings:
            print(f"    finding: {f}")
    if truth is not None:
        names = [t["name"] for t in truth if t.get("kind") == "vertebra"]
        print(f"demo ground truth vertebrae: {', '.join(names)} ({len(truth)} structures in all)")
    return 0


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="surgplan",
        description="SurgPlan: planning for minimally invasive spine surgery.",
    )
    p.add_argument("--version", action="version", version=f"surgplan {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "inspect",
        help="list the series in a folder, zip, DICOMDIR or file, with warnings",
        description="List the series found (modality, size, spacing, orientation, metadata) "
        "with the loader's warnings, and the files skipped with the reason. "
        "Exits non-zero when no usable volume is found.",
    )
    s.add_argument("path", help="folder, .zip, DICOMDIR, DICOM file or .nii/.nii.gz/.nrrd/.mha")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser(
        "demo",
        help="write the synthetic spine phantom (CT + MR DICOM, truth labels)",
        description="Write the built-in demo case: DIR/ct/ and DIR/mr/ (DICOM series), "
        "DIR/truth-labels.nii.gz and DIR/truth-labels.json (value → structure name).",
    )
    s.add_argument("--out", default="surgplan-demo", help="output folder (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
    s.add_argument(
        "--spacing",
        type=float,
        nargs="+",
        default=[0.8, 0.8, 1.0],
        metavar="MM",
        help="voxel size in mm: one value or x y z (default: 0.8 0.8 1.0)",
    )
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser(
        "segment",
        help="find and name the vertebrae and the structures around them",
        description="Segment a CT: writes DIR/vertebrae.nii.gz (one label per vertebra), "
        "DIR/structures.nii.gz (discs, canal …), DIR/labels.json (value, name, kind, "
        "provenance, provisional) and DIR/meshes/ (one STL per structure, LPS mm).",
    )
    s.add_argument("path", help="folder, .zip, DICOMDIR, DICOM file or volume file")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument(
        "--modality",
        choices=["ct", "mr"],
        help="what the image is (read from DICOM; needed for NIfTI when it cannot be told)",
    )
    s.add_argument("--series", help="Series Instance UID to use (default: CT, most slices)")
    s.add_argument("--no-meshes", action="store_true", help="skip the surface meshes")
    s.add_argument("--dicom-seg", action="store_true",
                   help="also write DIR/segmentation.dcm, a DICOM SEG on the source series")
    s.add_argument("--anonymous", action="store_true",
                   help="write nothing that names the source (labels.json leaves out its path); "
                   "with --dicom-seg the input must be an anonymised copy (`surgplan anonymize`)")
    s.set_defaults(func=cmd_segment)

    s = sub.add_parser(
        "gui",
        help="open SurgPlan on a study or the demo case",
        description="Open SurgPlan on PATH, or on the built-in demo case.",
    )
    s.add_argument("path", nargs="?", help="study to open (default: the demo case)")
    s.add_argument(
        "--screenshot",
        metavar="FILE",
        help="load, segment, propose a default plan, save the whole window as a PNG and exit",
    )
    s.set_defaults(func=cmd_gui)

    from surgplan.cli_export import register as register_export_commands

    register_export_commands(sub)
    from surgplan.cli_plan import add_parser as add_plan_parser

    add_plan_parser(sub)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``surgplan`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OperationCancelled:
        print("surgplan: cancelled; nothing was written.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nsurgplan: interrupted.", file=sys.stderr)
        return 130
    except SurgplanError as exc:
        print(f"surgplan: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path that is missing, unreadable or unwritable
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"surgplan: error: {where}{exc.strerror or exc}; check the path and its "
              "permissions.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
