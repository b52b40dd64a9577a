"""The plan report: a PDF a surgeon prints, reads in theatre and signs.

Laid out with reportlab (real tables that split across pages with their header
row repeated, TrueType fonts embedded as subsets so the file prints the same
everywhere).  Content, in order:

1. **Patient and study** (or "anonymised"), and the **plan**: procedure, level,
   side, tool and risk category of each trajectory, the overall category with its
   reasons.
2. Per **trajectory**: entry, skin entry and target in LPS mm and relative to
   landmarks (midline, iliac crest, the endplate of the level); the C-arm angles;
   length against the tool's reach; the per-structure table (clearance from the
   tool's surface, contact probability under placement error, margin, provenance);
   bone to remove; Kambin or screw fit with the Gertzbein–Robbins grade; notes; the
   pictures (3D overview, axial and sagittal planes through the tool, the view along
   it, the entry risk map).
3. **How the anatomy was obtained**: every structure with its provenance, what
   rests on a model, the segmentation's findings and the loader's warnings.
4. The **surgeon's notes** and a sign-off block.

Every page carries a header (patient or "anonymised case", the plan) and a footer
(software version, generation time, input series UID, page n of N).

:func:`write_report_pdf` takes the values as they are (volume, anatomy, plan,
the planning engine's metrics per trajectory, pictures); :mod:`surgplan.report.plan_report`
computes them from files.
"""

from __future__ import annotations

import datetime
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from surgplan import __version__
from surgplan.core.atomic import publish_file
from surgplan.core.errors import PlanFileError
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.planning.procedures import describe_tool

#: Where the embedded fonts come from: DejaVu (wide Unicode: ≥, °, ±, →) when the
#: system has it, else Bitstream Vera, which reportlab ships.
_FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
     "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
)
FONT = "SurgPlanSans"
FONT_BOLD = "SurgPlanSans-Bold"
_ASCII_FALLBACK = {"≥": ">=", "≤": "<=", "→": "->", "≈": "~", "Ø": "diam. ", "−": "-",
                   "⟂": "perp.", "²": "2", "³": "3"}
_fonts_ready: Optional[bool] = None  # True: DejaVu; False: Vera

CATEGORY_COLOURS = {"low": "#2e7d32", "moderate": "#f9a825", "high": "#c62828",
                    "infeasible": "#4a148c"}
CATEGORY_ORDER = ("low", "moderate", "high", "infeasible")


def _register_fonts() -> bool:
    """Register the embedded fonts once; True when DejaVu (full Unicode) is used."""
    global _fonts_ready
    if _fonts_ready is not None:
        return _fonts_ready
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular = bold = None
    for r, b in _FONT_CANDIDATES:
        if os.path.exists(r) and os.path.exists(b):
            regular, bold = r, b
            break
    dejavu = regular is not None
    if not dejavu:
        import reportlab

        base = Path(reportlab.__file__).parent / "fonts"
        regular, bold = str(base / "Vera.ttf"), str(base / "VeraBd.ttf")
    pdfmetrics.registerFont(TTFont(FONT, regular))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, bold))
    addMapping(FONT, 0, 0, FONT)
    addMapping(FONT, 1, 0, FONT_BOLD)
    addMapping(FONT, 0, 1, FONT)
    addMapping(FONT, 1, 1, FONT_BOLD)
    _fonts_ready = dejavu
    return dejavu


def _t(text) -> str:
    """Text safe for the paragraph markup and the embedded font."""
    s = "" if text is None else str(text)
    if not _fonts_ready:
        for a, b in _ASCII_FALLBACK.items():
            s = s.replace(a, b)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- values shown ------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyFacts:
    """Who and what the images are, as printed on page 1 (empty when anonymous)."""

    anonymous: bool
    rows: tuple  # (label, value) pairs
    header: str  # one line for every page's header
    series_uid: str  # for the footer ('' when anonymous)

    @classmethod
    def from_volume(cls, volume, *, anonymous: bool = False) -> "StudyFacts":
        md = volume.metadata
        ni, nj, nk = volume.shape_ijk
        sp = volume.spacing_mm
        image = f"{ni} × {nj} × {nk} voxels, {sp[0]:.2f} × {sp[1]:.2f} × {sp[2]:.2f} mm"
        series = " · ".join(x for x in (md.modality, md.series_description) if x) or "—"
        if anonymous:
            # Descriptions are free text (a NIfTI's is its file name): left out, as the
            # DICOM confidentiality profile removes Series Description.
            rows = (("Patient", "anonymised (identity, dates, UIDs and descriptions left out)"),
                    ("Modality", md.modality or "not recorded"), ("Image", image))
            return cls(True, rows, "Anonymised case", "")
        rows = (
            ("Patient", _person(md.patient_name) or "not recorded"),
            ("Patient ID", md.patient_id or "not recorded"),
            ("Birth date", _date(md.patient_birth_date) or "not recorded"),
            ("Sex", md.patient_sex or "not recorded"),
            ("Study date", _date(md.study_date) or "not recorded"),
            ("Study", md.study_description or "—"),
            ("Series", series),
            ("Image", image),
            ("Series UID", md.series_instance_uid or "not recorded"),
            ("Loaded from", volume.source or "—"),
        )
        who = " · ".join(x for x in (_person(md.patient_name), md.patient_id,
                                     _date(md.patient_birth_date)) if x)
        return cls(False, rows, who or "Patient not recorded", md.series_instance_uid or "")


