"""Case files: File ▸ Save plan / Open plan (``.surgplan``) and the recovery of unsaved
work kept when the window closed (File ▸ Recover unsaved work).

The files themselves are written and read by :mod:`surgplan.planning.case_files` (no Qt).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog


class CaseController:
    """Save and open the window's plan, anatomy and measurements as one file."""

    def __init__(self, window):
        self.w = window

    # --- save --------------------------------------------------------------------------------
    def save_plan_dialog(self):
        f, _ = QFileDialog.getSaveFileName(self.w, "Save plan", "plan.surgplan",
                                           "SurgPlan case (*.surgplan)")
        if f:
            self.save_case_file(f)

    def save_case_file(self, path):
        """Save the plan and the (edited) segmentation as one ``.surgplan`` file."""
        from surgplan.planning.case_files import save_case

        w = self.w
        st, case = w.session.state, w.session.case
        vol = case.volume
        plan, anatomy = st.plan, st.anatomy
        measurements = list(w.measure.measurements)

        def done(p):
            w.session.dirty = False
            self._add_recent_plan(str(p))
            if Path(p) != self.autosave_path():
                self.autosave_path().unlink(missing_ok=True)
                w.act_recover.setEnabled(False)

        return w.jobs.run("Saving the plan", lambda **kw: save_case(
            path, plan, anatomy, vol, source=case.source, selected=st.selected,
            measurements=measurements, **kw), done)

    def _add_recent_plan(self, path: str):
        self.w.settings.setValue("lastPlan", path)

    # --- open --------------------------------------------------------------------------------
    def open_plan_dialog(self):
        w = self.w
        f, _ = QFileDialog.getOpenFileName(w, "Open plan", w.settings.value("lastPlan", ""),
                                           "SurgPlan case (*.surgplan);;All files (*)")
        if f:
            self.open_case_file(f)

    def open_case_file(self, path):
        """Open a ``.surgplan`` file on the open study, or open its study first."""
        from surgplan.planning.case_files import load_case, read_manifest, read_measurements

        w = self.w
        try:
            manifest = read_manifest(path)
        except Exception as exc:
            w.report_error("Opening the plan failed", exc)
            return None
        case = w.session.case
        uid = manifest.get("series_uid", "")
        match = next((u for u, v in case.volumes.items()
                      if not uid or v.metadata.series_instance_uid == uid), None)
        if match is None:
            source = manifest.get("source", "")
            if source and Path(source).exists():
                def opened(title, ok):
                    w.jobFinished.disconnect(opened)
                    if ok:
                        QTimer.singleShot(0, lambda: self.open_case_file(path))

                w.jobFinished.connect(opened)
                return w.opener.open_path(source)
            from surgplan.core.errors import PlanFileError

            w.report_error("Opening the plan failed", PlanFileError(
                f"{path}: its study ({source or 'unknown'}, series {uid or '?'}) is not open and "
                "was not found; open the study first, then the plan."))
            return None
        if match != case.current_uid:
            w.session.select_series(match)
        vol = case.volumes[match]

        def work(progress=None, cancel=None):
            return load_case(path, vol), read_measurements(path)

        def done(result):
            (manifest, plan, anatomy), measurements = result
            w.viewer.forget_surfaces()
            # The file's measurements replace those on screen (none in older files).
            w.measure.replace(measurements)
            w.session.apply(f"open {Path(path).name}", anatomy=anatomy, plan=plan,
                            selected=int(manifest.get("selected", -1)))
            w.session.dirty = False

        return w.jobs.run("Opening the plan", work, done)

    # --- recovery ----------------------------------------------------------------------------
    def autosave_path(self) -> Path:
        """Where unsaved work is kept when the window closes (beside the settings file)."""
        return Path(self.w.settings.fileName()).with_name("autosave" + ".surgplan")

    def autosave(self) -> None:
        """On closing: keep unsaved plan, anatomy edits and measurements for File ▸ Recover."""
        from surgplan.planning.case_files import save_case

        w = self.w
        st, case = w.session.state, w.session.case
        path = self.autosave_path()
        if not w.session.dirty or case.volume is None or (
                st.plan is None and st.anatomy is None and not w.measure.measurements):
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_case(path, st.plan, st.anatomy, case.volume, source=case.source,
                      selected=st.selected, measurements=list(w.measure.measurements))
        except Exception as exc:  # closing must not fail; say what was not kept
            print(f"surgplan: unsaved work could not be kept in {path}: {exc}", file=sys.stderr)

    def recover(self):
        """Reopen the work kept at the last close (its study is opened first if needed)."""
        path = self.autosave_path()
        if not path.is_file():
            self.w.status_text.setText("Nothing to recover.")
            return None
        return self.open_case_file(path)

    def offer_recovery(self) -> None:
        """At start: enable File ▸ Recover when work was kept, and say so."""
        w = self.w
        w.act_recover.setEnabled(self.autosave_path().is_file())
        if w.act_recover.isEnabled():
            w.status_text.setText("Unsaved work from the last session can be recovered: "
                                  "File ▸ Recover unsaved work.")


__all__ = ["CaseController"]
