"""The desktop application (PySide6 + VTK); the only package that imports Qt.

Entry point: :func:`surgplan.ui.app.run` (``surgplan gui [PATH] [--screenshot FILE]``).

- :mod:`.main_window` — :class:`MainWindow`: menus, layout and wiring of the controllers:
  :mod:`.open_controller` (open, recent, series, demo), :mod:`.view_controller` (what
  the views show, window/level, layout, screenshots), :mod:`.segmentation_controller`
  (segmentation, anatomy edits, paint), :mod:`.plan_controller` (propose, drag, risk
  panel, risk map, views along the tool), :mod:`.measure_controller` (distances and
  angles), :mod:`.case_controller` (``.surgplan`` files, recovery), :mod:`.jobs`
  (background jobs with progress and Cancel).
- :mod:`.session` — :class:`Session` (Qt-free): the open case, the current
  anatomy and plan, undo/redo; views observe it, models never know the views.
- :mod:`.views` — slice views and the 3D view on :mod:`surgplan.render` scenes.
- :mod:`.panels`, :mod:`.plan_panel` — study, structures, plan and risk panels.
- :mod:`.workers` — long work in a QThread with progress and Cancel.
- :mod:`.dialogs` — the one error dialog.

Nothing is imported here, so ``import surgplan.ui.session`` stays Qt-free.
"""
