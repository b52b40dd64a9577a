"""The one mutable thing of the application: the open case and its edit history.

A :class:`Session` holds the loaded volume, the anatomy (segmented, then edited)
and the plan, all immutable values, plus an undo/redo history of whole states.
Views observe it (``session.subscribe(callback)``); the models never know the
views.  No Qt here, so the workflow can be tested and scripted headless.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, List, Optional

#: Undo depth.  A state holds references to immutable values; an anatomy edit
#: copies its label maps, so the depth bounds the memory a long edit session uses.
MAX_HISTORY = 30


@dataclass(frozen=True)
class State:
    """Everything an undo step restores.

    Attributes
    ----------
    anatomy : Anatomy or None
    plan : object or None
        The planner's ``Plan`` value once planning exists.
    selected : int
        Index of the trajectory being edited (-1: none).
    """

    anatomy: Any = None
    plan: Any = None
    selected: int = -1


@dataclass
class Case:
    """What was opened: the source path, the series found, and the volume shown."""

    source: str = ""
    series: list = field(default_factory=list)  # SeriesEntry, header facts only
    volumes: dict = field(default_factory=dict)  # uid → Volume, loaded series
    current_uid: str = ""

    @property
    def volume(self):
        return self.volumes.get(self.current_uid)


class Session:
    """The open case, the current state, and undo/redo.

    Every change goes through :meth:`apply` (an undoable step with a
    description) or :meth:`set_case` (a new study: history cleared); observers
    are called with a short reason string after each change.
    """

    def __init__(self) -> None:
        self.case = Case()
        self.state = State()
        self._undo: List[tuple] = []
        self._redo: List[tuple] = []
        self._observers: List[Callable[[str], None]] = []
        self.meshes: dict = {}  # name → Mesh of the current anatomy (3D view), derived
        self.dirty = False

    # --- observers -----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str], None]) -> None:
        self._observers.append(callback)

    def _notify(self, reason: str) -> None:
        for cb in list(self._observers):
            cb(reason)

    # --- changes -----------------------------------------------------------------------------
    def set_case(self, case: Case, state: Optional[State] = None) -> None:
        """Open a new case; history and derived data are cleared."""
        self.case = case
        self.state = state or State()
        self._undo.clear()
        self._redo.clear()
        self.meshes = {}
        self.dirty = False
        self._notify("case")

    def select_series(self, uid: str) -> None:
        """Show another loaded series of the same case (the anatomy belongs to the first)."""
        if uid not in self.case.volumes:
            raise KeyError(f"series {uid} is not loaded")
        self.case.current_uid = uid
        self._notify("series")

    def apply(self, description: str, **changes: Any) -> None:
        """Make an undoable change of the state (``anatomy=…``, ``plan=…``, ``selected=…``)."""
        new = replace(self.state, **changes)
        self._undo.append((description, self.state))
        del self._undo[:-MAX_HISTORY]
        self._redo.clear()
        self.state = new
        self.dirty = True
        if "anatomy" in changes:
            self.meshes = {}
        self._notify("anatomy" if "anatomy" in changes else "plan")

    def select(self, index: int) -> None:
        """Choose the trajectory being edited (a view change, not an undo step)."""
        self.state = replace(self.state, selected=int(index))
        self._notify("plan")

    def set_meshes(self, meshes: dict) -> None:
        """Store surfaces computed for the current anatomy (derived, not undoable)."""
        self.meshes = dict(meshes)
        self._notify("meshes")

    # --- history -------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_text(self) -> str:
        return self._undo[-1][0] if self._undo else ""

    @property
    def redo_text(self) -> str:
        return self._redo[-1][0] if self._redo else ""

    def undo(self) -> None:
        if not self._undo:
            return
        desc, previous = self._undo.pop()
        self._redo.append((desc, self.state))
        self._restore(previous)

    def redo(self) -> None:
        if not self._redo:
            return
        desc, nxt = self._redo.pop()
        self._undo.append((desc, self.state))
        self._restore(nxt)

    def _restore(self, state: State) -> None:
        anatomy_changed = state.anatomy is not self.state.anatomy
        self.state = state
        self.dirty = True
        if anatomy_changed:
            self.meshes = {}
        self._notify("anatomy" if anatomy_changed else "plan")
