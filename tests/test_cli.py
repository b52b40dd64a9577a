"""The ``surgplan`` command as a user meets it: help, exit codes, JSON shape."""

import json
import subprocess
import sys

import pytest

from surgplan.cli import TerminalProgress, main


def test_help_everywhere(capsys):
    for argv in (["--help"], ["inspect", "--help"], ["demo", "--help"], ["gui", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert "usage: surgplan" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "inspect" in capsys.readouterr().out


def test_inspect_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "no such file or folder" in err and "missing" in err
    assert "Traceback" not in err


def test_inspect_folder_of_text_files_exits_nonzero_with_reasons(tmp_path, capsys):
    for n in range(3):
        (tmp_path / f"notes{n}.txt").write_text("not an image\n")
    assert main(["inspect", "--json", str(tmp_path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["series"] == []
    assert len(out["skipped"]) == 3
    assert all(s["reason"] for s in out["skipped"])
    assert out["errors"] and "no series" in out["errors"][0]


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "surgplan", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("surgplan ")


def test_progress_bar_waits_a_second_then_reports(monkeypatch):
    import io

    clock = iter([0.0, 0.5, 2.0, 2.1, 2.2])
    monkeypatch.setattr("surgplan.cli.time.monotonic", lambda: next(clock))
    buf = io.StringIO()
    bar = TerminalProgress(stream=buf)
    bar(0.1, "early")  # before the 1 s delay: silent
    bar(0.5, "half")
    bar(0.55, "still half")  # same decile in a log: not repeated
    bar(1.0, "done")
    assert buf.getvalue().splitlines() == ["   50% half", "  100% done"]


def test_demo_then_inspect_and_gui_headless(tmp_path, capsys, monkeypatch):
    """The demo case a user writes is found by inspect and opened headless."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--spacing", "2.5"]) == 0
    assert (out / "truth-labels.nii.gz").is_file()
    names = {t["name"] for t in json.loads((out / "truth-labels.json").read_text())}
    assert {"L4", "disc L4-L5", "dural sac", "nerve root L4 left", "aorta"} <= names
    capsys.readouterr()
    assert main(["inspect", "--json", str(out / "ct")]) == 0
    inv = json.loads(capsys.readouterr().out)
    (series,) = inv["series"]
    assert series["modality"] == "CT" and series["warnings"] == []
    assert series["spacing_mm"] == pytest.approx([2.5, 2.5, 2.5], abs=1e-3)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["gui", str(out / "ct")]) == 0
    captured = capsys.readouterr()
    assert "no display" in captured.err and "headless" in captured.err
    assert "loaded CT series" in captured.out


def test_demo_rejects_absurd_spacing(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--spacing", "0.01"]) == 1
    assert "--spacing" in capsys.readouterr().err


def test_plan_on_a_t2_mr_segments_it_as_mr(tmp_path, small_phantom, capsys):
    """An MR given to ``plan`` goes through the MR pipeline, not the CT one, and is planned."""
    import SimpleITK as sitk

    from surgplan.imaging.phantom import mr_volume

    mr = tmp_path / "t2.nii.gz"
    sitk.WriteImage(mr_volume(small_phantom).to_sitk(), str(mr))
    out = tmp_path / "m.json"
    rc = main(["plan", str(mr), "--modality", "mr", "--procedure", "teld", "--level", "L4-L5",
               "--side", "left", "--count", "1", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    (t,) = json.loads(out.read_text())["trajectories"]
    assert t["risk"]["category"] in ("low", "moderate", "high", "infeasible")
    names = {s["name"] for s in t["risk"]["structures"]}
    assert {"dural sac", "nerve root L4 left"} <= names


@pytest.mark.parametrize("command", ["plan", "export"])
def test_a_volume_of_unknown_modality_asks_for_it(tmp_path, capsys, command):
    """A NIfTI file does not say CT or MR: every command that segments asks, naming the file."""
    import numpy as np
    import SimpleITK as sitk

    p = tmp_path / "scan.nii.gz"
    img = sitk.GetImageFromArray(np.full((20, 30, 30), 100, np.int16))
    img.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(img, str(p))
    args = {
        "plan": ["plan", str(p), "--procedure", "teld", "--level", "L4-L5", "--side", "left"],
        "export": ["export", str(p), "--out", str(tmp_path / "out")],
    }[command]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert str(p) in err and "--modality ct" in err


def test_a_missing_plan_file_is_named_not_a_traceback(tmp_path, capsys):
    missing = tmp_path / "no-such-plan.json"
    assert main(["report", str(tmp_path), "--plan", str(missing), "--pdf",
                 str(tmp_path / "r.pdf")]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "No such file" in err and "Traceback" not in err
    assert not (tmp_path / "r.pdf").exists()


def test_demo_case_is_rewritten_when_the_phantom_code_changes(tmp_path, monkeypatch):
    """A demo written by older phantom code is not shown again, and its copy is removed."""
    import surgplan.cli as cli
    import surgplan.imaging.phantom as phantom

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    written = []

    def write_demo(out, spec, progress=None):  # the real one takes ~10 s; the cache is tested
        out.mkdir(parents=True)
        (out / "ct").write_text("phantom")
        written.append(out)

    monkeypatch.setattr(phantom, "write_demo", write_demo)
    stale = tmp_path / "surgplan" / f"demo-{cli.__version__}-00000000"
    stale.mkdir(parents=True)
    (stale / ".complete").write_text("ok\n")
    first = cli.ensure_demo_case()
    assert first.name == f"demo-{cli.__version__}-{cli.phantom_fingerprint()}"
    assert (first / ".complete").exists() and not stale.exists()
    assert cli.ensure_demo_case() == first and len(written) == 1  # reused, not rewritten
    monkeypatch.setattr(cli, "phantom_fingerprint", lambda: "feedf00d")
    second = cli.ensure_demo_case()
    assert second != first and len(written) == 2 and not first.exists()