def _person(name: str) -> str:
    parts = [p for p in str(name or "").split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0].upper()}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""


def _date(d: str) -> str:
    d = str(d or "").strip()
    if len(d) == 8 and d.isdigit():
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return d


def _mm(v, n: int = 1) -> str:
    return "—" if v is None else f"{v:.{n}f}"


def _pt(p) -> str:
    if p is None:
        return "—"
    return f"({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f})"


def overall_category(metrics: Sequence[object]) -> tuple:
    """(category, reasons) of a whole plan: its worst trajectory's, reasons named by trajectory."""
    worst = max(metrics, key=lambda m: CATEGORY_ORDER.index(m.risk.category))
    reasons = []
    for m in metrics:
        if m.risk.category == worst.risk.category:
            reasons += [f"{m.trajectory.name}: {r}" for r in m.risk.reasons]
    return worst.risk.category, tuple(reasons)


@dataclass(frozen=True)
class Landmarks:
    """Where a trajectory lies relative to the anatomy a surgeon palpates and images.

    Each entry is ``(what, text)``; a landmark that is not in the anatomy says so.
    """

    rows: tuple = ()


def landmarks_of(anatomy, metrics) -> Landmarks:
    """Entry and target relative to the midline, the iliac crest and the endplate of the level."""
    t = metrics.trajectory
    entry = np.asarray(metrics.skin_entry_lps or t.entry_lps, float)
    target = np.asarray(t.target_lps, float)
    rows = [("Skin entry from the midline",
             f"{metrics.midline_distance_mm:.1f} mm to the patient's {t.side}"
             if t.side in ("left", "right") else f"{metrics.midline_distance_mm:.1f} mm")]
    # Iliac crest: the highest point of the ilium on the side of the approach.
    side = t.side if t.side in ("left", "right") else None
    ilia = [f"ilium {side}"] if side else ["ilium left", "ilium right"]
    crest = None
    for name in ilia:
        if name in anatomy.names:
            m = anatomy.mask(name)
            if m.any():
                k, j, i = np.nonzero(m)
                pts = anatomy.ijk_to_lps[:3, :3] @ np.stack([i, j, k]).astype(float) \
                    + anatomy.ijk_to_lps[:3, 3:4]
                top = float(pts[2].max())
                crest = top if crest is None else max(crest, top)
    if crest is None:
        rows.append(("Iliac crest", "not in the anatomy"))
    else:
        for what, p in (("Skin entry", entry), ("Target", target)):
            dz = float(p[2] - crest)
            rows.append((f"{what} to the iliac crest",
                         f"{abs(dz):.1f} mm {'above' if dz >= 0 else 'below'} "
                         "the top of the crest"))
    # Endplate: the upper endplate of the lower vertebra of a disc level (or of the
    # screw's vertebra), measured along that vertebra's superior axis.
    lower = t.level.split("-")[-1]
    rows.append(_endplate_row(anatomy, lower, target))
    return Landmarks(tuple(rows))


def _endplate_row(anatomy, vertebra: str, target) -> tuple:
    label = f"Target to the upper endplate of {vertebra}"
    if vertebra not in anatomy.names:
        return (label, f"{vertebra} is not in the anatomy")
    s = anatomy.structure(vertebra)
    m = anatomy.part_mask("body", vertebra) if anatomy.has_parts else anatomy.mask(vertebra)
    if not m.any():
        m = anatomy.mask(vertebra)
    if not m.any():
        return (label, f"{vertebra} has no voxels")
    k, j, i = np.nonzero(m)
    pts = (anatomy.ijk_to_lps[:3, :3] @ np.stack([i, j, k]).astype(float)
           + anatomy.ijk_to_lps[:3, 3:4]).T
    if s.frame is not None:
        origin, si = np.asarray(s.frame.origin_lps, float), np.asarray(s.frame.si, float)
    else:
        origin, si = pts.mean(axis=0), np.array([0.0, 0.0, 1.0])
    rel = pts - origin
    h = rel @ si
    radial = np.linalg.norm(rel - np.outer(h, si), axis=1)
    core = h[radial < 12.0] if np.count_nonzero(radial < 12.0) > 20 else h
    top = float(np.percentile(core, 98))
    dt = float((np.asarray(target, float) - origin) @ si) - top
    return (label, f"{abs(dt):.1f} mm {'above' if dt >= 0 else 'below'} it")


