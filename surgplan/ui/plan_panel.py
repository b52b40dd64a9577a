"""The plan panel: procedure, level, side and tool; proposals; trajectories; the risk panel."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QFrame,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from surgplan.ui.qtcompat import emit  # noqa: E402

#: Category → (background, text) colours of the risk banner.
CATEGORY_COLOURS = {
    "low": ("#2e9d4a", "#ffffff"),
    "moderate": ("#e6a817", "#000000"),
    "high": ("#d03030", "#ffffff"),
    "infeasible": ("#6a0d1a", "#ffffff"),
}


#: QSettings keys of the sections' fold state, as the user last left it (absent: never
#: clicked); beside the window's own keys (``window/geometry``, ``view/layout`` …).
FOLD_KEYS = {"choiceSection": "plan/procedureExpanded",
             "trajectorySection": "plan/trajectoriesExpanded"}


def _fmt(v, unit="", digits=1) -> str:
    return "—" if v is None else f"{v:.{digits}f}{unit}"


class CollapsibleSection(QWidget):
    """A titled part of a panel that folds to its title line (click the title).

    Folded, the title shows ``summary`` after it (e.g. the chosen procedure), so
    what the hidden part holds stays readable.

    Signals
    -------
    toggled(bool)
        Whether the section is now expanded.
    """

    toggled = Signal(bool)

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self._title = title
        self._summary = ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.header = QToolButton()
        self.header.setObjectName("sectionHeader")
        self.header.setCheckable(True)
        self.header.setChecked(True)
        self.header.setAutoRaise(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setArrowType(Qt.ArrowType.DownArrow)
        self.header.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        f = QFont(self.header.font())
        f.setBold(True)
        self.header.setFont(f)
        self.header.setToolTip(f"Click to fold or unfold {title.lower()}")
        self.header.toggled.connect(self._toggled)
        lay.addWidget(self.header)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        self.body_layout.setSpacing(3)
        lay.addWidget(self.body)
        self._update_text()

    def expanded(self) -> bool:
        return self.header.isChecked()

    def set_expanded(self, on: bool) -> None:
        self.header.setChecked(bool(on))

    def set_summary(self, text: str) -> None:
        self._summary = text
        self._update_text()

    def _toggled(self, on: bool) -> None:
        self.body.setVisible(on)
        self.header.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self._update_text()
        emit(self.toggled, on)

    def _update_text(self) -> None:
        folded = not self.header.isChecked() and self._summary
        self.header.setText(f"{self._title}: {self._summary}" if folded else self._title)


class PlanPanel(QWidget):
    """Choose and propose trajectories, list them, and show the selected one's risk.

    Signals
    -------
    proposeRequested()
    proposalChosen(int)
        Index in the last proposals (added to the plan as an alternative).
    trajectorySelected(int)
    removeRequested(int)
    riskMapToggled(bool)

    Parameters
    ----------
    parent : QWidget, optional
    settings : QSettings, optional
        The application's settings (the main window's): the sections' fold state is
        kept there between sessions (:data:`FOLD_KEYS`).  None: not kept.
    """

    proposeRequested = Signal()
    proposalChosen = Signal(int)
    trajectorySelected = Signal(int)
    removeRequested = Signal(int)
    riskMapToggled = Signal(bool)

    def __init__(self, parent=None, settings=None):
        from surgplan.planning import PROCEDURES

        super().__init__(parent)
        self._settings = settings
        self._filling = False
        self._auto_folded = False  # the choice section was folded once to make room
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        # Rows of the lists and the risk table: the text and a small margin, so that a
        # 768-pixel-high screen still shows a dozen structures of the risk table.
        self.row_px = self.fontMetrics().height() + 4

        # --- choice: procedure, level, side, tool; Propose; other proposals ---------------
        self.choice_section = CollapsibleSection("Procedure")
        self.choice_section.setObjectName("choiceSection")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(3)
        self.procedure = QComboBox()
        self.procedure.setObjectName("procedureBox")
        for key, proc in PROCEDURES.items():
            self.procedure.addItem(f"{proc.title} ({key})", key)
        self.level = QComboBox()
        self.level.setObjectName("levelBox")
        self.side = QComboBox()
        self.side.setObjectName("sideBox")
        self.side.addItems(["left", "right", "midline"])
        self.tool = QComboBox()
        self.tool.setObjectName("toolBox")
        for box in (self.procedure, self.level, self.side, self.tool):
            # Long procedure titles must not widen the panel at 1366 × 768.
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(10)
        self.level.setMinimumContentsLength(5)
        self.side.setMinimumContentsLength(5)
        level_side = QHBoxLayout()
        level_side.addWidget(self.level, 1)
        level_side.addWidget(QLabel("Side"))
        level_side.addWidget(self.side, 1)
        form.addRow("Procedure", self.procedure)
        form.addRow("Level", level_side)
        form.addRow("Tool", self.tool)
        self.choice_section.body_layout.addLayout(form)
        self.procedure.currentIndexChanged.connect(self._procedure_changed)
        self.propose_button = QPushButton("Propose")
        self.propose_button.setObjectName("proposeButton")
        self.propose_button.setToolTip("Find the lowest-risk trajectories (Ctrl+R)")
        self.propose_button.clicked.connect(self.proposeRequested)
        self.choice_section.body_layout.addWidget(self.propose_button)
        self.proposals = QListWidget()
        self.proposals.setObjectName("proposalList")
        self._compact_list(self.proposals, 3)
        self.proposals.setToolTip("Other proposals: double-click to add one to the plan")
        self.proposals.itemDoubleClicked.connect(
            lambda it: emit(self.proposalChosen, self.proposals.row(it)))
        self.choice_section.body_layout.addWidget(self.proposals)
        self.choice_section.toggled.connect(self._choice_toggled)
        lay.addWidget(self.choice_section)

        # --- the plan's trajectories and their display options ------------------------------
        self.trajectory_section = CollapsibleSection("Trajectories")
        self.trajectory_section.setObjectName("trajectorySection")
        body = self.trajectory_section.body_layout
        self.trajectories = QListWidget()
        self.trajectories.setObjectName("trajectoryList")
        self._compact_list(self.trajectories, 3)
        self.trajectories.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # A long tool description elides rather than adding a scroll bar over a third row.
        self.trajectories.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.trajectories.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.trajectories.currentRowChanged.connect(self._row_changed)
        body.addWidget(self.trajectories)
        row = QHBoxLayout()
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(
            lambda: emit(self.removeRequested, self.trajectories.currentRow()))
        self.risk_map = QCheckBox("Entry risk map on the skin")
        self.risk_map.setObjectName("riskMapBox")
        self.risk_map.toggled.connect(self.riskMapToggled)
        row.addWidget(self.remove_button)
        row.addWidget(self.risk_map, 1)
        body.addLayout(row)
        row = QHBoxLayout()
        self.follow = QCheckBox("Views along the tool")
        self.follow.setObjectName("followBox")
        self.roll = QSlider(Qt.Orientation.Horizontal)
        self.roll.setObjectName("rollSlider")
        self.roll.setRange(-180, 180)
        self.roll.setValue(0)
        self.roll.setToolTip("Roll of the views about the tool axis (degrees)")
        row.addWidget(self.follow)
        row.addWidget(QLabel("roll"))
        row.addWidget(self.roll, 1)
        body.addLayout(row)
        lay.addWidget(self.trajectory_section)

        # --- the selected trajectory's risk: always shown, the table takes the height -------
        self.category = QLabel("No trajectory")
        self.category.setObjectName("riskCategory")
        self.category.setAlignment(Qt.AlignmentFlag.AlignCenter)
        f = QFont(self.category.font())
        f.setPointSizeF(f.pointSizeF() * 1.5)
        f.setBold(True)
        self.category.setFont(f)
        self.category.setMinimumHeight(QFontMetrics(f).height() + 8)
        lay.addWidget(self.category)
        self.summary = QLabel("")
        self.summary.setObjectName("riskSummary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("riskTable")
        self.table.setHorizontalHeaderLabels(["Structure", "mm", "Contact", "Source"])
        self.table.horizontalHeaderItem(1).setToolTip("Clearance from the tool's surface (mm)")
        self.table.horizontalHeaderItem(2).setToolTip("Probability of contact under placement error")
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in (1, 2, 3):
            self.table.horizontalHeader().setSectionResizeMode(
                c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.row_px)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # "common iliac…artery left": the side at the end of a name must stay readable.
        # (Word wrap would elide at the end instead.)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        # Fold the choice section once the risk table is laid out too short to read.
        self.table.viewport().installEventFilter(self)
        # At least four rows stay visible however the panel is squeezed.
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + 4 * self.row_px + 2 * self.table.frameWidth() + 2)
        lay.addWidget(self.table, 1)
        self.reasons = QLabel("")
        self.reasons.setObjectName("riskReasons")
        self.reasons.setWordWrap(True)
        self.reasons.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # The reasons explain the table's top rows; five bullets wrap to eight or more lines
        # on a narrow panel and would squeeze the table itself, so they scroll past six.
        self.reasons_area = QScrollArea()
        self.reasons_area.setObjectName("riskReasonsArea")
        self.reasons_area.setWidget(self.reasons)
        self.reasons_area.setWidgetResizable(True)
        self.reasons_area.setFrameShape(QFrame.Shape.NoFrame)
        self.reasons_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.reasons_area.setMaximumHeight(6 * self.fontMetrics().lineSpacing() + 6)
        self.reasons_area.setSizePolicy(QSizePolicy.Policy.Preferred,
                                        QSizePolicy.Policy.Maximum)
        lay.addWidget(self.reasons_area)
        self._procedure_changed()
        for box in (self.procedure, self.level, self.side):
            box.currentIndexChanged.connect(lambda _i: self._update_choice_summary())
        self._update_choice_summary()
        self._restore_folds()
        for section in (self.choice_section, self.trajectory_section):
            # clicked, not toggled: only the user's folds are kept, not the automatic one
            section.header.clicked.connect(lambda _on, sec=section: self._save_fold(sec))

    # --- fold state between sessions -------------------------------------------------------
    def _restore_folds(self) -> None:
        """Fold or unfold the sections as the user last left them."""
        s = self._settings
        if s is None:
            return
        for section in (self.choice_section, self.trajectory_section):
            key = FOLD_KEYS[section.objectName()]
            if s.contains(key):
                expanded = s.value(key, True, type=bool)
                section.set_expanded(expanded)
                if section is self.choice_section and expanded:
                    # opened by the user last time: not folded again unasked (as in a session)
                    self._auto_folded = True

    def _save_fold(self, section: CollapsibleSection) -> None:
        # The automatic fold (make_room_for_the_table) is not saved: it depends on the
        # screen, and is made again where the table needs the room.
        if self._settings is not None:
            self._settings.setValue(FOLD_KEYS[section.objectName()], section.expanded())

    def _fit_reasons(self) -> None:
        """Give the reasons the lines they need, up to five, before the table's stretch
        takes the rest: two visible lines of a four-bullet reason list hid the reason."""
        width = max(self.reasons_area.viewport().width(), 100)
        need = self.reasons.heightForWidth(width) if self.reasons.text() else 0
        cap = 5 * self.fontMetrics().lineSpacing() + 4
        self.reasons_area.setMinimumHeight(min(max(need, 0), cap))

    def resizeEvent(self, event) -> None:  # the wrap, and so the lines needed, follow the width
        super().resizeEvent(event)
        self._fit_reasons()

    def _compact_list(self, widget: QListWidget, rows: int) -> None:
        """A list that shows ``rows`` rows at the compact row height."""
        widget.setUniformItemSizes(True)
        widget.setMaximumHeight(rows * (self.fontMetrics().height() + 2)
                                + 2 * widget.frameWidth() + 4)

    # --- room for the risk table ---------------------------------------------------------------
    def _choice_toggled(self, expanded: bool) -> None:
        if expanded:
            self._auto_folded = True  # the user opened it: do not fold it again unasked
        self._update_choice_summary()

    def _update_choice_summary(self) -> None:
        proc = self.procedure_key() or ""
        self.choice_section.set_summary(
            f"{proc} {self.level.currentText()} {self.side.currentText()}".strip())

    def eventFilter(self, obj, ev):
        if (ev.type() == QEvent.Type.Resize and obj is self.table.viewport()
                and not self._auto_folded and self.table.rowCount()):
            # After the layout settles: folding inside a resize would re-enter it.
            QTimer.singleShot(0, self.make_room_for_the_table)
        return super().eventFilter(obj, ev)

    def make_room_for_the_table(self, min_rows: int = 8) -> bool:
        """Fold the choice section when the risk table would show fewer than ``min_rows``
        rows (a 768-pixel-high screen); done once, so a user who opens it keeps it open.

        Returns whether it was folded.
        """
        if self._auto_folded or not self.choice_section.expanded() or not self.table.rowCount():
            return False
        if self.table.viewport().height() >= min_rows * self.row_px:
            return False
        self._auto_folded = True
        self.choice_section.set_expanded(False)
        return True

    # --- choices -------------------------------------------------------------------------
    def _procedure_changed(self):
        from surgplan.planning import PROCEDURES
        from surgplan.planning.procedures import describe_tool

        proc = PROCEDURES[self.procedure_key()]
        self.tool.clear()
        for t in proc.tools:
            self.tool.addItem(describe_tool(t), t.name)
        self._fill_levels()

    def procedure_key(self) -> str:
        return self.procedure.currentData()

    def tool_obj(self):
        from surgplan.planning import PROCEDURES

        return PROCEDURES[self.procedure_key()].tool(self.tool.currentData())

    def set_anatomy(self, anatomy) -> None:
        """Offer the levels this anatomy has."""
        self._verts = list(anatomy.vertebra_names) if anatomy is not None else []
        self._fill_levels()

    def _fill_levels(self):
        from surgplan.planning import PROCEDURES

        verts = getattr(self, "_verts", [])
        keep = self.level.currentText()
        self.level.clear()
        if PROCEDURES[self.procedure_key()].level_kind == "vertebra":
            levels = [v for v in verts if v != "S1"] + (["S1"] if "S1" in verts else [])
        else:
            levels = [f"{a}-{b}" for a, b in zip(verts, verts[1:])]
        self.level.addItems(levels)
        if keep in levels:
            self.level.setCurrentText(keep)
        elif "L4-L5" in levels:
            self.level.setCurrentText("L4-L5")
        elif "L4" in levels:
            self.level.setCurrentText("L4")

    def choose(self, procedure: str, level: str, side: str, tool: Optional[str] = None) -> None:
        """Set the four choices (as a user would)."""
        idx = self.procedure.findData(procedure)
        if idx < 0:
            raise KeyError(f"unknown procedure {procedure!r}")
        self.procedure.setCurrentIndex(idx)
        if self.level.findText(level) < 0:
            raise KeyError(f"level {level} is not in this anatomy")
        self.level.setCurrentText(level)
        self.side.setCurrentText(side)
        if tool is not None:
            self.tool.setCurrentIndex(self.tool.findData(tool))

    # --- plan --------------------------------------------------------------------------------
    def show_proposals(self, metrics_list) -> None:
        self.proposals.clear()
        for n, m in enumerate(metrics_list, start=1):
            it = QListWidgetItem(f"{n}. {m.risk.category} · {m.length_mm:.0f} mm · "
                                 f"score {m.risk.score:.2f}")
            bg, fg = CATEGORY_COLOURS.get(m.risk.category, ("#888888", "#000000"))
            it.setForeground(QColor(bg))
            self.proposals.addItem(it)

    def show_plan(self, plan, selected: int) -> None:
        from surgplan.planning.procedures import describe_tool

        self._filling = True
        self.trajectories.clear()
        if plan is not None:
            for t in plan.trajectories:
                # the name says the procedure, the line the sizes (it must fit a narrow
                # panel); the tooltip says it all
                it = QListWidgetItem(f"{t.name} — {describe_tool(t.tool, short=True)}")
                it.setToolTip(f"{t.name} — {describe_tool(t.tool, name=True, driver_reach=True)}")
                self.trajectories.addItem(it)
            if 0 <= selected < self.trajectories.count():
                self.trajectories.setCurrentRow(selected)
        self.remove_button.setEnabled(self.trajectories.count() > 0)
        self._filling = False

    def _row_changed(self, row: int):
        if not self._filling and row >= 0:
            emit(self.trajectorySelected, row)

    def show_metrics(self, m) -> None:
        """The risk panel for one trajectory's :class:`TrajectoryMetrics` (``None`` clears)."""
        if m is None:
            self.category.setText("No trajectory")
            self.category.setStyleSheet("")
            self.summary.setText("")
            self.reasons.setText("")
            self._fit_reasons()
            self.table.setRowCount(0)
            return
        cat = m.risk.category
        bg, fg = CATEGORY_COLOURS.get(cat, ("#888888", "#000000"))
        self.category.setText(f"{cat.upper()} risk" if cat != "infeasible" else "INFEASIBLE")
        self.category.setStyleSheet(f"background:{bg}; color:{fg}; border-radius:4px;")
        bone = sum(m.bone_removed_ml.values()) if m.bone_removed_ml else 0.0
        lines = [f"Length {m.length_mm:.0f} mm"
                 + ("" if m.reaches else " — <b>longer than the tool</b>")
                 + f" · {m.midline_distance_mm:.0f} mm from the midline",
                 f"Bone to remove {bone:.2f} ml"]
        if m.kambin is not None:
            k = m.kambin
            lines.append(f"Kambin: inscribed ⌀ {k.triangle.inscribed_diameter_mm:.1f} mm for a "
                         f"{k.tool_diameter_mm:g} mm tool — "
                         + ("<b style='color:#2e9d4a'>fits</b>" if k.fits
                            else "<b style='color:#d03030'>does not fit</b>"))
        elif m.kambin_note:
            lines.append(m.kambin_note)
        if m.pedicle is not None:
            p = m.pedicle
            lines.append(f"Pedicle {p.vertebra} {p.side}: isthmus {p.isthmus_width_mm:.1f} mm, "
                         f"screw {p.screw_diameter_mm:g} mm, breach {p.breach_mm:.1f} mm "
                         f"(grade {p.grade})")
        self.summary.setText("<br>".join(lines))
        rows = sorted(m.structures, key=lambda s: (not s.assessed, s.clearance_mm
                                                   if s.clearance_mm is not None else 1e9))
        self.table.setRowCount(len(rows))
        for r, s in enumerate(rows):
            contact = ("—" if s.contact_probability is None
                       else f"{100 * s.contact_probability:.1f} %")
            vals = [s.name, _fmt(s.clearance_mm), contact,
                    (s.provenance or "not assessed") if s.assessed else "not assessed"]
            for c, v in enumerate(vals):
                it = QTableWidgetItem(v)
                if s.note or c == 0:
                    it.setToolTip(f"{s.name}: {s.note}" if s.note else s.name)
                if s.assessed and s.clearance_mm is not None and s.clearance_mm < s.margin_mm:
                    it.setForeground(QColor("#d03030"))
                elif not s.assessed:
                    it.setForeground(QColor("#888888"))
                self.table.setItem(r, c, it)
        self.reasons.setText("\n".join("• " + r for r in m.risk.reasons[:5]))
        self._fit_reasons()
        self.make_room_for_the_table()
