"""The plan report as a surgeon receives it: the PDF opens, says the plan's numbers and names,
shows real pictures, embeds its fonts, stays anonymous when asked, refuses incomplete plans."""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest

from surgplan.cli import main
from surgplan.core.errors import PlanFileError
from surgplan.planning import CaseReference, Plan, save_plan
from surgplan.report.pdf import ReportInputs, write_report_pdf
from surgplan.report.plan_report import CSV_COLUMNS, build_report

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="poppler-utils (pdftotext, pdftoppm) missing")


def pdftext(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def case(report_case):
    return report_case


@pytest.fixture(scope="module")
def plan(report_plan):
    return report_plan


@dataclasses.dataclass
class Written:
    pdf: object
    csv: object
    metrics: tuple
    pages: int
    stdout: str


@pytest.fixture(scope="module")
def report(case, plan):
    """`surgplan report` run once on the DICOM phantom, as a user runs it."""
    from surgplan.planning import evaluate

    d, vol, anatomy, ctx = case
    save_plan(plan, d / "plan.json")
    pdf, table = d / "out" / "plan.pdf", d / "out" / "metrics.csv"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["report", str(d / "Roe_Jane_CT"), "--plan", str(d / "plan.json"),
                       "--pdf", str(pdf), "--csv", str(table), "--segmentation", str(d / "seg")])
    assert status == 0
    pages = int(re.search(r"\((\d+) pages\)", buf.getvalue()).group(1))
    return Written(pdf, table, tuple(evaluate(ctx, t) for t in plan.trajectories), pages,
                   buf.getvalue())


def test_pdf_text_holds_the_plans_numbers_and_names(report, plan, case):
    ct = case[1]
    assert "teld L4-L5 left" in report.stdout
    text = pdftext(report.pdf)
    flat = re.sub(r"\s+", " ", text)
    m1, m2 = report.metrics
    assert "Spine surgery plan" in flat
    assert "PHANTOM, SPINE" in flat and ct.metadata.patient_id in flat
    assert "Transforaminal" in flat and "L4-L5" in flat and "left" in flat
    assert m1.trajectory.tool.name in flat
    assert m1.risk.category.upper() in flat and m2.risk.category.upper() in flat
    t = m1.trajectory
    assert f"({t.target_lps[0]:.1f}, {t.target_lps[1]:.1f}, {t.target_lps[2]:.1f})" in flat
    assert f"{m1.length_mm:.1f} mm" in flat
    root = m1.structure("nerve root L4 left")
    assert root.assessed
    assert re.search(rf"nerve root L4 left \(no-go\) {root.clearance_mm:.1f}", flat)
    assert "Kambin" in flat and "Gertzbein–Robbins grade" in flat
    pat = m1.angles_deg["patient"]
    assert f"rotated {abs(pat['medial_tilt']):.1f}° from posteroanterior" in flat  # the C-arm
    assert f"{abs(pat['caudal_tilt']):.1f}° " in flat
    assert m2.pedicle is not None and f"grade {m2.pedicle.grade}" in flat
    assert "Check the exiting L4 root" in flat  # the surgeon's notes
    assert "How the anatomy was obtained" in flat and "segmented" in flat
    pages = report.pages
    assert pages >= 6
    for n in range(1, pages + 1):
        assert f"page {n} of {pages}" in flat
    assert ct.metadata.series_instance_uid[:30] in flat  # footer names the input series


def test_pdf_pictures_are_real_and_fonts_embedded(report):
    out = subprocess.run(["pdfimages", "-list", str(report.pdf)], capture_output=True,
                         text=True, check=True).stdout.splitlines()[2:]
    assert len(out) >= 2 * 5 + 3  # five per trajectory, three of the segmentation
    fonts = subprocess.run(["pdffonts", str(report.pdf)], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]
    assert fonts and all(line.split()[-5] == "yes" for line in fonts)  # the "emb" column
    # Every picture, taken out of the file again, shows something: many grey levels,
    # not one flat colour.
    tmp = report.pdf.parent / "images"
    tmp.mkdir(exist_ok=True)
    subprocess.run(["pdfimages", str(report.pdf), str(tmp / "im")], check=True)
    from PIL import Image

    images = sorted(tmp.glob("im-*"))
    assert len(images) == len(out)
    for p in images:
        a = np.asarray(Image.open(p).convert("L"), float)
        assert a.std() > 15 and len(np.unique(a)) > 50, p.name