# --- document ----------------------------------------------------------------------------
def _styles():
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=FONT, bulletFontName=FONT, fontSize=9, leading=11.5)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5,
                                textColor=colors.HexColor("#444444")),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=9.8),
        "cellb": ParagraphStyle("cellb", parent=base, fontName=FONT_BOLD, fontSize=8,
                                leading=9.8),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=17,
                                leading=21, spaceAfter=4),
        "h1": ParagraphStyle("h1", parent=base, fontName=FONT_BOLD, fontSize=13, leading=16,
                             spaceBefore=8, spaceAfter=5,
                             textColor=colors.HexColor("#1a3c6e")),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=10.5, leading=13,
                             spaceBefore=7, spaceAfter=3),
        "caption": ParagraphStyle("caption", parent=base, fontSize=7.5, leading=9.2,
                                  textColor=colors.HexColor("#333333")),
        "bullet": ParagraphStyle("bullet", parent=base, leftIndent=10, bulletIndent=2),
    }


def _table(rows, col_widths, *, header: bool = True, styles=None, extra=()):
    """A real table: Paragraph cells (they wrap), header row repeated on every page."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    st = styles or _styles()
    data = []
    for r, row in enumerate(rows):
        style = st["cellb"] if (header and r == 0) else st["cell"]
        data.append([c if not isinstance(c, (str, int, float)) and c is not None
                     else Paragraph(_t(c), style) for c in row])
    t = Table(data, colWidths=col_widths, repeatRows=1 if header else 0, hAlign="LEFT")
    cmds = [
        ("FONTNAME", (0, 0), (-1, -1), FONT),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        cmds.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e3e9f0")))
    t.setStyle(TableStyle(cmds + list(extra)))
    return t


def _kv_table(rows, widths, styles):
    from reportlab.lib import colors

    return _table(rows, widths, header=False, styles=styles,
                  extra=[("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f1f4f8"))])


def _image(fig, width_pt: float):
    from PIL import Image as PILImage
    from reportlab.platypus import Image

    # PNG is only the carrier into reportlab (which re-compresses the pixels losslessly):
    # the fastest PNG level is enough.
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(fig.rgb)).save(buf, format="PNG", compress_level=1)
    buf.seek(0)
    return Image(buf, width=width_pt, height=width_pt * fig.aspect)


def _figure_grid(figs, total_width: float, styles, columns: int = 2):
    """Pictures side by side with their titles and captions under them."""
    from reportlab.platypus import Paragraph, Table, TableStyle

    if not figs:
        return []
    w = (total_width - (columns - 1) * 6) / columns
    # Two columns of 5:4 pictures: 90 % of the column keeps three rows (five pictures
    # and their captions) on one A4 page.
    img_w = w * (0.9 if columns == 2 else 1.0)
    cells = []
    for f in figs:
        cells.append([_image(f, img_w), Paragraph(f"<b>{_t(f.title)}.</b> {_t(f.caption)}",
                                              styles["caption"])])
    rows = [cells[i:i + columns] for i in range(0, len(cells), columns)]
    for r in rows:
        while len(r) < columns:
            r.append("")
    t = Table(rows, colWidths=[w + 6] * columns, hAlign="LEFT")
    t.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT),
                           ("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("LEFTPADDING", (0, 0), (-1, -1), 0),
                           ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                           ("BOTTOMPADDING", (0, 0), (-1, -1), 8)]))
    return [t]


def _category_cell(category: str, styles):
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph
    from reportlab.lib.styles import ParagraphStyle

    st = ParagraphStyle("cat", parent=styles["cellb"], textColor=colors.white)
    return Paragraph(_t(category.upper()), st), colors.HexColor(
        CATEGORY_COLOURS.get(category, "#555555"))


@dataclass
class _PageDecor:
    header_left: str
    header_right: str
    footer_left: str

    def draw(self, canvas, doc) -> None:
        from reportlab.lib import colors
        from reportlab.pdfbase.pdfmetrics import stringWidth

        w, h = doc.pagesize
        left, right = doc.leftMargin, w - doc.rightMargin
        canvas.saveState()
        canvas.setFillColor(colors.HexColor("#1a3c6e"))
        canvas.setFont(FONT, 8.5)
        rtext = _plain(self.header_right)
        canvas.drawRightString(right, h - 28, rtext)
        room = right - left - stringWidth(rtext, FONT, 8.5) - 12
        canvas.setFont(FONT_BOLD, 8.5)
        canvas.drawString(left, h - 28, _fit(_plain(self.header_left), FONT_BOLD, 8.5, room))
        canvas.setStrokeColor(colors.HexColor("#9aa5b1"))
        canvas.setLineWidth(0.5)
        canvas.line(left, h - 33, right, h - 33)
        canvas.line(left, 34, right, 34)
        canvas.setFillColor(colors.HexColor("#444444"))
        canvas.setFont(FONT, 7)
        # The right end of the footer line is left to the page number (drawn at save).
        canvas.drawString(left, 24, _fit(_plain(self.footer_left), FONT, 7, right - left - 70))
        canvas.restoreState()


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` points."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _plain(s: str) -> str:
    if not _fonts_ready:
        for a, b in _ASCII_FALLBACK.items():
            s = s.replace(a, b)
    return s


def _numbered_canvas_class():
    from reportlab.pdfgen import canvas as rl_canvas

    class NumberedCanvas(rl_canvas.Canvas):
        """Draws "page n of N" once the number of pages is known."""

        def __init__(self, *args, **kwargs):
            # Start every page in the embedded font, so no unembedded base-14 font
            # (Helvetica) is referenced by the file.
            kwargs.setdefault("initialFontName", FONT)
            kwargs.setdefault("initialFontSize", 9)
            super().__init__(*args, **kwargs)
            self._saved = []

        def showPage(self):
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                self.setFont(FONT, 7.5)
                w = self._pagesize[0]
                self.drawRightString(w - 42, 24, f"page {self._pageNumber} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


@dataclass(frozen=True)
class ReportInputs:
    """Everything :func:`write_report_pdf` prints.

    Attributes
    ----------
    volume : Volume
    anatomy : Anatomy
    plan : Plan
        With at least one trajectory.
    metrics : sequence
        The planning engine's ``TrajectoryMetrics``, one per trajectory, same order.
    trajectory_figures : sequence of list of Figure
        Pictures per trajectory (may be empty lists).
    anatomy_figures : list of Figure
    anonymous : bool
    procedure_titles : dict
        ``procedure key → title`` for the user.
    measurements : sequence of Measurement
        The user's distances and angles (:mod:`surgplan.planning.measurements`, LPS
        mm), listed in a "Measurements" section; none: no section.
    measurement_figures : sequence of Figure
        A picture per measurement (:func:`surgplan.report.figures.measurement_figures`),
        shown under the list.
    """

    volume: object
    anatomy: object
    plan: object
    metrics: Sequence[object]
    trajectory_figures: Sequence[Sequence[object]] = ()
    anatomy_figures: Sequence[object] = ()
    anonymous: bool = False
    procedure_titles: Dict[str, str] = field(default_factory=dict)
    measurements: Sequence[object] = ()
    measurement_figures: Sequence[object] = ()


def check_complete(plan, metrics: Sequence[object], source: str = "the plan") -> None:
    """Refuse a plan that would give a half-empty report.

    Raises
    ------
    PlanFileError
        No trajectory, a trajectory without its metrics, or metrics of another trajectory.
    """
    trs = list(getattr(plan, "trajectories", ()) or ())
    if not trs:
        raise PlanFileError(
            f"{source} has no trajectory: there is nothing to report. Plan at least one "
            "trajectory (procedure, level, side, entry and target), then ask for the report."
        )
    if len(metrics) != len(trs):
        raise PlanFileError(
            f"{source}: {len(trs)} trajectories but {len(metrics)} evaluated; every trajectory "
            "must be evaluated on the anatomy before it is reported."
        )
    for t, m in zip(trs, metrics):
        if m.trajectory.name != t.name:
            raise PlanFileError(f"{source}: the metrics of {m.trajectory.name!r} were given for "
                                f"trajectory {t.name!r}; evaluate the plan again.")


def write_report_pdf(
    out_path: "os.PathLike[str] | str",
    inputs: ReportInputs,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Path:
    """Lay out and write the plan report.

    The file appears only once complete (a temporary sibling is renamed).

    Raises
    ------
    PlanFileError
        The plan is incomplete (see :func:`check_complete`).
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import (BaseDocTemplate, Frame, KeepTogether, PageBreak,
                                    PageTemplate, Paragraph, Spacer)

    check_complete(inputs.plan, inputs.metrics)
    _register_fonts()
    from reportlab import rl_config

    # Binary streams: ASCII85 text-encoding of the pictures (reportlab's default) is done
    # in pure Python, makes the file 25 % larger and took most of the layout time.
    rl_config.useA85 = 0
    report = progress or (lambda f, m: None)
    st = _styles()
    study = StudyFacts.from_volume(inputs.volume, anonymous=inputs.anonymous)
    plan, metrics = inputs.plan, list(inputs.metrics)
    cat, reasons = overall_category(metrics)
    now = datetime.datetime.now(datetime.timezone.utc)
    series = "series anonymised" if inputs.anonymous else \
        f"series {study.series_uid or 'UID not recorded'}"
    titles = dict(inputs.procedure_titles)
    summary = "; ".join(f"{titles.get(t.procedure, t.procedure)} {t.level} {t.side}"
                        for t in plan.trajectories)
    decor = _PageDecor(
        header_left=f"SurgPlan plan · {summary}",
        header_right=study.header,
        footer_left=f"SurgPlan {__version__} · generated {now:%Y-%m-%d %H:%M} UTC · {series}",
    )
    page_w, page_h = A4
    margin = 42
    width = page_w - 2 * margin
    story: List[object] = []

    # --- page 1 ------------------------------------------------------------------------------
    story.append(Paragraph("Spine surgery plan", st["title"]))
    story.append(Paragraph(_t(summary), st["body"]))
    story.append(Spacer(1, 6))
    story.append(Paragraph("Patient and study", st["h1"]))
    story.append(_kv_table([list(r) for r in study.rows], [95, width - 95], st))
    story.append(Paragraph("Plan", st["h1"]))
    head = ["Trajectory", "Procedure", "Level", "Side", "Tool", "Risk"]
    rows = [head]
    extra = []
    for r, m in enumerate(metrics, 1):
        t = m.trajectory
        cell, colour = _category_cell(m.risk.category, st)
        rows.append([t.name, titles.get(t.procedure, t.procedure), t.level, t.side,
                     describe_tool(t.tool, name=True), cell])
        extra.append(("BACKGROUND", (5, r), (5, r), colour))
    story.append(_table(rows, [100, 95, 42, 40, width - 100 - 95 - 42 - 40 - 70, 70],
                        styles=st, extra=extra))
    story.append(Spacer(1, 6))
    cell, colour = _category_cell(cat, st)
    from reportlab.platypus import Table, TableStyle

    ov = Table([[Paragraph("Overall risk", st["cellb"]), cell]], colWidths=[95, 90],
               hAlign="LEFT")
    ov.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT),
                            ("BACKGROUND", (1, 0), (1, 0), colour),
                            ("GRID", (0, 0), (-1, -1), 0.4, "#9aa5b1")]))
    story.append(ov)
    story.append(Spacer(1, 3))
    story.append(Paragraph("Why:" if reasons else "No reason raises the risk above low.",
                           st["body"]))
    for why in reasons:
        story.append(Paragraph(_t(why), st["bullet"], bulletText="•"))
    # the modelled structures this plan's risk rests on (not every modelled label: a
    # foramen or a vessel the plan never assesses does not make its figures estimates)
    assessed = {r.name for m in metrics for r in m.structures if r.assessed}
    modelled = [s.name for s in inputs.anatomy.items
                if s.provenance == "modelled" and s.name in assessed]
    provisional = [s.name for s in inputs.anatomy.items if s.provisional]
    if modelled or provisional:
        story.append(Spacer(1, 4))
    if modelled:
        story.append(Paragraph(
            "<b>Rests on a model:</b> " + _t(", ".join(modelled)) + " were modelled from bony "
            "landmarks, not seen in the image; their clearances are estimates.", st["body"]))
    if provisional:
        story.append(Paragraph(
            "<b>Level names to check:</b> " + _t(", ".join(provisional)) + " are provisional; "
            "count the levels on the images before operating.", st["body"]))
    if plan.notes:
        story.append(Paragraph("Notes of the plan", st["h2"]))
        story.append(Paragraph(_t(plan.notes).replace("\n", "<br/>"), st["body"]))

    # --- trajectories ------------------------------------------------------------------------
    figs_per = list(inputs.trajectory_figures) + [[]] * (len(metrics)
                                                         - len(inputs.trajectory_figures))
    for n, (m, figs) in enumerate(zip(metrics, figs_per), 1):
        check(cancel)
        report(0.1 + 0.7 * (n - 1) / len(metrics), f"report: trajectory {n}")
        story.append(PageBreak())
        story += _trajectory_section(n, m, figs, inputs.anatomy, width, st, titles)

    # --- the user's measurements ---------------------------------------------------------
    if inputs.measurements:
        report(0.82, "report: measurements")
        story.append(PageBreak())
        story += _measurement_section(inputs, width, st)

    # --- anatomy --------------------------------------------------------------------------------
    report(0.85, "report: anatomy")
    story.append(PageBreak())
    story += _anatomy_section(inputs, width, st)

    # --- notes and sign-off ---------------------------------------------------------------
    notes = [plan.notes] + [f"{t.name}: {t.notes}" for t in plan.trajectories if t.notes]
    notes = [x for x in notes if x]
    lines = [["Reviewed by (name)", ""], ["Signature", ""], ["Date", ""]]
    # The notes and the signature stay on one page: a signature alone on a page signs nothing.
    story.append(KeepTogether([
        Paragraph("Surgeon's notes and sign-off", st["h1"]),
        Paragraph(_t("\n".join(notes)).replace("\n", "<br/>") if notes else
                  "No notes were written in the plan.", st["body"]),
        Spacer(1, 8),
        _table(lines, [120, width - 120], header=False, styles=st,
               extra=[("ROWHEIGHT", (0, 0), (-1, -1), 22), ("TOPPADDING", (0, 0), (-1, -1), 8)]),
    ]))

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", suffix=".pdf", dir=out.parent)
    os.close(fd)
    try:
        doc = BaseDocTemplate(
            tmp, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=46,
            bottomMargin=46, title="Spine surgery plan", author=f"SurgPlan {__version__}",
            subject=summary, creator=f"SurgPlan {__version__}", initialFontName=FONT,
            initialFontSize=9,
        )
        frame = Frame(margin, 46, width, page_h - 92, id="body")
        doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=decor.draw)])
        check(cancel)
        report(0.9, "report: laying out pages")
        doc.build(_keep_headings(story), canvasmaker=_numbered_canvas_class())
        publish_file(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    report(1.0, "report written")
    return out


def _keep_headings(story: list) -> list:
    """Keep every heading on the page of what follows it (no heading alone at a page foot)."""
    from reportlab.platypus import KeepTogether, Paragraph

    out: list = []
    i = 0
    while i < len(story):
        item = story[i]
        is_heading = isinstance(item, Paragraph) and item.style.name in ("h1", "h2")
        if is_heading and i + 1 < len(story):
            nxt = story[i + 1]
            out.append(KeepTogether([item, nxt]))
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def _trajectory_section(n: int, m, figs, anatomy, width: float, st, titles) -> list:
    from reportlab.lib import colors
    from reportlab.platypus import CondPageBreak, KeepTogether, Paragraph, Spacer

    from surgplan.planning.context import FIELD_CAP_MM

    t = m.trajectory
    out = [Paragraph(_t(f"Trajectory {n}: {t.name}"), st["h1"])]
    cell, colour = _category_cell(m.risk.category, st)
    tool = t.tool
    reach = tool.working_length_mm - m.length_mm
    geo = [
        ["Procedure", f"{titles.get(t.procedure, t.procedure)} at {t.level}, {t.side}"],
        ["Tool", describe_tool(tool, name=True, driver_reach=True)],
        ["Planned entry (LPS mm)", _pt(t.entry_lps)],
        ["Skin entry (LPS mm)", _pt(m.skin_entry_lps) if m.skin_entry_lps else
         "the line does not cross the body outline"],
        ["Target (LPS mm)", _pt(t.target_lps)],
        ["Depth skin → target", f"{m.length_mm:.1f} mm; the tool "
         + (f"reaches with {reach:.1f} mm to spare" if m.reaches else
            f"is {-reach:.1f} mm too short")],
    ]
    for what, text in landmarks_of(anatomy, m).rows:
        geo.append([what, text])
    ang = m.angles_deg.get("vertebra") or m.angles_deg.get("patient") or {}
    pat = m.angles_deg.get("patient") or {}
    if ang:
        cc = ang.get("caudal_tilt", 0.0)
        pcc = pat.get("caudal_tilt", cc)
        geo.append(["Cranio-caudal tilt",
                    f"{abs(cc):.1f}° {'caudal' if cc >= 0 else 'cranial'} in the frame of the "
                    f"vertebra (its endplates); {abs(pcc):.1f}° "
                    f"{'caudal' if pcc >= 0 else 'cranial'} in table axes"])
        mt = ang.get("medial_tilt", 0.0)
        geo.append(["Medial tilt (axial projection)",
                    f"{abs(mt):.1f}° {'toward' if mt >= 0 else 'away from'} the midline "
                    f"(patient axes {abs(pat.get('medial_tilt', mt)):.1f}°); "
                    f"{ang.get('axial', 0.0):.1f}° to the axial plane"])
    if pat:
        # The fluoroscope looking straight down the tool ("bull's-eye"): rotation from the
        # posteroanterior beam about the table axis, then cranio-caudal tilt, in table axes.
        d = np.subtract(t.target_lps, t.entry_lps)
        toward = "left" if d[0] < 0 else "right"  # the beam comes from the entry side
        pc = pat.get("caudal_tilt", 0.0)
        geo.append(["C-arm view down the tool",
                    f"rotated {abs(pat.get('medial_tilt', 0.0)):.1f}° from posteroanterior "
                    f"toward the patient's {toward}, "
                    f"tilted {abs(pc):.1f}° {'caudal' if pc >= 0 else 'cranial'} "
                    "(table axes)"])
    out.append(_kv_table(geo, [150, width - 150], st))
    out.append(Spacer(1, 4))
    from reportlab.platypus import Table, TableStyle

    rk = Table([[Paragraph("Risk of this trajectory", st["cellb"]), cell]], colWidths=[150, 90],
               hAlign="LEFT")
    rk.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT),
                            ("BACKGROUND", (1, 0), (1, 0), colour),
                            ("GRID", (0, 0), (-1, -1), 0.4, "#9aa5b1")]))
    out.append(rk)
    for why in m.risk.reasons:
        out.append(Paragraph(_t(why), st["bullet"], bulletText="•"))

    out.append(Paragraph("Structures at risk", st["h2"]))
    rows = [["Structure", "Clearance (mm)", "Margin (mm)", "Contact probability",
             "Provenance", "Note"]]
    extra = []
    for r, s in enumerate(m.structures, 1):
        if not s.assessed:
            rows.append([s.name, "—", _mm(s.margin_mm), "—", s.provenance or "absent",
                         s.note or "not assessed"])
            extra.append(("TEXTCOLOR", (0, r), (-1, r), colors.HexColor("#777777")))
            continue
        clear = s.clearance_mm
        # Distance fields are exact up to a cap; beyond it the planner reports the cap.
        far = clear is not None and clear + t.tool.radius_mm >= FIELD_CAP_MM - 0.05
        rows.append([s.name + (" (no-go)" if s.hard else ""),
                     (f"≥ {clear:.1f}" if far else _mm(clear)), _mm(s.margin_mm),
                     "—" if s.contact_probability is None else
                     f"{100 * s.contact_probability:.1f} %",
                     s.provenance or "—", s.note])
        if clear is not None and clear < 0:
            extra.append(("BACKGROUND", (1, r), (1, r), colors.HexColor("#f4c7c3")))
        elif clear is not None and clear < s.margin_mm:
            extra.append(("BACKGROUND", (1, r), (1, r), colors.HexColor("#fde8b0")))
    out.append(_table(rows, [120, 62, 52, 70, 62, width - 366], styles=st, extra=extra))
    out.append(Paragraph(
        "Clearance: smallest distance from the tool's surface to the structure along the path "
        "from the skin (negative: the tool cuts into it). Contact probability: chance that the "
        "tool touches the structure under the placement error assumed by the planner.",
        st["small"]))

    out.append(Paragraph("Bone in the tool's way", st["h2"]))
    bone = {k: v for k, v in m.bone_removed_ml.items() if v > 0.0005}
    if bone:
        brow = [["Bone", "Volume (ml)"]] + [[k, f"{v:.2f}"] for k, v in
                                            sorted(bone.items(), key=lambda kv: -kv[1])]
        brow.append(["total", f"{sum(bone.values()):.2f}"])
        out.append(_table(brow, [200, 80], styles=st))
    else:
        out.append(Paragraph("None: the tool's cylinder passes no bone.", st["body"]))

    if m.kambin is not None or m.kambin_note:
        out.append(Paragraph("Kambin's triangle", st["h2"]))
        if m.kambin is not None:
            k = m.kambin
            tri = k.triangle.to_dict() if hasattr(k.triangle, "to_dict") else {}
            circle = tri.get("inscribed_diameter_mm") or tri.get("inscribed_circle_mm")
            krows = [["Tool diameter", f"{k.tool_diameter_mm:g} mm"]]
            if circle is not None:
                krows.append(["Largest circle in the triangle", f"{circle:.1f} mm"])
            krows.append(["Fits", "yes" if k.fits else "no (foraminoplasty needed)"])
            if k.passes_inside is not None:
                krows.append(["The path crosses the triangle",
                              "inside" if k.passes_inside else "outside it"])
            if k.crossing_lps is not None:
                krows.append(["Crossing point (LPS mm)", _pt(k.crossing_lps)])
            out.append(_kv_table(krows, [180, width - 180], st))
        if m.kambin_note:
            out.append(Paragraph(_t(m.kambin_note), st["body"]))
    if m.pedicle is not None:
        p = m.pedicle
        out.append(Paragraph("Screw fit", st["h2"]))
        out.append(_kv_table([
            ["Pedicle", f"{p.vertebra} {p.side}: isthmus {p.isthmus_width_mm:.1f} mm wide"],
            ["Screw", f"Ø {p.screw_diameter_mm:g} mm: {'fits' if p.fits else 'too wide'}"],
            ["Predicted breach", f"{p.breach_mm:.1f} mm → Gertzbein–Robbins grade {p.grade}"],
            ["Along the screw", f"{100 * p.cortical_share:.0f} % cortical, "
                                f"{100 * p.cancellous_share:.0f} % cancellous, "
                                f"{100 * p.soft_share:.0f} % soft tissue ({p.hu_source})"],
        ], [180, width - 180], st))
    notes = list(m.notes) + ([t.notes] if t.notes else [])
    if notes:
        out.append(Paragraph("Notes", st["h2"]))
        for x in notes:
            out.append(Paragraph(_t(x), st["bullet"], bulletText="•"))
    if figs:
        # A new page only when less than a row of pictures fits; the grid's rows
        # split across pages.
        out.append(CondPageBreak(300))
        out.append(Paragraph(_t(f"Trajectory {n}: pictures"), st["h1"]))
        out += _figure_grid(list(figs), width, st)
    return [KeepTogether(out[:2])] + out[2:]


