"""Side panels: the series browser and the structure list."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from surgplan.imaging.structures import colour_of, kind_of
from surgplan.render.images import auto_window
from surgplan.ui.qtcompat import emit  # noqa: E402

THUMB_PX = 96


def thumbnail(volume, size: int = THUMB_PX) -> QImage:
    """A sagittal mid-slice of a volume as a small grey image, superior up.

    Sagittal because a spine study is recognisable from the side at a glance.
    """
    a = np.asarray(volume.array)
    ni = a.shape[2]
    sl = a[:, :, ni // 2].astype(np.float32)  # rows k, columns j
    # Put superior at the top whatever the slice order, anterior on the left.
    if volume.ijk_to_lps[2, 2] > 0:
        sl = sl[::-1]
    if volume.ijk_to_lps[1, 1] < 0:
        sl = sl[:, ::-1]
    w, lv = auto_window(a, modality=volume.modality)
    img = np.clip((sl - (lv - w / 2)) / w * 255.0, 0, 255).astype(np.uint8)
    # Physical aspect: rows are slices (k spacing), columns rows (j spacing).
    sk, sj = float(volume.spacing_mm[2]), float(volume.spacing_mm[1])
    h_mm, w_mm = img.shape[0] * sk, img.shape[1] * sj
    img = np.ascontiguousarray(img)
    q = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], QImage.Format.Format_Grayscale8)
    q = q.copy()  # own the pixels: the numpy buffer goes away
    scale = size / max(h_mm, w_mm)
    return q.scaled(max(1, int(w_mm * scale)), max(1, int(h_mm * scale)),
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation)


class StudyPanel(QWidget):
    """The series of the open study: thumbnail, key facts, the loader's warnings.

    Signal ``seriesChosen(str)`` carries the UID the user picked.
    """

    seriesChosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.source = QLabel("No study open. File ▸ Open, drop a folder here, or File ▸ Demo case.")
        self.source.setWordWrap(True)
        lay.addWidget(self.source)
        self.list = QListWidget()
        self.list.setObjectName("seriesList")
        self.list.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.list.setWordWrap(True)
        self.list.setMinimumWidth(120)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        lay.addWidget(self.list, 3)
        self.details = QLabel("")
        self.details.setObjectName("seriesDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.details, 2)

    def _activated(self, item: QListWidgetItem) -> None:
        uid = item.data(Qt.ItemDataRole.UserRole)
        if uid:
            emit(self.seriesChosen, uid)

    def show_case(self, case) -> None:
        self.list.clear()
        self.source.setText(f"<b>Study</b>: {case.source}")
        for entry in case.series:
            vol = case.volumes.get(entry.uid)
            md = entry.metadata
            text = (f"{entry.modality or '?'} · {entry.description or 'no description'}\n"
                    f"{entry.columns}×{entry.rows}×{entry.slices}, "
                    f"{' × '.join(f'{s:.2f}' for s in entry.spacing_mm)} mm"
                    + (f"\n⚠ {len(entry.warnings)} warning(s)" if entry.warnings else ""))
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, entry.uid)
            if vol is not None:
                item.setIcon(QIcon(QPixmap.fromImage(thumbnail(vol))))
            item.setToolTip(f"Series {entry.uid}\n{md.series_description}")
            self.list.addItem(item)
            if entry.uid == case.current_uid:
                item.setSelected(True)
        self.show_details(case)

    def show_details(self, case) -> None:
        entry = next((s for s in case.series if s.uid == case.current_uid), None)
        vol = case.volume
        if entry is None or vol is None:
            self.details.setText("")
            return
        md = vol.metadata
        rows = [
            ("Patient", f"{md.patient_name or '—'} ({md.patient_id or 'no ID'})"),
            ("Born / sex", f"{md.patient_birth_date or '—'} / {md.patient_sex or '—'}"),
            ("Study", f"{md.study_date or '—'} {md.study_description}"),
            ("Series", f"{md.series_number} {md.series_description}"),
            ("Modality", f"{vol.modality or '?'} {md.manufacturer} {md.convolution_kernel}"),
            ("Voxels", "×".join(str(n) for n in vol.shape_ijk) + " at "
             + " × ".join(f"{s:.2f}" for s in vol.spacing_mm) + " mm"),
        ]
        html = "".join(f"<tr><td><b>{k}</b>&nbsp;</td><td>{v}</td></tr>" for k, v in rows)
        warnings = [w for w in vol.warnings if w.code != "skipped-file"]
        skipped = [w for w in vol.warnings if w.code == "skipped-file"]
        if skipped:
            # Files beside the images (notes, labels, reports) are normal: one line,
            # the list in the tooltip.
            self.details.setToolTip("\n".join(w.message for w in skipped[:30]))
            html += (f"<tr><td><b>Skipped</b>&nbsp;</td><td>{len(skipped)} file(s) that are not "
                     "images of this series (hover for the list)</td></tr>")
        else:
            self.details.setToolTip("")
        if warnings:
            items = "".join(f"<li><b>{w.code}</b>: {w.message}</li>" for w in warnings[:12])
            more = f"<li>… {len(warnings) - 12} more</li>" if len(warnings) > 12 else ""
            html += f"</table><p style='color:#e0a030'><b>Warnings</b></p><ul>{items}{more}</ul>"
        else:
            html += "</table><p>No loader warnings.</p>"
        self.details.setText("<table>" + html)


def _colour_icon(rgb, size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


class StructurePanel(QWidget):
    """The structures of the anatomy: visibility, colour, provenance; overlay opacity.

    Signals
    -------
    visibilityChanged()
        Read :meth:`visible_names`.
    colourChanged(str, tuple)
    opacityChanged(float)
    selectionChanged(str)
        The structure chosen for editing (paint, rename, merge, split).
    """

    visibilityChanged = Signal()
    colourChanged = Signal(str, tuple)
    opacityChanged = Signal(float)
    selectionChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.segment_button = QPushButton("Segment")
        self.segment_button.setObjectName("segmentButton")
        self.segment_button.setToolTip("Find and name the vertebrae, discs and canal (Ctrl+G)")
        lay.addWidget(self.segment_button)
        self.tree = QTreeWidget()
        self.tree.setObjectName("structureTree")
        self.tree.setHeaderLabels(["Structure", "Source"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setRootIsDecorated(False)
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.tree.currentItemChanged.connect(self._current_changed)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Overlay"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("overlayOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(40)
        self.opacity.valueChanged.connect(lambda v: emit(self.opacityChanged, v / 100.0))
        row.addWidget(self.opacity, 1)
        lay.addLayout(row)
        self.edit_row = QHBoxLayout()
        lay.addLayout(self.edit_row)
        # Findings can be many sentences: a small scrolling box, so that the
        # structure list keeps its room.
        self.findings = QPlainTextEdit()
        self.findings.setReadOnly(True)
        self.findings.setObjectName("findings")
        self.findings.setMaximumHeight(110)
        self.findings.setToolTip("What the segmentation found and could not find")
        lay.addWidget(self.findings)
        self._items: Dict[str, QTreeWidgetItem] = {}
        self._colours: Dict[str, tuple] = {}
        self._filling = False

    def show_anatomy(self, anatomy, visible: Optional[set] = None) -> None:
        """List ``anatomy``'s structures (None clears); keep visibility and colours by name."""
        self._filling = True
        current = self.selected_name()
        old_visible = self.visible_names() if self._items else None
        self.tree.clear()
        self._items = {}
        if anatomy is not None:
            for s in anatomy.items:
                prov = s.provenance + (" · name?" if s.provisional else "")
                it = QTreeWidgetItem([s.name, prov])
                it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                if visible is not None:
                    shown = s.name in visible
                elif old_visible is not None and s.name in self._colours:
                    shown = s.name in old_visible
                else:
                    shown = kind_of(s.name) not in ("body", "fat", "skin")
                it.setCheckState(0, Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
                rgb = self._colours.get(s.name) or colour_of(s.name)
                self._colours.setdefault(s.name, rgb)
                it.setIcon(0, _colour_icon(rgb))
                tip = s.notes or f"{s.kind}, {s.provenance}"
                it.setToolTip(0, tip)
                it.setToolTip(1, tip)
                self.tree.addTopLevelItem(it)
                self._items[s.name] = it
            self.findings.setPlainText("\n".join(anatomy.findings))
            if current in self._items:
                self.tree.setCurrentItem(self._items[current])
        else:
            self.findings.setPlainText("")
        self._filling = False

    def names(self) -> list:
        return list(self._items)

    def visible_names(self) -> set:
        return {n for n, it in self._items.items() if it.checkState(0) == Qt.CheckState.Checked}

    def set_visible(self, name: str, on: bool) -> None:
        self._items[name].setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def colours(self) -> dict:
        return {n: c for n, c in self._colours.items() if n in self._items}

    def provenance_of(self, name: str) -> str:
        return self._items[name].text(1)

    def selected_name(self) -> str:
        it = self.tree.currentItem()
        return it.text(0) if it is not None else ""

    def select(self, name: str) -> None:
        self.tree.setCurrentItem(self._items[name])

    def _item_changed(self, item, column) -> None:
        if not self._filling and column == 0:
            emit(self.visibilityChanged)

    def _current_changed(self, cur, prev) -> None:
        if not self._filling:
            emit(self.selectionChanged, cur.text(0) if cur is not None else "")

    def _double_clicked(self, item, column) -> None:
        name = item.text(0)
        c = QColorDialog.getColor(QColor(*self._colours.get(name, colour_of(name))), self,
                                  f"Colour of {name}")
        if c.isValid():
            self.set_colour(name, (c.red(), c.green(), c.blue()))

    def set_colour(self, name: str, rgb: tuple) -> None:
        self._colours[name] = tuple(int(v) for v in rgb)
        self._items[name].setIcon(0, _colour_icon(rgb))
        emit(self.colourChanged, name, tuple(rgb))
