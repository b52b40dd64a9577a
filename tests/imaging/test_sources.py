"""Untrusted input: zips, links and folders are read without harm to the machine."""

import os
import stat
import zipfile
from pathlib import Path

import pytest

from surgplan.core.errors import DicomImportError, InputNotFoundError, UnsafeArchiveError
from surgplan.imaging import sources
from surgplan.imaging.sources import open_input


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "IM1").write_bytes(b"x" * 10)
    (root / "a" / "b" / "IM2").write_bytes(b"y" * 10)
    (root / ".DS_Store").write_bytes(b"junk")


def test_folder_is_walked_recursively_in_sorted_order(tmp_path):
    make_tree(tmp_path)
    with open_input(tmp_path) as inp:
        assert inp.kind == "dicom"
        assert [p.relative_to(tmp_path).as_posix() for p in inp.files] == ["a/IM1", "a/b/IM2"]


def test_links_outside_the_folder_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("patient data of someone else")
    study = tmp_path / "study"
    make_tree(study)
    os.symlink(outside / "secret", study / "link-file")
    os.symlink(outside, study / "link-dir")
    os.symlink(study / "a", study / "loop")  # inside: allowed, but not walked twice
    with open_input(study) as inp:
        names = {p.name for p in inp.files}
        assert "secret" not in names and "link-file" not in names
        reasons = {Path(s.path).name: s.reason for s in inp.skipped}
        assert "outside the chosen folder" in reasons["link-file"]
        assert "outside the chosen folder" in reasons["link-dir"]
        assert len(inp.files) == len({os.path.realpath(p) for p in inp.files})


def test_missing_path_and_empty_folder_say_what_to_do(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such file or folder"):
        open_input(tmp_path / "nope")
    with pytest.raises(InputNotFoundError, match="folder is empty"):
        open_input(tmp_path)


def test_zip_unpacks_privately_and_is_removed_on_close(tmp_path):
    arc = tmp_path / "study.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("DICOM/IM1", b"a" * 100)
        zf.writestr("DICOM/sub/IM2", b"b" * 100)
    before = sorted(os.listdir(tmp_path))
    inp = open_input(arc)
    unpacked = inp.files[0].parents[1]
    assert stat.S_IMODE(os.stat(inp.files[0].parents[1]).st_mode) == 0o700
    assert [p.read_bytes()[:1] for p in inp.files] == [b"a", b"b"]
    assert inp.display_path(inp.files[0]).endswith("study.zip!DICOM/IM1")
    inp.close()
    assert not unpacked.exists()
    assert sorted(os.listdir(tmp_path)) == before  # nothing written beside the input


@pytest.mark.parametrize(
    "member, match",
    [("../evil", "climbs out"), ("/etc/evil", "absolute"), ("C:/evil", "absolute"),
     ("a/../../evil", "climbs out")],
)
def test_zip_members_that_escape_are_refused(tmp_path, member, match):
    arc = tmp_path / "bad.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("ok", b"fine")
        zf.writestr(member, b"evil")
    with pytest.raises(UnsafeArchiveError, match=match):
        open_input(arc)
    assert not (tmp_path.parent / "evil").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    arc = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        open_input(arc)


def test_zip_bomb_is_refused_before_unpacking(tmp_path, monkeypatch):
    # A small floor keeps the test fast: 20 MB of zeros compress to ~20 kB.
    monkeypatch.setattr(sources, "ZIP_RATIO_FLOOR_BYTES", 1024 * 1024)
    arc = tmp_path / "bomb.zip"
    with zipfile.ZipFile(arc, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * (20 * 1024 * 1024))
    created = []
    real_mkdtemp = sources.tempfile.mkdtemp
    monkeypatch.setattr(
        sources.tempfile, "mkdtemp", lambda **kw: created.append(1) or real_mkdtemp(**kw)
    )
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        open_input(arc)
    assert not created  # refused from the directory, before a byte was written


def test_zip_that_lies_about_its_sizes_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "ZIP_RATIO_FLOOR_BYTES", 1024 * 1024)
    arc = tmp_path / "liar.zip"
    with zipfile.ZipFile(arc, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * (4 * 1024 * 1024))
    data = bytearray(arc.read_bytes())
    # Patch the central directory's uncompressed size (offset 24 in the entry) to 10 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    arc.write_bytes(bytes(data))
    with pytest.raises((UnsafeArchiveError, DicomImportError)):
        open_input(arc)


def test_volume_file_and_single_file(tmp_path):
    f = tmp_path / "scan.nii.gz"
    f.write_bytes(b"not really")
    assert open_input(f).kind == "volume"
    g = tmp_path / "IM0001"
    g.write_bytes(b"x")
    inp = open_input(g)
    assert inp.kind == "dicom" and inp.files == [g]


def test_dicomdir_lists_referenced_files(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.fileset import FileSet

    fs = FileSet()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        fs.add(get_testdata_file(name))
    fs.write(tmp_path / "media")
    with open_input(tmp_path / "media" / "DICOMDIR") as inp:
        assert inp.kind == "dicom"
        assert len(inp.files) == 2
        mods = sorted(pydicom.dcmread(p).Modality for p in inp.files)
        assert mods == ["CT", "MR"]