def _measurement_section(inputs: ReportInputs, width: float, st) -> list:
    """The distances and angles the user measured: what, value, level, points; pictures."""
    from reportlab.platypus import Paragraph

    from surgplan.planning.measurements import measurement_level

    items = list(inputs.measurements)
    out = [Paragraph("Measurements", st["h1"])]
    out.append(Paragraph(_t(
        f"{len(items)} measurement{'s' if len(items) != 1 else ''} drawn on the images by the "
        "user. Lengths and angles are true 3D values between the points (LPS mm), whatever "
        "slice they were drawn on; the level is that of the vertebrae at the points."),
        st["body"]))
    from reportlab.lib.styles import ParagraphStyle

    # Larger than the other tables, the value in bold: it is what the reader looks for.
    big = dict(st)
    big["cell"] = ParagraphStyle("mcell", parent=st["cell"], fontSize=9.5, leading=11.5)
    big["cellb"] = ParagraphStyle("mcellb", parent=st["cellb"], fontSize=9.5, leading=11.5)
    rows = [["#", "Measurement", "Value", "Level", "Points (LPS mm)"]]
    for n, m in enumerate(items, 1):
        level = measurement_level(inputs.anatomy, m) if inputs.anatomy is not None else ""
        if m.kind == "distance":
            pts = f"{_pt(m.points_lps[0])} to {_pt(m.points_lps[1])}"
        else:
            pts = (f"vertex {_pt(m.points_lps[1])}; arms to {_pt(m.points_lps[0])} and "
                   f"{_pt(m.points_lps[2])}")
        what = m.label or f"{m.kind} (no label)"
        if m.label:
            what = f"{m.label} ({m.kind})"
        rows.append([str(n), what, Paragraph(_t(m.value_text), big["cellb"]),
                     level or "no vertebra near", pts])
    out.append(_table(rows, [18, 150, 62, 72, width - 302], styles=big))
    figs = list(inputs.measurement_figures)
    if figs:
        out.append(Paragraph("Where they were measured", st["h2"]))
        # Two columns: the value drawn in each picture stays about 10 pt on paper.  One
        # grid per row, so that the first row stays under the list when it fits.
        for i in range(0, len(figs), 2):
            out += _figure_grid(figs[i:i + 2], width, st, columns=2)
    return out