def test_metrics_csv_matches_the_metrics(report):
    rows = list(csv.DictReader(open(report.csv, encoding="utf-8")))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == sum(len(m.structures) for m in report.metrics)
    m1 = report.metrics[0]
    r = next(r for r in rows if r["trajectory"] == m1.trajectory.name
             and r["structure"] == "nerve root L4 left")
    assert float(r["clearance_mm"]) == pytest.approx(m1.structure("nerve root L4 left")
                                                     .clearance_mm, abs=0.01)
    assert r["risk_category"] == m1.risk.category
    assert float(r["depth_mm"]) == pytest.approx(m1.length_mm, abs=0.01)


def test_anonymous_report_holds_no_identity(case, plan, report, tmp_path):
    d, ct, anatomy, ctx = case
    inputs = ReportInputs(volume=ct, anatomy=anatomy, plan=plan, metrics=report.metrics,
                          anonymous=True)
    pdf = write_report_pdf(tmp_path / "anon.pdf", inputs)
    text = pdftext(pdf)
    md = ct.metadata
    for value in (md.patient_name, "PHANTOM, SPINE", md.patient_id, "1980-01-01",
                  md.series_instance_uid[:20], md.study_instance_uid[:20], "Roe_Jane",
                  md.series_description, md.study_description):
        assert value not in text, value
    assert "Anonymised" in text or "anonymised" in text
    raw = pdf.read_bytes()
    assert md.patient_id.encode() not in raw and b"Roe_Jane" not in raw


def test_incomplete_or_foreign_plans_are_refused(case, plan, tmp_path):
    d, ct, anatomy, ctx = case
    empty = Plan(CaseReference.from_volume(ct), ())
    with pytest.raises(PlanFileError, match="no trajectory"):
        build_report(ct, anatomy, empty, tmp_path / "x.pdf", context=ctx)
    other = dataclasses.replace(plan, case=dataclasses.replace(plan.case,
                                                               series_uid="1.2.3.4.5"))
    with pytest.raises(PlanFileError, match="made on series 1.2.3.4.5"):
        build_report(ct, anatomy, other, tmp_path / "x.pdf", context=ctx)
    with pytest.raises(PlanFileError, match="trajectories but"):
        write_report_pdf(tmp_path / "x.pdf", ReportInputs(ct, anatomy, plan, metrics=()))
    assert not list(tmp_path.iterdir())


def test_report_command_refuses_an_empty_plan_before_any_work(case, plan, tmp_path, capsys):
    d, vol, anatomy, ctx = case
    save_plan(dataclasses.replace(plan, trajectories=()), tmp_path / "empty.json")
    assert main(["report", str(d / "Roe_Jane_CT"), "--plan", str(tmp_path / "empty.json"),
                 "--pdf", str(tmp_path / "empty.pdf")]) == 1
    err = capsys.readouterr().err
    assert "no trajectory" in err and "empty.json" in err and "Traceback" not in err
    assert not (tmp_path / "empty.pdf").exists()


def test_plan_command_reports_in_one_go(case, plan, tmp_path, capsys):
    d, vol, anatomy, ctx = case
    t = plan.trajectories[0]
    pdf = tmp_path / "oneshot.pdf"
    xyz = (lambda p: ",".join(f"{v:.3f}" for v in p))
    assert main(["plan", str(d / "Roe_Jane_CT"), "--procedure", "teld", "--level", "L4-L5",
                 "--side", "left", "--entry", xyz(t.entry_lps), "--target", xyz(t.target_lps),
                 "--segmentation", str(d / "seg"), "--pdf", str(pdf), "--anonymous"]) == 0
    assert "report of teld L4-L5 left" in capsys.readouterr().out
    text = re.sub(r"\s+", " ", pdftext(pdf))
    assert "Anonymised case" in text and "PHANTOM" not in text
    assert "Trajectory 1: teld L4-L5 left" in text and "Structures at risk" in text


def test_rests_on_a_model_names_only_what_the_plan_assessed(case, plan, tmp_path):
    """The page-1 caveat lists the modelled structures the risk figures rest on, not
    every modelled label (a foramen is a space the planner never assesses)."""
    from surgplan.imaging.anatomy import Anatomy
    from surgplan.report.plan_report import build_report

    d, vol, anatomy, ctx = case
    modelled = {"nerve root L4 left", "foramen L4-L5 left"}
    items = tuple(dataclasses.replace(s, provenance="modelled") if s.name in modelled else s
                  for s in anatomy.items)
    assert modelled <= {s.name for s in items}
    a = Anatomy(anatomy.shape, anatomy.ijk_to_lps, anatomy.vertebrae, anatomy.structures,
                items, anatomy.findings, anatomy.parts)
    out = build_report(vol, a, plan, tmp_path / "p.pdf", context=ctx)
    flat = re.sub(r"\s+", " ", pdftext(out.pdf))
    caveat = flat[flat.index("Rests on a model:"):flat.index("were modelled from bony")]
    assert "nerve root L4 left" in caveat and "foramen" not in caveat
