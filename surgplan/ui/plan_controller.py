"""Planning in the window: propose trajectories, add/remove/select them, drag their
handles with a live risk panel, the entry risk map on the skin, and the views along
the selected tool.

The planner's :class:`~surgplan.planning.PlanningContext` (distance fields of the
current anatomy) is built in the background once per anatomy; until it is ready
the risk panel waits and editing goes on.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer

from surgplan.core.progress import SubProgress
from surgplan.render import ToolGlyph
from surgplan.render.glyphs import TOOL_RGB
from surgplan.ui.views import SliceView

#: The tooltip of View ▸ Views along the tool (F4) and of the Plan panel's check box.
ALONG_TOOL_TIP = ("Sagittal view → resliced along the selected tool, coronal view → the "
                  "probe's eye at its tip (F4). Off brings back the sagittal and coronal "
                  "views; the choice is remembered.")


class PlanController:
    """Keeps the planning context, proposals and live metrics of the window's plan."""

    def __init__(self, window):
        self.w = window
        self._ctx = None  # PlanningContext of self._ctx_for (an Anatomy)
        self._ctx_for = None
        self.proposals: list = []
        self.metrics = None
        self.dragging = None  # (index, Trajectory) while a handle is dragged
        self._skin_mesh = None
        #: What the entry risk map on screen was computed for (procedure, level, side,
        #: tool, target): a map left from an earlier target would mislead.
        self._risk_map_for = None
        self.last_update_ms = None

    # --- context -------------------------------------------------------------------------------
    def context(self):
        """The PlanningContext of the current anatomy, or None while it is not built."""
        a = self.w.session.state.anatomy
        return self._ctx if (a is not None and self._ctx_for is a) else None

    def build_context(self):
        w = self.w
        anatomy, vol = w.session.state.anatomy, w.session.case.volume

        def work(progress=None, cancel=None):
            from surgplan.planning import PlanningContext

            return PlanningContext.build(anatomy, vol, progress=progress, cancel=cancel)

        def done(ctx):
            self._ctx, self._ctx_for = ctx, anatomy
            if w.session.state.anatomy is anatomy:
                self.show_plan()

        if any(q[0] == "Preparing the planner" for q in w.jobs.queue):
            return None
        return w.jobs.run("Preparing the planner", work, done, queue_if_busy=True)

    # --- proposals -------------------------------------------------------------------------------
    def propose_plan(self):
        """Propose trajectories for the Plan panel's procedure, level, side and tool."""
        from surgplan.core.progress import check

        w = self.w
        anatomy, vol = w.session.state.anatomy, w.session.case.volume
        if anatomy is None:
            w.status_text.setText("Segment first: proposals need the anatomy.")
            return None
        panel = w.plan_panel
        proc, level, side, tool = (panel.procedure_key(), panel.level.currentText(),
                                   panel.side.currentText(), panel.tool_obj())
        ctx = self.context()

        def work(progress=None, cancel=None):
            from surgplan.planning import PlanningContext, propose

            c = ctx or PlanningContext.build(anatomy, vol, progress=SubProgress(progress, 0, 0.85),
                                             cancel=cancel)
            check(cancel)
            if progress:
                progress(0.9, f"proposing {proc} {level} {side}")
            return c, propose(c, proc, level, side, tool=tool, count=3)

        def done(result):
            c, props = result
            self._ctx, self._ctx_for = c, anatomy
            self.proposals = list(props)
            w.plan_panel.show_proposals(props)
            if props:
                t = props[0].trajectory
                self.add_trajectory(t, f"propose {t.name}")
                w.viewer.set_cursor(np.asarray(t.target_lps))
                w.view3d.scene.focus(np.asarray(t.target_lps), 120.0)
                w.view3d.render()

        return w.jobs.run("Proposing", work, done)

    def propose_default_plan(self) -> bool:
        """The screenshot's plan: teld L4-L5 left when the anatomy has that level."""
        anatomy = self.w.session.state.anatomy
        if anatomy is None or not {"L4", "L5"} <= set(anatomy.names):
            return False
        self.w.plan_panel.choose("teld", "L4-L5", "left")
        return self.propose_plan() is not None

    # --- the plan's trajectories --------------------------------------------------------------
    def add_trajectory(self, trajectory, description: str):
        from surgplan.planning import CaseReference, Plan

        session = self.w.session
        plan = session.state.plan or Plan(CaseReference.from_volume(session.case.volume))
        new = plan.with_trajectory(trajectory)
        idx = [t.name for t in new.trajectories].index(trajectory.name)
        session.apply(description, plan=new, selected=idx)

    def add_proposal(self, index: int):
        import dataclasses

        if 0 <= index < len(self.proposals):
            t = self.proposals[index].trajectory
            alt = dataclasses.replace(t, name=f"{t.name} #{index + 1}") if index else t
            self.add_trajectory(alt, f"add {alt.name}")

    def remove_trajectory(self, index: int):
        session = self.w.session
        plan = session.state.plan
        if plan is None or not 0 <= index < len(plan.trajectories):
            return
        name = plan.trajectories[index].name
        new = plan.without(name)
        session.apply(f"remove {name}", plan=new, selected=min(index, len(new.trajectories) - 1))

    def select(self, index: int):
        if index != self.w.session.state.selected:
            self.w.session.select(index)

    def selected_trajectory(self):
        plan, i = self.w.session.state.plan, self.w.session.state.selected
        if plan is None or not 0 <= i < len(plan.trajectories):
            return None
        return plan.trajectories[i]

    # --- drawing -------------------------------------------------------------------------------
    def _glyphs(self, override=None):
        state = self.w.session.state
        if state.plan is None:
            return []
        out = []
        for i, t in enumerate(state.plan.trajectories):
            if override and i in override:
                t = override[i]
            sel = i == state.selected
            out.append(ToolGlyph(t.entry_lps, t.target_lps, t.tool.diameter_mm,
                                 colour=TOOL_RGB if sel else (150, 160, 190), label=t.name,
                                 selected=sel))
        return out

    def show_tools(self, override=None):
        w = self.w
        glyphs = self._glyphs(override)
        for v in w.views:
            v.scene.set_tools(glyphs)
        w.view3d.scene.set_tools(glyphs)
        sel = w.session.state.selected
        self.update_trajectory_views(override.get(sel) if override else None)

    def set_views_along_tool(self, on: bool):
        """Show the views along the tool instead of the sagittal and coronal ones (or
        back), remembered in the settings (``view/alongTool``)."""
        w = self.w
        on = bool(on)
        w.act_follow.setChecked(on)
        if w.plan_panel.follow.isChecked() != on:
            w.plan_panel.follow.setChecked(on)  # comes back here through its signal
            return
        w.settings.setValue("view/alongTool", on)
        if not on:
            w.status_text.setText("Sagittal and coronal views are back; F4 (View ▸ Views along "
                                  "the tool) shows the views along the tool again.")
        elif self.selected_trajectory() is None:
            w.status_text.setText("Views along the tool: shown once a trajectory is selected; "
                                  "F4 brings back the sagittal and coronal views.")
        else:
            w.status_text.setText("Sagittal → along the tool, coronal → probe's eye; F4 (View ▸ "
                                  "Views along the tool) brings back sagittal and coronal.")
        self.update_trajectory_views()

    def update_trajectory_views(self, trajectory=None):
        """Sagittal → along the selected tool, coronal → its probe's eye (or back)."""
        from surgplan.render import STANDARD_AXES, trajectory_axes

        w = self.w
        t = trajectory or self.selected_trajectory()
        sag, cor = w.views[1].scene, w.views[2].scene
        if sag.volume is None:
            return
        if w.plan_panel.follow.isChecked() and t is not None:
            axes = trajectory_axes(t.entry_lps, t.target_lps, w.plan_panel.roll.value())
            target = np.asarray(t.target_lps)
            sag.set_axes(*axes["along"], name="along the tool")
            sag.set_cursor(target)
            cor.set_axes(*axes["probe"], name="probe's eye")
            cor.set_cursor(target)
        else:
            sag.set_axes(*STANDARD_AXES["sagittal"], name="sagittal")
            cor.set_axes(*STANDARD_AXES["coronal"], name="coronal")
        w.views[1].render()
        w.views[2].render()

    def show_plan(self):
        w = self.w
        plan = w.session.state.plan
        w.plan_panel.show_plan(plan, w.session.state.selected)
        self.show_tools()
        t = self.selected_trajectory()
        ctx = self.context()
        if t is None:
            self.metrics = None
        elif ctx is not None:
            from surgplan.planning import evaluate

            self.metrics = evaluate(ctx, t)
        else:
            self.metrics = None
            if w.session.state.anatomy is not None:
                # The anatomy changed (edited, undone, opened): the risk engine
                # works on the new one once its distance fields are ready.
                QTimer.singleShot(0, self.build_context)
        w.plan_panel.show_metrics(self.metrics)
        w.viewer.render_all()

    # --- dragging handles ---------------------------------------------------------------------
    def _dragged_trajectory(self, view, index, which, p_lps):
        plan = self.w.session.state.plan
        if plan is None or not 0 <= index < len(plan.trajectories):
            return None
        t = plan.trajectories[index]
        orig = np.asarray(t.entry_lps if which == "entry" else t.target_lps)
        p = np.asarray(p_lps, float)
        if isinstance(view, SliceView):
            # Move within the plane parallel to the view through the handle: the
            # handle keeps its depth, so an entry off this slice is not pulled onto it.
            n = view.scene.n
            p = p + n * float((orig - p) @ n)
        try:
            return t.with_entry(p) if which == "entry" else t.with_target(p)
        except ValueError:
            return None  # entry and target would coincide: ignore this position

    def handle_moved(self, view, index, which, p_lps):
        """A handle dragged in ``view``: live risk panel and tool, not yet an edit."""
        w = self.w
        t0 = time.perf_counter()
        new = self._dragged_trajectory(view, index, which, p_lps)
        if new is None:
            return
        self.dragging = (index, new)
        ctx = self.context()
        if ctx is not None:
            from surgplan.planning import evaluate

            self.metrics = evaluate(ctx, new)
            w.plan_panel.show_metrics(self.metrics)
        self.show_tools({index: new})
        # The risk panel and the view under the mouse follow every move; the other
        # views (the 3D one costs most without a GPU) at most every DRAG_REDRAW_MS.
        if hasattr(view, "render"):
            view.render()
        w.viewer.render_soon()
        self.last_update_ms = (time.perf_counter() - t0) * 1000.0

    def handle_released(self, view, index, which, p_lps):
        """The drag ended: the moved trajectory becomes one undo step."""
        new = self._dragged_trajectory(view, index, which, p_lps)
        self.dragging = None
        if new is None:
            self.show_plan()
            return
        session = self.w.session
        plan = session.state.plan
        if new != plan.trajectories[index]:
            session.apply(f"move {which} of {new.name}", plan=plan.with_trajectory(new))

    # --- entry risk map ------------------------------------------------------------------------
    def show_risk_map(self, on: bool = True):
        """Colour the skin by the best achievable risk of an entry there (selected target)."""
        w = self.w
        if not on:
            self._risk_map_for = None
            w.view3d.scene.set_scalar_surface(None, None, 0, 1)
            w.view3d.render()
            return None
        ctx, t = self.context(), self.selected_trajectory()
        if ctx is None or t is None or ctx.outline is None:
            w.plan_panel.risk_map.setChecked(False)
            w.status_text.setText("The entry risk map needs a trajectory (Propose first).")
            return None
        cached = self._skin_mesh if self._skin_mesh and self._skin_mesh[0] is ctx else None

        def work(progress=None, cancel=None):
            from surgplan.imaging.meshes import mesh_from_mask
            from surgplan.planning import entry_risk_map

            if progress:
                progress(0.0, "skin surface")
            mesh = cached[1] if cached else mesh_from_mask(ctx.outline, ctx.anatomy.ijk_to_lps,
                                                           "skin", max_triangles=40_000)
            if progress:
                progress(0.3, "risk of every entry")
            risk = entry_risk_map(ctx, t.procedure, t.target_lps, mesh.vertices_lps,
                                  level=t.level, side=t.side, tool=t.tool)
            return mesh, risk

        def done(result):
            mesh, risk = result
            self._skin_mesh = (ctx, mesh)
            if not w.plan_panel.risk_map.isChecked():
                return  # switched off while it was computed
            self._risk_map_for = key
            w.view3d.scene.set_scalar_surface(mesh, risk, 0.0, 1.0, opacity=0.9)
            w.view3d.render()

        key = self._risk_map_key()
        return w.jobs.run("Entry risk map", work, done, queue_if_busy=True)

    def _risk_map_key(self):
        t = self.selected_trajectory()
        if t is None:
            return None
        return (t.procedure, t.level, t.side, t.tool, tuple(np.round(t.target_lps, 3)))

    def on_session(self, reason: str):
        """Follow a session change: the anatomy's levels, the plan, a stale risk map."""
        w = self.w
        if reason in ("case", "anatomy", "series"):
            w.plan_panel.set_anatomy(w.session.state.anatomy)
            if w.plan_panel.risk_map.isChecked():
                w.plan_panel.risk_map.setChecked(False)
        if reason in ("case", "anatomy", "plan"):
            self.show_plan()
        if (reason == "plan" and w.plan_panel.risk_map.isChecked()
                and self._risk_map_for != self._risk_map_key()):
            self.show_risk_map(True)  # the target, tool or selection moved: recompute


__all__ = ["ALONG_TOOL_TIP", "PlanController"]
