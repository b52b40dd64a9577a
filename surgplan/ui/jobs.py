"""Background jobs of the main window: one at a time, with progress and Cancel.

Every long piece of work (loading, segmentation, surfaces, the planner's
distance fields, saving) runs through :class:`JobRunner`: a
:class:`~surgplan.ui.workers.Worker` thread reports progress to the status
bar's bar and text, Cancel (button or Esc) stops it, and its result only
reaches the window (``on_done``) when it succeeded, so a failed or cancelled
job leaves the state as it was.
"""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt, QTimer

from surgplan.ui.qtcompat import emit
from surgplan.ui.workers import Worker

#: Background jobs that derive data from the current state; edits may go on meanwhile.
DERIVED_JOBS = ("Building surfaces", "Preparing the planner")


class JobRunner:
    """Runs the window's jobs one at a time; derived work queues behind the current one.

    Parameters
    ----------
    window : MainWindow
        Owner of the status bar (``progress``, ``cancel_button``, ``status_text``),
        of ``jobFinished(str, bool)``, ``report_error`` and ``update_actions``.
    """

    def __init__(self, window):
        self.w = window
        self.worker: Optional[Worker] = None
        self.queue: list = []  # (title, fn, on_done) of derived jobs waiting their turn

    @property
    def busy(self) -> bool:
        return self.worker is not None

    @property
    def editing_ok(self) -> bool:
        """Derived work (surfaces, distance fields) never blocks editing: its result is
        dropped when the anatomy it was made for is no longer current."""
        return not self.busy or self.worker.title in DERIVED_JOBS

    def run(self, title: str, fn: Callable, on_done: Callable, *,
            queue_if_busy: bool = False) -> Optional[Worker]:
        """Run ``fn(progress=, cancel=)`` in a worker thread, then ``on_done(result)``.

        One job at a time: while one runs, a user's request is refused with a
        message, and derived work (``queue_if_busy``: surfaces, the planner's
        distance fields) waits its turn.
        """
        w = self.w
        if self.busy:
            if queue_if_busy:
                self.queue.append((title, fn, on_done))
            else:
                w.status_text.setText(
                    f"Busy with {self.worker.title.lower()}: wait or press Cancel.")
            return None
        job = Worker(fn, title, w)
        self.worker = job
        # Queued: the worker emits from its thread; the views change only in this one.
        queued = Qt.ConnectionType.QueuedConnection
        job.progressed.connect(self._progress, queued)
        job.succeeded.connect(lambda result: self._done(job, on_done, result), queued)
        job.failed.connect(lambda exc, tb: self._failed(job, exc, tb), queued)
        job.cancelled.connect(lambda: self._cancelled(job), queued)
        w.progress.setValue(0)
        w.progress.setVisible(True)
        w.cancel_button.setVisible(True)
        w.status_text.setText(title + " …")
        w.update_actions()
        job.start()
        return job

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.w.status_text.setText(f"Cancelling {self.worker.title.lower()} …")

    def shutdown(self) -> None:
        """On closing: drop waiting jobs, cancel the running one and wait for its thread."""
        self.queue.clear()
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
            self.worker = None

    def _progress(self, fraction, message):
        self.w.progress.setValue(int(fraction * 1000))
        if self.worker is not None:
            self.w.status_text.setText(f"{self.worker.title}: {message}")

    def _end(self, job: Worker, message: str, ok: bool):
        w = self.w
        job.wait()
        self.worker = None
        w.progress.setVisible(False)
        w.cancel_button.setVisible(False)
        w.status_text.setText(message)
        w.update_actions()
        job.deleteLater()
        emit(w.jobFinished, job.title, ok)
        if self.queue and self.worker is None:
            title, fn, on_done = self.queue.pop(0)
            QTimer.singleShot(0, lambda: self.run(title, fn, on_done, queue_if_busy=True))

    def _done(self, job, on_done, result):
        try:
            on_done(result)
        except Exception as exc:  # the error dialog shows it; the old state stays
            import traceback

            self._end(job, f"{job.title} failed.", False)
            self.w.report_error(f"{job.title} failed", exc, traceback.format_exc())
            return
        self._end(job, f"{job.title}: done.", True)

    def _failed(self, job, exc, tb):
        self._end(job, f"{job.title} failed.", False)
        self.w.report_error(f"{job.title} failed", exc, tb)

    def _cancelled(self, job):
        self._end(job, f"{job.title}: cancelled; nothing changed.", False)


__all__ = ["DERIVED_JOBS", "JobRunner"]
