"""Subcommands that take a study or a plan out of SurgPlan: ``anonymize``, ``report``, ``export``.

:func:`register` adds them to the parser of :mod:`surgplan.cli`; each runs as
``cmd_NAME(args) -> int`` like the other subcommands, so SurgPlan's own errors
become a one-paragraph message and exit status 1.
"""

from __future__ import annotations

import argparse
import sys


def cmd_anonymize(args: argparse.Namespace) -> int:
    from surgplan.cli import TerminalProgress
    from surgplan.core.errors import SurgplanError
    from surgplan.report.anonymize import anonymize

    if args.date_offset_days == 0:
        raise SurgplanError("--date-offset-days 0 would keep the dates; give a non-zero "
                            "number of days, or leave it out for a random offset.")
    progress = TerminalProgress()
    result = anonymize(args.input, args.output, date_offset_days=args.date_offset_days,
                       progress=progress)
    progress.done()
    for sk in result.skipped:
        print(f"skipped {sk.path}: {sk.reason}", file=sys.stderr)
    print(
        f"anonymised {len(result.files)} file(s) of {result.n_series} series "
        f"({result.n_studies} stud{'y' if result.n_studies == 1 else 'ies'}, "
        f"{result.n_patients} patient(s)) into {result.out_dir}/; "
        f"dates moved by {result.date_offset_days} days; {len(result.skipped)} file(s) skipped"
    )
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def load_case(path, *, series=None, modality=None, segmentation=None, progress=None,
              check_volume=None):
    """(volume, anatomy) of a study: the anatomy read from a ``surgplan segment`` folder,
    or segmented now (CT, or T2 MR where available). ``check_volume(volume)``, when
    given, runs before the segmentation, to refuse before minutes of work."""
    from surgplan.core.progress import SubProgress
    from surgplan.imaging.loader import load_volume
    from surgplan.imaging.segment import segment_volume, with_modality

    mod = modality.upper() if modality else None
    vol = load_volume(path, series_uid=series, modality=mod,
                      progress=SubProgress(progress, 0, 0.3))
    if check_volume is not None:
        check_volume(vol)
    if segmentation:
        from surgplan.imaging.segmentation_files import read_segmentation

        return vol, read_segmentation(segmentation, vol)
    vol = with_modality(vol, mod, str(path))
    return vol, segment_volume(vol, progress=SubProgress(progress, 0.3, 1.0))


def cmd_report(args: argparse.Namespace) -> int:
    from surgplan.cli import TerminalProgress
    from surgplan.core.errors import DicomImportError
    from surgplan.core.progress import SubProgress
    from surgplan.planning import load_plan
    from surgplan.report.pdf import check_complete
    from surgplan.report.plan_report import build_report, check_plan_matches

    case_file = is_case_file(args.plan)
    measurements = []
    if case_file:
        plan, measurements = _plan_of_case_file(args.plan)
    else:
        plan = load_plan(args.plan)
    if not plan.trajectories:  # refuse before loading and segmenting for nothing
        check_complete(plan, (), args.plan)
    progress = TerminalProgress()
    series = args.series or (plan.case.series_uid or None)
    # A case file's own (possibly edited) segmentation is read instead of segmenting
    # again, unless --segmentation names another.
    from_case = case_file and not args.segmentation and _case_has_anatomy(args.plan)

    def load(series_uid):
        if from_case:
            return _load_with_case_anatomy(args.path, args.plan, series_uid, args.modality,
                                           SubProgress(progress, 0, 0.4))
        return load_case(args.path, series=series_uid, modality=args.modality,
                         segmentation=args.segmentation, progress=SubProgress(progress, 0, 0.4))

    try:
        vol, anatomy = load(series)
    except DicomImportError:
        # The plan's series may carry another key in this input (a synthesised one when
        # the files have empty UIDs): take the default series; its match with the plan
        # is checked next.
        if args.series or series is None:
            raise
        vol, anatomy = load(None)
    check_plan_matches(plan, vol, args.plan)
    result = build_report(vol, anatomy, plan, args.pdf, csv_path=args.csv,
                          anonymous=args.anonymous, plan_source=args.plan,
                          measurements=measurements, progress=SubProgress(progress, 0.4, 1.0))
    progress.done()
    if case_file:
        print(f"{args.plan}: {len(measurements)} measurement"
              f"{'s' if len(measurements) != 1 else ''}"
              + (", anatomy from the case file" if from_case else ""))
    for m in result.metrics:
        print(f"{m.trajectory.name}: {m.risk.category} risk, depth {m.length_mm:.1f} mm")
    print(f"report: {result.pdf} ({result.pages} pages)")
    if result.csv:
        print(f"metrics: {result.csv}")
    return 0