def _anatomy_section(inputs: ReportInputs, width: float, st) -> list:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph

    from reportlab.platypus import KeepTogether

    anatomy, volume = inputs.anatomy, inputs.volume
    out = [Paragraph("How the anatomy was obtained", st["h1"])]
    counts = {}
    for s in anatomy.items:
        counts[s.provenance] = counts.get(s.provenance, 0) + 1
    out.append(Paragraph(
        _t(f"{len(anatomy.items)} structures: "
           + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
           + ". Segmented: found in this image. Modelled: placed from bony landmarks and "
             "typical anatomy, not seen in the image. Edited: changed by the user."),
        st["body"]))
    rows = [["Structure", "Kind", "Provenance", "Name certain", "Notes"]]
    extra = []
    first_with: Dict[str, str] = {}
    for r, s in enumerate(anatomy.items, 1):
        # Modelled structures of one kind share a long note: print it once.
        note = s.notes
        if note and len(note) > 60:
            if note in first_with:
                note = f"as for {first_with[note]}"
            else:
                first_with[note] = s.name
        rows.append([s.name, s.kind, s.provenance, "no: check" if s.provisional else "yes",
                     note])
        if s.provenance == "modelled":
            extra.append(("BACKGROUND", (2, r), (2, r), colors.HexColor("#fde8b0")))
        if s.provisional:
            extra.append(("BACKGROUND", (3, r), (3, r), colors.HexColor("#fde8b0")))
    out.append(_table(rows, [110, 70, 62, 58, width - 300], styles=st, extra=extra))
    if anatomy.findings:
        items = [Paragraph(_t(f), st["bullet"], bulletText="•") for f in anatomy.findings]
        out.append(KeepTogether([Paragraph("Findings of the segmentation", st["h2"]),
                                 items[0]]))
        out += items[1:]
    warnings = list(getattr(volume, "warnings", ()) or ())
    if warnings:
        out.append(Paragraph("What the image loader noticed", st["h2"]))
        for w in warnings[:20]:
            msg = w.message
            if inputs.anonymous and w.code == "skipped-file":
                msg = "a file of the input was skipped (its path is left out)"
            out.append(Paragraph(_t(f"[{w.code}] {msg}"), st["bullet"], bulletText="•"))
    if inputs.anatomy_figures:
        out.append(Paragraph("The segmentation", st["h2"]))
        out += _figure_grid(list(inputs.anatomy_figures), width, st, columns=3)
    return out
