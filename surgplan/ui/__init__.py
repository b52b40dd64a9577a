"""The desktop application (PySide6 + VTK); the only package that imports Qt.

Entry point: :func:`surgplan.ui.app.run` (``surgplan gui [PATH] [--screenshot FILE]``).

- :mod:`.main_window` — :class:`MainWindow`: open, view, segment, edit, plan, save.
- :mod:`.session` — :class:`Session` (Qt-free): the open case, the current
  anatomy and plan, undo/redo; views observe it, models never know the views.
- :mod:`.views` — slice views and the 3D view on :mod:`surgplan.render` scenes.
- :mod:`.panels`, :mod:`.plan_panel` — study, structures, plan and risk panels.
- :mod:`.workers` — long work in a QThread with progress and Cancel.
- :mod:`.case_files` (Qt-free) — ``.surgplan`` files: plan JSON + segmentation.
- :mod:`.dialogs` — the one error dialog.

Nothing is imported here, so ``import surgplan.ui.session`` stays Qt-free.
"""