def is_case_file(path) -> bool:
    """True for a ``.surgplan`` case file (a zip archive), False for a plan JSON file."""
    import zipfile
    from pathlib import Path

    p = Path(path)
    return p.suffix.lower() == ".surgplan" or (p.is_file() and zipfile.is_zipfile(p))


def _plan_of_case_file(path):
    """(plan, measurements) kept in a ``.surgplan`` file (the window's File ▸ Save plan).

    Raises
    ------
    PlanFileError
        Not a case file, no plan in it, or a member that does not read.
    """
    import json
    import zipfile

    from surgplan.core.errors import PlanFileError
    from surgplan.planning.plan_files import plan_from_dict
    from surgplan.planning.case_files import read_manifest, read_measurements

    read_manifest(path)
    with zipfile.ZipFile(path) as zf:
        if "plan.json" not in zf.namelist():
            raise PlanFileError(f"{path}: the case file holds no plan (only a segmentation or "
                                "measurements); plan a trajectory in the window and save again")
        try:
            data = json.loads(zf.read("plan.json").decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanFileError(f"{path}: its plan does not read ({exc}); the file is "
                                "damaged: save the case again") from None
    return plan_from_dict(data, f"{path}: plan.json"), read_measurements(path)


def _case_has_anatomy(path) -> bool:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return "segmentation/labels.json" in zf.namelist()


def _load_with_case_anatomy(study, case_path, series, modality, progress):
    """(volume, anatomy): the study's images, the anatomy kept in the case file."""
    from surgplan.imaging.loader import load_volume
    from surgplan.planning.case_files import load_case as load_case_file

    vol = load_volume(study, series_uid=series, modality=modality.upper() if modality else None,
                      progress=progress)
    return vol, load_case_file(case_path, vol)[2]


def cmd_export(args: argparse.Namespace) -> int:
    from surgplan.cli import TerminalProgress
    from surgplan.core.progress import SubProgress
    from surgplan.report.exports import export_case

    plan = None
    if args.plan:
        from surgplan.planning import load_plan
        from surgplan.report.pdf import check_complete

        plan = load_plan(args.plan)
        if not plan.trajectories:
            check_complete(plan, (), args.plan)
    progress = TerminalProgress()

    def check_volume(vol):  # the SEG's source, before minutes of segmenting
        if args.dicom_seg:
            from surgplan.report.dicom_seg import require_anonymised_source, source_datasets

            headers = source_datasets(vol, args.path)
            if args.anonymous:
                require_anonymised_source(headers, args.path)

    vol, anatomy = load_case(args.path, series=args.series, modality=args.modality,
                             segmentation=args.segmentation, check_volume=check_volume,
                             progress=SubProgress(progress, 0, 0.4))
    written = export_case(vol, anatomy, args.out, nifti=not args.no_nifti,
                          dicom_seg=args.dicom_seg, meshes=not args.no_meshes,
                          pictures=not args.no_pictures, plan=plan, source=args.path,
                          anonymous=args.anonymous, progress=SubProgress(progress, 0.4, 1.0))
    progress.done()
    print(f"exported to {args.out}/" + (" (anonymous)" if args.anonymous else ""))
    for key, value in written.items():
        n = len(value) if isinstance(value, (list, dict)) else 1
        print(f"    {key}: {n} file(s)" if key in ("meshes", "pictures") else f"    {key}")
    return 0


def register(sub) -> None:
    """Add the export subcommands to ``sub`` (the parser's ``add_subparsers`` object)."""
    s = sub.add_parser(
        "anonymize",
        help="write a de-identified copy of a DICOM study (PS3.15 basic profile)",
        description="Write a de-identified copy of every DICOM file in IN (folder, .zip, "
        "DICOMDIR or file) into the new folder OUT, after the DICOM PS3.15 Basic Application "
        "Level Confidentiality Profile: identifying elements removed or emptied, the patient "
        "renamed, new UIDs consistent across files, dates shifted by one offset per run, "
        "private tags dropped. Non-DICOM files are skipped and listed. Pixels are copied "
        "unchanged (text burnt into them is reported, not removed).",
    )
    s.add_argument("input", metavar="IN", help="folder, .zip, DICOMDIR or DICOM file")
    s.add_argument("output", metavar="OUT", help="new folder for the anonymised copy")
    s.add_argument(
        "--date-offset-days",
        type=int,
        default=None,
        metavar="N",
        help="move every date by N days (non-zero; default: random, 1 to 10 years back)",
    )
    s.set_defaults(func=cmd_anonymize)

    s = sub.add_parser(
        "report",
        help="write the plan report (PDF) and the metrics CSV of a plan",
        description="Evaluate the plan (plan.json from `surgplan plan` or the GUI) on the "
        "study at PATH and write the PDF a surgeon prints: patient and study (or anonymised), "
        "each trajectory with its landmarks, C-arm angles, per-structure clearances and "
        "contact probabilities, bone to remove, Kambin or screw fit, pictures, the user's "
        "measurements (from a .surgplan case file) and how the anatomy was obtained. A plan "
        "without trajectories is refused.",
    )
    s.add_argument("path", help="the study the plan was made on (folder, .zip, DICOMDIR, "
                   "file or volume file)")
    s.add_argument("--plan", required=True,
                   help="plan file (JSON), or a case file (.surgplan, File ▸ Save plan in the "
                   "window): its plan, segmentation and measurements are reported")
    s.add_argument("--pdf", required=True, help="PDF file to write")
    s.add_argument("--csv", help="also write the metrics CSV here")
    s.add_argument("--segmentation", metavar="DIR",
                   help="read the anatomy from this `surgplan segment` folder instead of "
                   "segmenting again")
    s.add_argument("--series", help="Series Instance UID (default: the plan's series)")
    s.add_argument("--modality", choices=["ct", "mr"], help="what the image is (NIfTI input)")
    s.add_argument("--anonymous", action="store_true",
                   help="leave the patient's identity, dates, UIDs and paths out")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser(
        "export",
        help="write a case's label maps (NIfTI), DICOM SEG, meshes (STL, PLY), pictures, "
        "plan and metrics",
        description="Write the exports of a study into DIR: labels/*.nii.gz with "
        "labels.json, segmentation.dcm (with --dicom-seg), meshes/ (STL and PLY per "
        "structure, LPS mm), pictures/*.png, and with --plan also plan.json and metrics.csv "
        "and the trajectory pictures. --anonymous leaves identity, dates, UIDs and paths out "
        "of every file.",
    )
    s.add_argument("path", help="folder, .zip, DICOMDIR, DICOM file or volume file")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--segmentation", metavar="DIR",
                   help="read the anatomy from this `surgplan segment` folder")
    s.add_argument("--plan", help="plan file (JSON): adds plan.json, metrics.csv, pictures")
    s.add_argument("--series", help="Series Instance UID to use")
    s.add_argument("--modality", choices=["ct", "mr"], help="what the image is (NIfTI input)")
    s.add_argument("--dicom-seg", action="store_true", help="also write segmentation.dcm")
    s.add_argument("--no-nifti", action="store_true", help="skip the NIfTI label maps")
    s.add_argument("--no-meshes", action="store_true", help="skip the STL/PLY meshes")
    s.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    s.add_argument("--anonymous", action="store_true",
                   help="leave the patient's identity, dates, UIDs and paths out of every file")
    s.set_defaults(func=cmd_export)
