"""Subcommands that take a study or a plan out of SurgPlan: ``anonymize`` (and the report).

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
