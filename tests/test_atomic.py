"""Output is published whole: surgplan.core.atomic."""


def test_published_files_are_complete_and_readable(tmp_path):
    """Exports appear whole, with the ordinary file mode, and replace an older copy."""
    import os
    import stat
    import tempfile

    from surgplan.core.atomic import publish_file, publish_folder_contents

    out = tmp_path / "plan.pdf"
    out.write_text("old")
    fd, tmp = tempfile.mkstemp(dir=tmp_path)
    os.write(fd, b"new")
    os.close(fd)
    publish_file(tmp, out)
    assert out.read_text() == "new" and not os.path.exists(tmp)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600

    dest = tmp_path / "export"
    (dest / "meshes").mkdir(parents=True)
    (dest / "meshes" / "stale.stl").write_text("x")
    (dest / "mine.txt").write_text("user's own file")
    work = tmp_path / "work"
    (work / "meshes").mkdir(parents=True)
    (work / "meshes" / "L4.stl").write_text("L4")
    publish_folder_contents(work, dest)
    assert sorted(p.name for p in (dest / "meshes").iterdir()) == ["L4.stl"]
    assert (dest / "mine.txt").read_text() == "user's own file"
    assert list(work.iterdir()) == []
