"""File ▸ Plan report (PDF): the window's plan, anatomy and measurements as the PDF
``surgplan report`` writes (:func:`surgplan.report.plan_report.build_report`).

The report runs as a background job with progress and Cancel; with the teaching
view on (patient details hidden) it is written anonymised, as a teacher hands it out.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog


class ReportController:
    """Writes the plan report of the window's current state."""

    def __init__(self, window):
        self.w = window
        self.last_report = None  # ReportResult of the last report written
        self.last_message = ""  # what the status bar said about it

    def can_report(self) -> bool:
        """A volume, its anatomy and a plan with at least one trajectory."""
        st, case = self.w.session.state, self.w.session.case
        return (case.volume is not None and st.anatomy is not None and st.plan is not None
                and bool(st.plan.trajectories))

    def report_dialog(self):
        w = self.w
        start = str(Path(w.settings.value("lastReportDir", "") or Path.home()) /
                    "plan-report.pdf")
        f, _ = QFileDialog.getSaveFileName(w, "Plan report (PDF)", start, "PDF (*.pdf)")
        if f:
            w.settings.setValue("lastReportDir", str(Path(f).parent))
            self.write_report(f)

    def write_report(self, path, *, anonymous=None):
        """Write the PDF of the plan, with the window's measurements, to ``path``.

        Parameters
        ----------
        path : path-like
            The PDF to write (appears only once complete).
        anonymous : bool, optional
            Leave identity, dates, UIDs and paths out; default: when the teaching view
            hides the patient details (View ▸ Hide patient details).
        """
        from surgplan.core.errors import PlanFileError
        from surgplan.report.plan_report import build_report

        w = self.w
        if not self.can_report():
            w.report_error("The plan report cannot be written", PlanFileError(
                "there is no plan with a trajectory on a segmented study: segment, propose or "
                "place a trajectory, then ask for the report"))
            return None
        st, case = w.session.state, w.session.case
        vol, anatomy, plan = case.volume, st.anatomy, st.plan
        measurements = tuple(w.measure.measurements)
        if anonymous is None:
            anonymous = w.act_teaching.isChecked()
        ctx = w.planner.context()

        def done(result):
            n = len(measurements)
            self.last_report = result
            text = (f"Plan report written: {result.pdf} ({result.pages} pages"
                    + (f", {n} measurement{'s' if n != 1 else ''}" if n else "")
                    + (", anonymised" if anonymous else "") + ")")
            self.last_message = text
            # After the job runner's own "done" message, which would hide where it went.
            QTimer.singleShot(0, lambda: w.status_text.setText(text))

        return w.jobs.run("Writing the plan report", lambda progress=None, cancel=None:
                          build_report(vol, anatomy, plan, path, anonymous=bool(anonymous),
                                       plan_source="the window's plan", context=ctx,
                                       measurements=measurements, progress=progress,
                                       cancel=cancel), done)


__all__ = ["ReportController"]
