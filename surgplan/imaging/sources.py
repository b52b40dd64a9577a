"""Turn what a user points at into a list of files to read, safely.

A user may give a folder (walked recursively), a zip archive, a DICOMDIR, a
single DICOM file or a NIfTI / NRRD / MHA volume.  Input from outside the
hospital is untrusted, so:

* nothing is ever written into the user's folder;
* a zip is unpacked only into a private temporary folder (mode 0700) that is
  removed when the :class:`InputFiles` is closed; members with absolute names,
  drive letters or ``..`` components, and symbolic-link members, are refused;
* an archive whose members would unpack to far more than the archive's own
  size (a zip bomb) is refused *before* anything is written, and the bytes
  actually written are counted too, because the sizes in a zip header can lie;
* symbolic links inside a folder are followed only when their target lies
  inside the folder the user chose.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import List, Optional

from surgplan.core.errors import DicomImportError, InputNotFoundError, UnsafeArchiveError
from surgplan.core.progress import CancelToken, ProgressCallback, check

#: Suffixes read as whole volumes through SimpleITK rather than as DICOM.
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Refuse an archive that would unpack to more than this many times its size.
#: CT series compress 2–5× (air around the body); a zip bomb is 1000× and more.
MAX_ZIP_RATIO = 100.0
#: … unless the total stays below this, so tiny archives of zeros still open.
ZIP_RATIO_FLOOR_BYTES = 256 * 1024 * 1024
#: Never unpack more than this, whatever the ratio.
MAX_ZIP_TOTAL_BYTES = 32 * 1024**3
MAX_ZIP_MEMBERS = 200_000


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why (shown to the user)."""

    path: str
    reason: str

    def as_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass
class InputFiles:
    """The files behind one user input; close it to remove any unpacked copy.

    Attributes
    ----------
    source : Path
        What the user gave.
    kind : str
        ``"dicom"`` (``files`` are candidate DICOM files) or ``"volume"``
        (``files`` holds one NIfTI / NRRD / MHA file).
    files : list of Path
        Candidate files, sorted for a repeatable order.
    skipped : list of SkippedFile
        Files left out while walking (unsafe links, unreadable entries).
    """

    source: Path
    kind: str
    files: List[Path] = field(default_factory=list)
    skipped: List[SkippedFile] = field(default_factory=list)
    _tempdir: Optional[Path] = None

    def display_path(self, path: Path) -> str:
        """How to name ``path`` to the user: inside a zip, ``archive.zip!member``."""
        if self._tempdir is not None:
            try:
                rel = Path(path).relative_to(self._tempdir)
                return f"{self.source}!{rel.as_posix()}"
            except ValueError:
                pass
        return str(path)

    def close(self) -> None:
        """Remove the private unpacked copy of an archive, if any."""
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> "InputFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_volume_file(path: Path) -> bool:
    """True for NIfTI / NRRD / MHA names (read as a whole volume)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def open_input(
    path: "os.PathLike[str] | str",
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> InputFiles:
    """List the files behind a user's input.

    Parameters
    ----------
    path : path-like
        A folder, a ``.zip``, a ``DICOMDIR``, a DICOM file or a volume file.
    progress, cancel
        Progress callback and cancellation token (unpacking a zip can be long).

    Returns
    -------
    InputFiles
        Use it as a context manager so that an unpacked archive is removed.

    Raises
    ------
    InputNotFoundError
        The path does not exist, or a folder holds no files at all.
    UnsafeArchiveError
        A zip member climbs out of the archive, is a link, or the archive
        would unpack far larger than it is.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise InputNotFoundError(
            f"{src}: no such file or folder. Check the path, or give the folder that "
            "holds the DICOM files, a .zip, a DICOMDIR or a .nii/.nii.gz/.nrrd/.mha file."
        )
    if src.is_dir():
        files, skipped = _walk_folder(src, cancel)
        if not files and not skipped:
            raise InputNotFoundError(
                f"{src}: the folder is empty. Choose the folder that holds the study's files."
            )
        vols = [f for f in files if is_volume_file(f)]
        if len(vols) == 1 and len(files) == 1:
            return InputFiles(src, "volume", vols, skipped)
        # A folder is read as DICOM; volume files in it would only be reported
        # as "not DICOM", so say what they are and how to open them instead.
        for v in vols:
            skipped.append(
                SkippedFile(str(v), "a NIfTI/NRRD/MHA volume file: open it by itself to load it")
            )
        return InputFiles(src, "dicom", [f for f in files if not is_volume_file(f)], skipped)
    if is_volume_file(src):
        return InputFiles(src, "volume", [src])
    if src.name.upper() == "DICOMDIR":
        return _from_dicomdir(src)
    if zipfile.is_zipfile(src):
        return _from_zip(src, progress, cancel)
    return InputFiles(src, "dicom", [src])


