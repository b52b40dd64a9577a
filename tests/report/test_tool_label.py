"""A pedicle screw reads as its implant (diameter × screw length) on the terminal and in the
PDF; the driver's 150 mm reach, read after the diameter, was taken for the screw."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest

from surgplan.cli_plan import print_metrics
from surgplan.planning import Plan, Tool, evaluate
from surgplan.planning.procedures import PROCEDURES, describe_tool
from surgplan.report.pdf import ReportInputs, write_report_pdf


def test_every_catalogue_screw_reads_as_its_implant():
    for tool in PROCEDURES["pedicle-screw"].tools:
        d, length = tool.diameter_mm, tool.implant_length_mm
        assert describe_tool(tool) == f"pedicle screw {d:g} × {length:g} mm"
        assert f"{tool.working_length_mm:g}" not in describe_tool(tool, name=True)
        assert describe_tool(tool, driver_reach=True).endswith(
            f", driver reach {tool.working_length_mm:g} mm")


def test_cannulas_and_needles_read_with_their_working_length():
    cannula = PROCEDURES["teld"].tool("teld-cannula-8.0")
    assert describe_tool(cannula) == "working cannula, Ø 8 mm, working length 200 mm"
    assert describe_tool(cannula, name=True).startswith("teld-cannula-8.0: working cannula")
    needle = PROCEDURES["intradiscal"].tool("needle-22G-90")
    assert describe_tool(needle) == "spinal needle 22 G, Ø 0.7 mm, working length 90 mm"
    # driver_reach concerns screws only: a needle's working length is its own length
    assert describe_tool(needle, driver_reach=True) == describe_tool(needle)
    # a user's tool (`--tool NAME:DIAMETER:LENGTH`) keeps the name it was given by
    mine = Tool("long-cannula", 7.5, 220.0, "user tool", "user")
    assert describe_tool(mine) == "long-cannula (user tool), Ø 7.5 mm, working length 220 mm"


@pytest.fixture(scope="module")
def screw_metrics(report_case, report_plan):
    d, vol, anatomy, ctx = report_case
    screw = next(t for t in report_plan.trajectories if t.procedure == "pedicle-screw")
    assert screw.tool.implant_length_mm == 45.0 and screw.tool.working_length_mm == 150.0
    return evaluate(ctx, screw)


def test_plan_output_heads_a_screw_with_its_implant(screw_metrics):
    buf = io.StringIO()
    print_metrics(screw_metrics, rank=1, out=buf)
    head = buf.getvalue().strip().splitlines()[0]
    assert head == ("#1 pedicle-screw L4 right — screw-6.5x45: pedicle screw 6.5 × 45 mm, "
                    "driver reach 150 mm")


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils missing")
def test_pdf_names_the_screw_by_its_implant(report_case, report_plan, screw_metrics, tmp_path):
    d, vol, anatomy, ctx = report_case
    plan = Plan(report_plan.case, (screw_metrics.trajectory,))
    pdf = write_report_pdf(tmp_path / "screw.pdf", ReportInputs(
        vol, anatomy, plan, [screw_metrics],
        procedure_titles={k: p.title for k, p in PROCEDURES.items()}))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = re.sub(r"\s+", " ", text)
    assert "pedicle screw 6.5 × 45 mm" in flat
    assert "driver reach 150 mm" in flat
    assert not re.search(r"6\.5 mm,? (×|x) ?150", flat) and "150 mm working length" not in flat
