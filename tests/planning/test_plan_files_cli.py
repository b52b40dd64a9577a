"""Plan files (versioned JSON) and the `surgplan plan` command."""

from __future__ import annotations

import json

import pytest

from surgplan.core.errors import PlanFileError
from surgplan.planning import CaseReference, Plan, Tool, Trajectory, load_plan, save_plan
from surgplan.planning.plan_files import SCHEMA_VERSION, plan_to_dict


def _plan():
    t = Tool("teld-cannula-7.0", 7.0, 175.0, "working cannula", "DOMAIN.md")
    a = Trajectory("teld", "L4-L5", "left", t, (60.0, 90.0, 50.0), (8.0, 12.0, 47.0),
                   notes="first")
    b = Trajectory("pedicle-screw", "L4", "right", Tool("screw", 6.5, 150.0, implant_length_mm=45),
                   (-40.0, 80.0, 60.0), (-10.0, -5.0, 62.0))
    return Plan(CaseReference("1.2.3", "1.2.3.4", "P1"), (a, b), "bilateral")


def test_round_trip(tmp_path):
    p = _plan()
    path = save_plan(p, tmp_path / "plan.json")
    q = load_plan(path)
    assert q == p
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["trajectories"][0].__setitem__("entry_lps", [1, 2]), "trajectories[0].entry_lps"),
    (lambda d: d["trajectories"][1]["tool"].__setitem__("diameter_mm", -3),
     "trajectories[1].tool"),
    (lambda d: d["trajectories"][0].__setitem__("side", "up"), "trajectories[0].side"),
    (lambda d: d["trajectories"][0].__setitem__("procedure", "tlif"),
     "trajectories[0].procedure"),
    (lambda d: d["case"].pop("series_uid"), "case.series_uid"),
    (lambda d: d.__setitem__("schema_version", "one"), "schema_version"),
])
def test_invalid_files_name_the_field(tmp_path, edit, field):
    d = plan_to_dict(_plan())
    edit(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(PlanFileError, match=f"field {field.replace('[', '.').replace(']', '.')}"):
        load_plan(path)


def test_newer_and_broken_files_are_refused(tmp_path):
    d = plan_to_dict(_plan())
    d["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "new.json"
    path.write_text(json.dumps(d))
    with pytest.raises(PlanFileError, match="newer than this SurgPlan reads"):
        load_plan(path)
    path.write_text("{not json")
    with pytest.raises(PlanFileError, match="not valid JSON"):
        load_plan(path)


def test_values_are_validated():
    t = Tool("x", 7.0, 175.0)
    with pytest.raises(ValueError, match="less than 1 mm apart"):
        Trajectory("teld", "L4-L5", "left", t, (0, 0, 0), (0, 0, 0.5))
    with pytest.raises(ValueError, match="diameter_mm"):
        Tool("y", 0.0, 100.0)
    a = Trajectory("teld", "L4-L5", "left", t, (0, 0, 0), (0, 0, 10))
    with pytest.raises(ValueError, match="unique"):
        Plan(CaseReference(), (a, a))


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory, small_phantom, small_phantom_truth):
    import SimpleITK as sitk

    from surgplan.imaging.segmentation_files import write_segmentation
    from surgplan.imaging.volume_files import read_volume_file

    d = tmp_path_factory.mktemp("plan-cli")
    ct = d / "ct.nii.gz"
    sitk.WriteImage(small_phantom.ct.to_sitk(), str(ct))
    vol = read_volume_file(ct, modality="CT")
    seg = write_segmentation(small_phantom_truth, vol, d / "seg", meshes=False)
    return ct, seg


def test_cli_plan_proposes_and_writes_json(phantom_files, tmp_path, capsys):
    from surgplan.cli import main

    ct, seg = phantom_files
    out = tmp_path / "m.json"
    rc = main(["plan", str(ct), "--procedure", "teld", "--level", "L4-L5", "--side", "left",
               "--segmentation", str(seg), "--count", "2", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "teld L4-L5 left" in text and "nerve root L4 left" in text and "Kambin" in text
    data = json.loads(out.read_text())
    assert len(data["trajectories"]) == 2
    t = data["trajectories"][0]
    for key in ("procedure", "level", "side", "tool", "entry_lps", "target_lps", "length_mm",
                "midline_distance_mm", "angles_deg", "bone_removed_ml"):
        assert key in t
    assert t["risk"]["category"] in ("low", "moderate", "high")
    s = t["risk"]["structures"][0]
    assert {"name", "provenance", "clearance_mm", "contact_probability"} <= set(s)
    # The metrics are not a plan: giving them to `report` says what to do instead.
    with pytest.raises(PlanFileError, match="--save-plan"):
        load_plan(out)


def test_cli_plan_saves_the_plan_the_report_reads(phantom_files, tmp_path, capsys):
    from surgplan.cli import main

    ct, seg = phantom_files
    path = tmp_path / "plan.json"
    rc = main(["plan", str(ct), "--procedure", "teld", "--level", "L4-L5", "--side", "both",
               "--segmentation", str(seg), "--count", "1", "--save-plan", str(path)])
    assert rc == 0
    plan = load_plan(path)
    assert [(t.level, t.side) for t in plan.trajectories] == [("L4-L5", "left"),
                                                              ("L4-L5", "right")]
    assert "plan saved to" in capsys.readouterr().out


def test_cli_plan_refuses_a_bad_level_before_loading(tmp_path, capsys):
    from surgplan.cli import main

    missing = tmp_path / "not-loaded-yet"  # the level is checked before the study is read
    rc = main(["plan", str(missing), "--procedure", "teld", "--level", "L9-L5", "--side",
               "left"])
    assert rc == 2
    assert "disc level such as L4-L5, got 'L9-L5'" in capsys.readouterr().err


def test_cli_plan_evaluates_a_given_trajectory(phantom_files, tmp_path, capsys):
    from surgplan.cli import main

    ct, seg = phantom_files
    out = tmp_path / "e.json"
    rc = main(["plan", str(ct), "--procedure", "teld", "--level", "L4-L5", "--side", "left",
               "--segmentation", str(seg), "--entry", "70,60,60", "--target=-8,12,47",
               "--json", str(out)])
    assert rc == 0
    t = json.loads(out.read_text())["trajectories"][0]
    assert t["entry_lps"] == [70.0, 60.0, 60.0] and t["target_lps"] == [-8.0, 12.0, 47.0]
    assert main(["plan", str(ct), "--procedure", "teld", "--level", "L4-L5", "--side", "left",
                 "--entry", "1,2,3"]) == 2


def test_cli_tool_names_and_user_tools():
    from surgplan.cli_plan import parse_tool
    from surgplan.planning.procedures import get_procedure

    teld = get_procedure("teld")
    assert parse_tool(teld, "teld-cannula-6.0").diameter_mm == 6.0
    user = parse_tool(teld, "wide:9.5:210")
    assert (user.name, user.diameter_mm, user.working_length_mm, user.source) == \
        ("wide", 9.5, 210.0, "user")
    with pytest.raises(KeyError, match="teld-cannula-7.0"):
        parse_tool(teld, "nonsense")
    with pytest.raises(ValueError, match="must be numbers"):
        parse_tool(teld, "wide:big:210")
    with pytest.raises(ValueError, match="diameter_mm"):
        parse_tool(teld, "wide:0:210")


def test_level_must_fit_the_procedure(tmp_path):
    t = Tool("x", 7.0, 175.0)
    with pytest.raises(ValueError, match="level: teld is planned at a disc level"):
        Trajectory("teld", "L4", "left", t, (0, 0, 0), (0, 0, 10))
    with pytest.raises(ValueError, match="level: pedicle-screw is planned at a vertebra"):
        Trajectory("pedicle-screw", "L4-L5", "left", t, (0, 0, 0), (0, 0, 10))
    d = plan_to_dict(_plan())
    d["trajectories"][0]["level"] = "L4"
    path = tmp_path / "lvl.json"
    path.write_text(json.dumps(d))
    with pytest.raises(PlanFileError, match=r"field trajectories\[0\]\.level"):
        load_plan(path)


def test_cli_plan_both_sides_reports_conflicts(phantom_files, tmp_path, capsys):
    from surgplan.cli import main

    ct, seg = phantom_files
    out = tmp_path / "b.json"
    rc = main(["plan", str(ct), "--procedure", "pedicle-screw", "--level", "L4", "--side",
               "both", "--segmentation", str(seg), "--count", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "conflicts between the best trajectories: none" in text
    data = json.loads(out.read_text())
    assert [t["side"] for t in data["trajectories"]] == ["left", "right"]
    assert data["conflicts"] == []
    assert all(t["pedicle"]["grade"] == "A" for t in data["trajectories"])
