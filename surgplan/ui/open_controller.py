"""Opening studies: File ▸ Open folder/file, drag and drop, the command line, File ▸
Recent, the demo case, and the Study panel's series browser.

Indexing and loading run as background jobs; the session gets the new
:class:`~surgplan.ui.session.Case` only when loading succeeded, so a bad input
leaves whatever was open in place.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from surgplan.core.progress import SubProgress
from surgplan.ui.session import Case

#: Largest total number of voxels loaded up front for the series browser (all
#: series of a small study get a thumbnail; bigger ones load when chosen).
PRELOAD_VOXELS = 150_000_000
#: Entries of File ▸ Recent.
MAX_RECENT = 8


def load_study(path: str, *, progress=None, cancel=None) -> Case:
    """Index ``path``, load its default series (and the others while small)."""
    from surgplan.imaging.loader import index_input
    from surgplan.imaging.volume import LoadWarning

    with index_input(path, progress=SubProgress(progress, 0.0, 0.2), cancel=cancel) as study:
        entry = study.default_series()
        total = sum(s.rows * s.columns * s.slices for s in study.series)
        todo = [entry] + ([s for s in study.series if s is not entry] if total <= PRELOAD_VOXELS
                          else [])
        volumes = {}
        for n, s in enumerate(todo):
            sub = SubProgress(progress, 0.2 + 0.8 * n / len(todo), 0.2 + 0.8 * (n + 1) / len(todo))
            vol = s.load(progress=sub, cancel=cancel)
            if study.skipped and s is entry:
                extra = [LoadWarning("skipped-file", f"{sk.path}: {sk.reason}")
                         for sk in study.skipped[:20]]
                if len(study.skipped) > 20:
                    extra.append(LoadWarning("skipped-file",
                                             f"… and {len(study.skipped) - 20} more skipped files"))
                vol = vol.with_warnings(*extra)
            volumes[s.uid] = vol
        return Case(str(path), list(study.series), volumes, entry.uid)


def load_series(path: str, uid: str, *, progress=None, cancel=None):
    """Load one more series (``uid``) of the study at ``path``."""
    from surgplan.imaging.loader import index_input

    with index_input(path, progress=SubProgress(progress, 0.0, 0.2), cancel=cancel) as study:
        return study.find(uid).load(progress=SubProgress(progress, 0.2, 1.0), cancel=cancel)


class OpenController:
    """Open studies and series into the window's session; keeps File ▸ Recent."""

    def __init__(self, window):
        self.w = window

    # --- dialogs, drop ---------------------------------------------------------------------------
    def open_folder_dialog(self):
        w = self.w
        d = QFileDialog.getExistingDirectory(w, "Open a study folder",
                                             w.settings.value("lastDir", str(Path.home())))
        if d:
            w.settings.setValue("lastDir", d)
            self.open_path(d)

    def open_file_dialog(self):
        w = self.w
        f, _ = QFileDialog.getOpenFileName(
            w, "Open a study file", w.settings.value("lastDir", str(Path.home())),
            "Studies (*.zip DICOMDIR *.dcm *.nii *.nii.gz *.nrrd *.mha *.mhd);;All files (*)")
        if f:
            w.settings.setValue("lastDir", str(Path(f).parent))
            self.open_path(f)

    def drag_enter(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def drop(self, ev):
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0])

    # --- opening ---------------------------------------------------------------------------------
    def open_path(self, path: str):
        """Open a folder, zip, DICOMDIR or volume file in the background."""
        path = str(path)
        w = self.w

        def done(case):
            w.session.set_case(case)
            self.add_recent(path)

        return w.jobs.run("Opening " + (Path(path).name or path),
                          lambda **kw: load_study(path, **kw), done)

    def open_demo(self):
        """Write the demo case once to the cache (as ``surgplan gui`` does) and open it."""
        from surgplan.cli import ensure_demo_case

        def work(progress=None, cancel=None):
            demo = ensure_demo_case(SubProgress(progress, 0.0, 0.5))
            return load_study(str(demo), progress=SubProgress(progress, 0.5, 1.0), cancel=cancel)

        return self.w.jobs.run("Opening the demo case", work, self.w.session.set_case)

    def choose_series(self, uid: str):
        """Show series ``uid`` of the open study (loaded first when it is not yet)."""
        w = self.w
        case = w.session.case
        if uid == case.current_uid:
            return
        if uid in case.volumes:
            w.session.select_series(uid)
            return

        def done(vol):
            case.volumes[uid] = vol
            w.session.select_series(uid)
            w.study.show_case(case)

        w.jobs.run("Loading series", lambda **kw: load_series(case.source, uid, **kw), done)

    # --- recent files ------------------------------------------------------------------------------
    def recent_files(self) -> list:
        value = self.w.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str):
        items = [path] + [p for p in self.recent_files() if p != path]
        self.w.settings.setValue("recent", items[:MAX_RECENT])
        self.rebuild_recent()

    def rebuild_recent(self):
        menu = self.w.recent_menu
        menu.clear()
        for p in self.recent_files():
            a = menu.addAction(p)
            a.triggered.connect(lambda checked=False, path=p: self.open_path(path))
        menu.setEnabled(bool(self.recent_files()))


__all__ = ["MAX_RECENT", "OpenController", "PRELOAD_VOXELS", "load_study", "load_series"]
