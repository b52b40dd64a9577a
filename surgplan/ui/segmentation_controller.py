"""Segmentation and anatomy edits: the segmentation job (with Cancel), the Structures
panel's Rename/Merge/Split, and paint/erase strokes on the slices.

Every edit makes a new :class:`~surgplan.imaging.anatomy.Anatomy` and applies it to
the session as one undo step; the risk engine then works on the edited anatomy.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QInputDialog, QPushButton

from surgplan.core.progress import SubProgress
from surgplan.imaging.structures import VERTEBRA_ORDER
from surgplan.ui.view_controller import anatomy_surfaces
from surgplan.ui.views import SliceView

#: Paint brush radius (mm).
BRUSH_MM = 3.0


def segment_with_surfaces(volume, *, progress=None, cancel=None):
    """``(anatomy, surfaces)``: the segmentation of ``volume`` and its 3D surfaces."""
    from surgplan.imaging import segment as seg

    anatomy = seg.segment_volume(volume, progress=SubProgress(progress, 0.0, 0.8), cancel=cancel)
    meshes = anatomy_surfaces(anatomy, None, progress=SubProgress(progress, 0.8, 1.0),
                              cancel=cancel)
    return anatomy, meshes


class SegmentationController:
    """Segment the open series and edit the anatomy in the window's session."""

    def __init__(self, window):
        self.w = window
        self._stroke = None  # the paint stroke being drawn

    def build_edit_buttons(self, row):
        """Rename…, Merge ↓ and Split in the Structures panel's edit row."""
        w = self.w
        w.rename_button = QPushButton("Rename…")
        w.rename_button.setToolTip("Rename the selected vertebra (transitional anatomy)")
        w.rename_button.clicked.connect(self.rename_selected)
        w.merge_button = QPushButton("Merge ↓")
        w.merge_button.setToolTip("Merge the selected vertebra with the one below it")
        w.merge_button.clicked.connect(self.merge_selected)
        w.split_button = QPushButton("Split")
        w.split_button.setToolTip("Split the selected vertebra at the crosshair (axial plane)")
        w.split_button.clicked.connect(self.split_selected)
        for b in (w.rename_button, w.merge_button, w.split_button):
            row.addWidget(b)

    # --- segmentation -------------------------------------------------------------------------
    def segment(self):
        w = self.w
        vol = w.session.case.volume
        if vol is None:
            w.status_text.setText("Open a CT study first (File ▸ Open, or the demo case).")
            return None

        def done(result):
            anatomy, meshes = result
            w.viewer.mesh_cache = {}
            w.viewer.store_meshes(anatomy, meshes)
            w.session.apply("segmentation", anatomy=anatomy)
            # Centre the slices on the middle lumbar level, where planning starts.
            verts = [n for n in ("L4", "L3", "L5") if n in anatomy.names]
            centre = anatomy.centroid_lps(verts[0]) if verts else None
            if centre is not None:
                w.viewer.set_cursor(centre)

        return w.jobs.run("Segmenting", lambda **kw: segment_with_surfaces(vol, **kw), done)

    # --- paint / erase ---------------------------------------------------------------------------
    def paint(self, view, p_lps, erase: bool):
        """One dab of a paint/erase stroke: previewed in the slices at once (only the
        brush's voxels of the display map change); the anatomy is edited once, when
        the stroke ends (one undo step)."""
        from surgplan.imaging.anatomy_edits import brush_mask

        w, viewer = self.w, self.w.viewer
        anatomy = w.session.state.anatomy
        name = w.structures.selected_name()
        if anatomy is None or not name or viewer.labels is None:
            return
        normal = view.scene.n if isinstance(view, SliceView) else None
        stroke = self._stroke
        if stroke is None:
            # The preview draws into a private copy of the display map.
            import dataclasses

            viewer.labels = dataclasses.replace(viewer.labels,
                                                array=np.array(viewer.labels.array))
            stroke = self._stroke = {"name": name, "erase": erase, "normal": normal,
                                     "points": []}
            for v in w.views:
                v.scene.set_labels(viewer.labels, visible=w.structures.visible_names(),
                                   colours=w.structures.colours())
        stroke["points"].append(np.asarray(p_lps, float))
        brush = brush_mask(anatomy, p_lps, BRUSH_MM, normal_lps=normal)
        if brush is None:
            return
        sl, m = brush
        value = viewer.labels.value_of(name)
        block = viewer.labels.array[sl]
        if erase:
            block[m & (block == value)] = 0
        else:
            block[m] = value
        for v in w.views:
            v.scene.labels_modified()
        viewer.render_all()

    def stroke_finished(self):
        from surgplan.imaging.anatomy_edits import paint_stroke

        w = self.w
        stroke, self._stroke = self._stroke, None
        anatomy = w.session.state.anatomy
        if stroke is None or anatomy is None:
            return
        try:
            edited = paint_stroke(anatomy, stroke["name"], stroke["points"], BRUSH_MM,
                                  erase=stroke["erase"], normal_lps=stroke["normal"])
        except (KeyError, ValueError) as exc:
            w.report_error("Painting failed", exc)
            edited = anatomy
        if edited is anatomy:
            w.viewer.show_anatomy()  # drop the preview
            w.viewer.render_all()
            return
        verb = "erase" if stroke["erase"] else "paint"
        w.session.apply(f"{verb} {stroke['name']}", anatomy=edited)

    # --- rename / merge / split --------------------------------------------------------------------
    def edit(self, description: str, fn):
        """Apply ``fn(anatomy) -> Anatomy`` as one undo step; a refused edit is explained."""
        w = self.w
        anatomy = w.session.state.anatomy
        if anatomy is None:
            w.status_text.setText("Segment first: there is no anatomy to edit.")
            return
        try:
            edited = fn(anatomy)
        except (KeyError, ValueError) as exc:
            w.report_error(description.capitalize() + " is not possible", exc)
            return
        w.session.apply(description, anatomy=edited)

    def rename_selected(self):
        w = self.w
        name = w.structures.selected_name()
        anatomy = w.session.state.anatomy
        if anatomy is None or not name:
            return
        choices = [n for n in VERTEBRA_ORDER if n == name or n not in anatomy.names]
        new, ok = QInputDialog.getItem(w, "Rename vertebra", f"New name for {name}:",
                                       choices, choices.index(name) if name in choices else 0,
                                       False)
        if ok and new and new != name:
            self.rename(name, new)

    def rename(self, old: str, new: str):
        self.edit(f"rename {old} → {new}", lambda a: a.rename(old, new))

    def merge_selected(self):
        from surgplan.imaging.anatomy_edits import merge

        w = self.w
        name = w.structures.selected_name()
        anatomy = w.session.state.anatomy
        if anatomy is None or not name:
            return
        verts = list(anatomy.vertebra_names)
        if name not in verts or verts.index(name) + 1 >= len(verts):
            w.status_text.setText("Select a vertebra that has one below it to merge.")
            return
        below = verts[verts.index(name) + 1]
        self.edit(f"merge {below} into {name}", lambda a: merge(a, name, below))

    def split_selected(self):
        from surgplan.imaging.anatomy_edits import split

        w = self.w
        name = w.structures.selected_name()
        anatomy = w.session.state.anatomy
        if anatomy is None or not name:
            return
        free = [n for n in VERTEBRA_ORDER if n not in anatomy.names]
        new, ok = QInputDialog.getItem(w, "Split vertebra",
                                       f"Name of the part of {name} above the crosshair:", free,
                                       0, False)
        if ok and new:
            p = w.views[0].scene.cursor_lps
            self.edit(f"split {name}", lambda a: split(a, name, p, (0.0, 0.0, 1.0), new))


__all__ = ["BRUSH_MM", "SegmentationController", "segment_with_surfaces"]