def _inside(root_real: str, candidate: str) -> bool:
    return os.path.commonpath([root_real, candidate]) == root_real


def _walk_folder(root: Path, cancel: Optional[CancelToken]) -> tuple:
    """Walk ``root`` recursively without following links that leave it."""
    root_real = os.path.realpath(root)
    files: List[Path] = []
    skipped: List[SkippedFile] = []
    seen_dirs = set()
    stack = [root]
    while stack:
        check(cancel)
        d = stack.pop()
        real_d = os.path.realpath(d)
        if real_d in seen_dirs:  # a link loop, or a link back into the tree
            continue
        seen_dirs.add(real_d)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(SkippedFile(str(d), f"folder cannot be read ({exc.strerror})"))
            continue
        for e in entries:
            p = Path(e.path)
            if e.is_symlink():
                target = os.path.realpath(p)
                if not _inside(root_real, target):
                    skipped.append(
                        SkippedFile(
                            str(p),
                            f"symbolic link to {target}, outside the chosen folder; not followed",
                        )
                    )
                    continue
                if not os.path.exists(target):
                    skipped.append(SkippedFile(str(p), "broken symbolic link"))
                    continue
            try:
                if e.is_dir():
                    stack.append(p)
                elif e.is_file():
                    if e.name.startswith(".") or e.name.upper() == "DICOMDIR":
                        # Hidden files (.DS_Store, ._ resource forks) are never images;
                        # the DICOMDIR is an index of files we already walk.
                        continue
                    files.append(p)
            except OSError as exc:
                skipped.append(SkippedFile(str(p), f"cannot be read ({exc.strerror})"))
    files.sort()
    return files, skipped


