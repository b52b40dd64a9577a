"""The user's measurements leave the workstation with the plan: the PDF lists them (what,
value with its unit, the level they lie at) with a picture of each, a report without
measurements has no such section, and ``surgplan report`` given a ``.surgplan`` case file
prints the measurements kept in it."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from surgplan.planning import evaluate
from surgplan.planning.measurements import Measurement, measurement_level
from surgplan.report.pdf import ReportInputs, write_report_pdf

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="poppler-utils (pdftotext, pdftoppm) missing")


def pdftext(path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                         text=True, check=True).stdout
    return re.sub(r"\s+", " ", out)


def _landmark_measurements(phantom):
    """A foraminal height under the left L4 pedicle (sagittal) and an L4-L5 disc angle."""
    lm = phantom.landmarks.vertebrae
    p4, p5 = lm["L4"].pedicles["left"], lm["L5"].pedicles["left"]
    x, y = p4.isthmus_center_lps[0], p4.isthmus_center_lps[1]
    top = (x, y, p4.isthmus_center_lps[2] - 0.5 * p4.isthmus_height_mm)
    bottom = (x, y, p5.isthmus_center_lps[2] + 0.5 * p5.isthmus_height_mm)
    height = Measurement("distance", (top, bottom), "foraminal height")
    lo, up = lm["L5"].superior_endplate_center_lps, lm["L4"].inferior_endplate_center_lps
    vertex = (lo + up) / 2.0 + np.array([0.0, 25.0, 0.0])  # behind the disc, midline
    angle = Measurement.of("angle", [up - np.array([0.0, 12.0, 0.0]), vertex,
                                     lo - np.array([0.0, 12.0, 0.0])])
    return [height, angle]


def test_measurement_level_reads_the_vertebrae_at_the_points(small_phantom, small_phantom_truth):
    height, angle = _landmark_measurements(small_phantom)
    assert measurement_level(small_phantom_truth, height) == "L4-L5 left"
    assert measurement_level(small_phantom_truth, angle) == "L4-L5"
    l3 = small_phantom.landmarks.vertebrae["L3"].centroid_lps
    inside = Measurement("distance", (l3 - [5.0, 0, 0], l3 + [5.0, 0, 0]))
    assert measurement_level(small_phantom_truth, inside) == "L3"
    far = Measurement("distance", (l3 + [0, -150.0, 0], l3 + [0, -140.0, 0]))
    assert measurement_level(small_phantom_truth, far) == ""


@pytest.fixture(scope="module")
def metrics(report_case, report_plan):
    ctx = report_case[3]
    return tuple(evaluate(ctx, t) for t in report_plan.trajectories)


def test_pdf_lists_two_measurements_with_a_picture_each(report_case, report_plan, metrics,
                                                        small_phantom, tmp_path):
    from surgplan.report.figures import measurement_figures

    d, vol, anatomy, ctx = report_case
    items = _landmark_measurements(small_phantom)
    figs = measurement_figures(vol, anatomy, items)
    assert [f.key for f in figs] == ["measurement1", "measurement2"]
    # The measurement is drawn (yellow) on its picture.
    for f in figs:
        rgb = f.rgb.astype(int)
        yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 170) & (rgb[..., 2] < 110)
        assert yellow.sum() > 100, f.key
    pdf = write_report_pdf(tmp_path / "m.pdf", ReportInputs(
        vol, anatomy, report_plan, metrics, measurements=items, measurement_figures=figs))
    text = pdftext(pdf)
    section = text[text.index("Measurements 2 measurements"):]
    h, a = items
    assert re.search(rf"1 foraminal height \(distance\) {h.value:.1f} mm L4-L5 left", section)
    assert re.search(rf"2 angle \(no label\) {a.value:.1f}° L4-L5", section)
    assert "Measurement 1: foraminal height" in section and "sagittal slice" in section
    # Listed once, after the trajectories and before how the anatomy was obtained.
    assert text.index("Trajectory 2:") < text.index("Measurements 2 measurements") \
        < text.index("How the anatomy was obtained")
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]
    assert len(images) == 2


def test_pdf_without_measurements_has_no_section(report_case, report_plan, metrics, tmp_path):
    d, vol, anatomy, ctx = report_case
    pdf = write_report_pdf(tmp_path / "none.pdf", ReportInputs(vol, anatomy, report_plan,
                                                               metrics))
    text = pdftext(pdf)
    assert "Measurements" not in text and "Measurement 1" not in text
    assert "How the anatomy was obtained" in text


def test_report_command_prints_the_measurements_of_a_case_file(report_case, report_plan,
                                                               small_phantom, tmp_path, capsys):
    """`surgplan report PATH --plan case.surgplan`: the plan, the edited anatomy and the
    measurements kept in the case file, as the window saved them."""
    from surgplan.cli import main
    from surgplan.planning.case_files import save_case

    d, vol, anatomy, ctx = report_case
    items = _landmark_measurements(small_phantom)
    case = save_case(tmp_path / "case.surgplan", report_plan, anatomy, vol,
                     source=str(d / "Roe_Jane_CT"), measurements=items)
    pdf = tmp_path / "case.pdf"
    assert main(["report", str(d / "Roe_Jane_CT"), "--plan", str(case), "--pdf", str(pdf)]) == 0
    out = capsys.readouterr().out
    assert "2 measurements" in out and "anatomy from the case file" in out
    text = pdftext(pdf)
    assert re.search(rf"foraminal height \(distance\) {items[0].value:.1f} mm L4-L5 left", text)
    assert "Measurement 2." in text  # its picture's caption


def test_report_command_refuses_a_case_file_without_a_plan(report_case, small_phantom,
                                                            tmp_path, capsys):
    from surgplan.cli import main
    from surgplan.planning.case_files import save_case

    d, vol, anatomy, ctx = report_case
    case = save_case(tmp_path / "measured.surgplan", None, None, vol,
                     measurements=_landmark_measurements(small_phantom))
    assert main(["report", str(d / "Roe_Jane_CT"), "--plan", str(case), "--pdf",
                 str(tmp_path / "x.pdf")]) == 1
    err = capsys.readouterr().err
    assert "measured.surgplan: the case file holds no plan" in err and "Traceback" not in err
    assert not (tmp_path / "x.pdf").exists()


def test_measurements_are_drawn_on_the_slice_pictures_whose_plane_holds_them(report_case):
    from surgplan.report.figures import anatomy_figures

    d, vol, anatomy, ctx = report_case
    f = np.asarray(anatomy.centroid_lps("L4"), float)
    across = Measurement("distance", (f - [15.0, 0, 0], f + [15.0, 0, 0]), "body width")
    higher = Measurement("distance", (f + [-15.0, 0, 20.0], f + [15.0, 0, 20.0]))
    figs = {g.key: g for g in anatomy_figures(vol, anatomy, meshes={}, focus_lps=f,
                                              measurements=[across, higher])}

    def yellow(g):
        rgb = g.rgb.astype(int)
        return int(((rgb[..., 0] > 200) & (rgb[..., 1] > 170) & (rgb[..., 2] < 110)).sum())

    assert "Measurement 1 (in this plane) drawn in yellow" in figs["axial"].caption
    assert "Measurement" not in figs["sagittal"].caption
    assert yellow(figs["axial"]) > 100 and yellow(figs["sagittal"]) < 20