def _from_dicomdir(dicomdir: Path) -> InputFiles:
    """Files referenced by a DICOMDIR, resolved inside its own folder."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    root = dicomdir.parent
    root_real = os.path.realpath(root)
    try:
        ds = pydicom.dcmread(dicomdir, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DicomImportError(
            f"{dicomdir}: not a readable DICOMDIR ({exc}). Open the folder that holds it instead."
        ) from exc
    files: List[Path] = []
    skipped: List[SkippedFile] = []
    for rec in ds.get("DirectoryRecordSequence", []):
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [ref] if isinstance(ref, str) else list(ref)
        rel = Path(*[str(p) for p in parts])
        if rel.is_absolute() or ".." in rel.parts:
            skipped.append(SkippedFile(str(rel), "DICOMDIR reference leaves its folder; refused"))
            continue
        p = root / rel
        if not p.exists():
            # Media written on Windows may differ in case from the record.
            alt = _case_insensitive(root, rel)
            if alt is None:
                skipped.append(SkippedFile(str(p), "listed in the DICOMDIR but missing"))
                continue
            p = alt
        if not _inside(root_real, os.path.realpath(p)):
            skipped.append(SkippedFile(str(p), "links outside the DICOMDIR's folder; refused"))
            continue
        files.append(p)
    if not files:
        raise DicomImportError(
            f"{dicomdir}: the DICOMDIR lists no image files that exist. "
            "Open the folder that holds the images instead."
        )
    return InputFiles(dicomdir, "dicom", sorted(set(files)), skipped)


def _case_insensitive(root: Path, rel: Path) -> Optional[Path]:
    cur = root
    for part in rel.parts:
        try:
            names = {n.upper(): n for n in os.listdir(cur)}
        except OSError:
            return None
        hit = names.get(part.upper())
        if hit is None:
            return None
        cur = cur / hit
    return cur


def _safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a zip member, or raise if it could escape."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"member name {name!r} holds a NUL byte")
    win = PureWindowsPath(name)
    if win.drive or name.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} climbs out of the archive with '..'")
    return PurePosixPath(*[p for p in parts if p not in ("", ".")])


def _from_zip(
    archive: Path, progress: Optional[ProgressCallback], cancel: Optional[CancelToken]
) -> InputFiles:
    archive_size = archive.stat().st_size
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DicomImportError(f"{archive}: not a readable zip archive ({exc}).") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise UnsafeArchiveError(
                f"{archive}: refused, it holds {len(infos)} members "
                f"(more than {MAX_ZIP_MEMBERS}). Unpack it yourself and open the folder."
            )
        planned = []
        total = 0
        for info in infos:
            try:
                rel = _safe_member_path(info.filename)
            except UnsafeArchiveError as exc:
                raise UnsafeArchiveError(
                    f"{archive}: refused, {exc}. The archive may be malicious; "
                    "ask the sender for a plain export."
                ) from None
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(
                    f"{archive}: refused, member {info.filename!r} is a symbolic link. "
                    "Ask the sender for an archive of plain files."
                )
            if info.is_dir() or not rel.parts:
                continue
            if info.flag_bits & 0x1:
                raise DicomImportError(
                    f"{archive}: member {info.filename!r} is encrypted; "
                    "unpack it with its password and open the folder."
                )
            total += info.file_size
            planned.append((info, rel))
        limit = min(MAX_ZIP_TOTAL_BYTES, max(ZIP_RATIO_FLOOR_BYTES, MAX_ZIP_RATIO * archive_size))
        if total > limit:
            raise UnsafeArchiveError(
                f"{archive}: refused, it would unpack to {total / 1e6:.0f} MB from "
                f"{archive_size / 1e6:.1f} MB (more than {limit / 1e6:.0f} MB allowed): "
                "this looks like a zip bomb. Unpack it yourself if you trust it."
            )
        free = shutil.disk_usage(tempfile.gettempdir()).free
        if total > free * 0.9:
            raise UnsafeArchiveError(
                f"{archive}: needs {total / 1e6:.0f} MB to unpack but only "
                f"{free / 1e6:.0f} MB are free in {tempfile.gettempdir()}. Free some space "
                "or set TMPDIR to a larger disk."
            )
        tmp = Path(tempfile.mkdtemp(prefix="surgplan-zip-"))  # mode 0700
        out = InputFiles(archive, "dicom", [], [], tmp)
        try:
            written = 0
            for n, (info, rel) in enumerate(planned):
                check(cancel)
                dest = tmp.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                budget = info.file_size
                with zf.open(info) as fin, open(dest, "wb") as fout:
                    while True:
                        chunk = fin.read(1 << 20)
                        if not chunk:
                            break
                        budget -= len(chunk)
                        written += len(chunk)
                        if budget < 0 or written > limit:
                            # The header understated the size: stop before the disk fills.
                            raise UnsafeArchiveError(
                                f"{archive}: refused, member {info.filename!r} unpacks to more "
                                "than its header declares. The archive is corrupt or malicious."
                            )
                        fout.write(chunk)
                out.files.append(dest)
                if progress is not None and (n % 50 == 0 or n == len(planned) - 1):
                    progress((n + 1) / max(len(planned), 1), f"unpacking {archive.name}")
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            out.close()
            raise DicomImportError(
                f"{archive}: the archive is damaged ({exc}). Copy it again from its source."
            ) from exc
        except BaseException:
            out.close()
            raise
    vols = [f for f in out.files if is_volume_file(f)]
    if len(vols) == 1 and len(out.files) == 1:
        out.kind = "volume"
    out.files.sort()
    if not out.files:
        out.close()
        raise InputNotFoundError(f"{archive}: the archive holds no files.")
    return out
