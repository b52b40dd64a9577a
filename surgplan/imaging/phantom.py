"""The synthetic lumbar spine phantom: SurgPlan's demo case and test ground truth.

One plausible adult, lying supine, scanned from T12 to the sacrum: vertebrae
with their parts, discs, canal, dural sac, exiting roots, ilium, psoas,
paraspinal muscles, aorta and IVC with their iliac branches, kidneys, bowel,
fat and skin.  Sizes come from ``/work/shared/ANATOMY.md`` (cited next to each
constant in :mod:`surgplan.imaging.phantom_anatomy`).

Everything is in patient LPS millimetres (x → patient left, y → posterior,
z → superior).  The same :class:`PhantomSpec` always gives the same voxels:
the anatomy is fixed, only the noise depends on ``seed``.

Examples
--------
>>> case = make_phantom(PhantomSpec(spacing_mm=(1.6, 1.6, 1.6)))   # doctest: +SKIP
>>> case.label_names[case.labels[k, j, i]]                          # doctest: +SKIP
'L4'
>>> case.landmarks.vertebrae['L4'].pedicles['left'].entry_lps       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np
from scipy import ndimage

from surgplan.core.progress import CancelToken, ProgressCallback, SubProgress, check
from surgplan.imaging import phantom_anatomy as anat
from surgplan.imaging.phantom_paint import PART_NAMES, TISSUES, paint_all, vertebra_distance
from surgplan.imaging.phantom_shapes import Grid
from surgplan.imaging.structures import kind_of
from surgplan.imaging.volume import ImageMetadata, Volume

__all__ = [
    "PhantomSpec",
    "PhantomCase",
    "Landmarks",
    "VertebraLandmarks",
    "PedicleLandmarks",
    "DiscLandmarks",
    "KambinTriangle",
    "RootLandmarks",
    "make_phantom",
    "mr_volume",
    "write_demo",
    "structure_table",
    "PART_NAMES",
    "TISSUES",
]

#: The fake patient every phantom belongs to (never a real person).
PHANTOM_PATIENT = dict(
    patient_name="PHANTOM^SPINE",
    patient_id="SURGPLAN-PHANTOM",
    patient_birth_date="19800101",
    patient_sex="O",
    study_date="20240101",
    study_description="SurgPlan synthetic lumbar spine phantom",
    body_part="LSPINE",
    manufacturer="SurgPlan phantom",
)
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root: generate_uid's default


@dataclass(frozen=True)
class PhantomSpec:
    """What phantom to make.

    Parameters
    ----------
    spacing_mm : (float, float, float)
        Voxel size along x, y, z in mm.  Default 0.8 × 0.8 × 1.0, like a clinical
        spine reconstruction; tests use 1.6 or 2.0 for speed.
    noise_hu : float
        Standard deviation of the Gaussian CT noise (HU); 15 is a routine dose,
        40 or more a low-dose scan.  0 gives a noise-free image.
    seed : int
        Seed of the noise.  The anatomy does not depend on it.
    lumbar_count : int
        5, or 6 for a transitional spine with an L6 (4 also works).
    ribs : bool
        Whether T12 carries ribs.
    contrast : bool
        Arterial-phase contrast (aorta ≈ 320 HU, as in the real test CT) if True,
        unenhanced blood (≈ 45 HU) if False.
    fov : (str, str)
        Top and bottom of the field of view as vertebra names, e.g.
        ``("T12", "L5")`` leaves the sacrum out of view.  ``"S1"`` at the bottom
        reaches down to about S3.
    fov_z_mm : (float, float) or None
        Explicit (z_min, z_max) LPS range; overrides ``fov``.
    fov_xy_mm : (float, float) or None
        Width (x) and depth (y) of a centred field of view in mm, to crop the
        body as a small reconstruction FOV does; None keeps the whole body.
    blur_mm : float
        Gaussian blur (sigma, mm) modelling the scanner's point spread; it also
        turns the thin cortical shell into the few hundred HU seen clinically.
    """

    spacing_mm: Tuple[float, float, float] = (0.8, 0.8, 1.0)
    noise_hu: float = 15.0
    seed: int = 0
    lumbar_count: int = 5
    ribs: bool = True
    contrast: bool = True
    fov: Tuple[str, str] = ("T12", "S1")
    fov_z_mm: Optional[Tuple[float, float]] = None
    fov_xy_mm: Optional[Tuple[float, float]] = None
    blur_mm: float = 0.6

    def __post_init__(self) -> None:
        sp = tuple(float(s) for s in self.spacing_mm)
        if len(sp) != 3 or min(sp) <= 0.1 or max(sp) > 10:
            raise ValueError(
                f"spacing_mm must be three values in (0.1, 10] mm, got {self.spacing_mm}")
        object.__setattr__(self, "spacing_mm", sp)
        if self.noise_hu < 0:
            raise ValueError(f"noise_hu must be ≥ 0, got {self.noise_hu}")
        if self.lumbar_count not in (4, 5, 6):
            raise ValueError(f"lumbar_count must be 4, 5 or 6, got {self.lumbar_count}")


# --- landmarks -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PedicleLandmarks:
    """Ideal pedicle screw axis of one pedicle (LPS mm).

    ``entry_lps`` is where the axis leaves the bone posteriorly (lateral
    pedicle / transverse process junction); ``direction`` points from there
    anteromedially along the pedicle; ``target_lps`` is where it meets the
    anterior cortex of the body.
    """

    side: str
    entry_lps: np.ndarray
    direction: np.ndarray
    isthmus_center_lps: np.ndarray
    target_lps: np.ndarray
    isthmus_width_mm: float
    isthmus_height_mm: float
    medial_angle_deg: float
    length_mm: float


@dataclass(frozen=True)
class VertebraLandmarks:
    """Ground-truth landmarks of one vertebra (LPS mm, unit vectors).

    ``centroid_lps`` is the centre of the vertebral body (the frame origin).
    ``frame`` rows are the unit LR (to the left), AP (posterior, through the
    canal) and SI (superior, normal to the endplates) axes.  Endplate centres
    sit on the endplate rim plane; the concave centre lies 1.2 mm deeper.
    """

    name: str
    centroid_lps: np.ndarray
    frame: np.ndarray
    superior_endplate_center_lps: np.ndarray
    superior_endplate_normal: np.ndarray
    inferior_endplate_center_lps: np.ndarray
    inferior_endplate_normal: np.ndarray
    canal_center_lps: np.ndarray
    body_width_mm: float
    body_depth_mm: float
    body_height_mm: float
    canal_width_mm: float
    canal_ap_mm: float
    pedicles: Mapping[str, PedicleLandmarks]


@dataclass(frozen=True)
class DiscLandmarks:
    """A disc: centre, normal of its mid-plane (superior) and heights (mm)."""

    name: str
    center_lps: np.ndarray
    normal: np.ndarray
    height_mm: float
    height_anterior_mm: float
    height_posterior_mm: float
    lordosis_deg: float


@dataclass(frozen=True)
class KambinTriangle:
    """Bony Kambin triangle at a disc level and side (LPS mm).

    ``corners_lps`` rows: base–medial (the SAP edge on the lower vertebra's
    superior endplate), base–lateral (where the exiting root comes down to the
    endplate), apex (where the root passes over the SAP edge); all on the
    coronal plane of the posterior disc wall.
    """

    level: str
    side: str
    corners_lps: np.ndarray
    inscribed_diameter_mm: float


@dataclass(frozen=True)
class RootLandmarks:
    """An exiting root's centre line (from the dura outward) and diameter."""

    name: str
    points_lps: np.ndarray
    diameter_mm: float


@dataclass(frozen=True)
class Landmarks:
    """All ground truth of a phantom, keyed by shared structure names."""

    vertebrae: Mapping[str, VertebraLandmarks]
    discs: Mapping[str, DiscLandmarks]
    kambin: Mapping[Tuple[str, str], KambinTriangle]
    roots: Mapping[str, RootLandmarks]
    iliac_crest_top_lps: Mapping[str, np.ndarray]
    aortic_bifurcation_lps: np.ndarray
    ivc_confluence_lps: np.ndarray
    lordosis_deg: float

    def as_dict(self) -> dict:
        """JSON-friendly copy (lists instead of arrays)."""

        def conv(x):
            if isinstance(x, np.ndarray):
                return [round(float(a), 4) for a in x.ravel()] if x.ndim == 1 else \
                    [[round(float(a), 4) for a in row] for row in x]
            if isinstance(x, (Mapping, dict)):
                return {(" ".join(k) if isinstance(k, tuple) else k): conv(v) for k, v in x.items()}
            if hasattr(x, "__dataclass_fields__"):
                return {k: conv(getattr(x, k)) for k in x.__dataclass_fields__}
            if isinstance(x, float):
                return round(x, 4)
            return x

        return conv(self)


@dataclass(frozen=True, eq=False)
class PhantomCase:
    """A phantom CT with its ground truth.

    Attributes
    ----------
    ct : Volume
        int16 HU on the phantom grid (identity direction, LPS).
    labels : numpy.ndarray
        uint8 structure label per voxel, same shape as ``ct.array``; 0 is air.
    label_names : Mapping[int, str]
        Label value → shared structure name (see :mod:`surgplan.imaging.structures`).
    parts : numpy.ndarray
        uint8 vertebral part per voxel (0 outside vertebrae); see ``part_names``.
    part_names : Mapping[int, str]
    tissues : numpy.ndarray
        uint8 tissue class per voxel (what the CT and MR numbers come from).
    tissue_names : Mapping[int, str]
    landmarks : Landmarks
    spec : PhantomSpec
    """

    ct: Volume
    labels: np.ndarray
    label_names: Mapping[int, str]
    parts: np.ndarray
    part_names: Mapping[int, str]
    tissues: np.ndarray
    tissue_names: Mapping[int, str]
    landmarks: Landmarks
    spec: PhantomSpec = field(default_factory=PhantomSpec)

    def label_value(self, name: str) -> int:
        """Label value of a structure name; KeyError if the phantom has none."""
        for v, n in self.label_names.items():
            if n == name:
                return v
        raise KeyError(f"the phantom has no structure named {name!r}")

    def mask(self, name: str) -> np.ndarray:
        """Boolean voxel mask of a structure."""
        return self.labels == self.label_value(name)


# --- CT numbers (120 kVp; ANATOMY.md "CT numbers") -----------------------------------------
def ct_lut(contrast: bool, spacing_mm) -> np.ndarray:
    """HU of each tissue class."""
    hu = {
        "air": -1000.0, "gas": -1000.0,  # definition
        "subcutaneous fat": -100.0, "visceral fat": -95.0, "epidural fat": -90.0,
        "renal sinus fat": -90.0,  # fat −120 … −50
        "skin": 30.0,
        "muscle": 48.0,  # psoas ≈ 48 HU (Lawlor 2022)
        "cancellous bone": 210.0,  # 226 ± 44 below 30 y, −2.5 HU/y (Jang 2019): a 40-year-old
        "disc nucleus": 68.0, "disc annulus": 82.0,  # disc ≈ 60–80 HU
        "csf": 8.0,  # 0–15
        "nerve": 30.0,
        "artery": 320.0 if contrast else 45.0,  # arterial phase 290–360; blood 40–50
        "vein": 95.0 if contrast else 42.0,  # IVC still unopacified in the arterial phase
        "kidney": 170.0 if contrast else 30.0,  # cortex + 195–217 enhanced; 30 plain
        "bowel wall": 45.0, "bowel fluid": 15.0, "stool": -60.0,
        "ligament": 65.0,
        "liver": 75.0 if contrast else 55.0,
    }
    # The vertebral cortex is 0.1–0.9 mm thick (Silva 1994): one voxel of "cortex" holds
    # ≈ 0.6 mm of 1200 HU bone and the rest marrow, so its value falls with the voxel size.
    frac = min(1.0, 0.6 / float(np.mean(spacing_mm)))
    hu["cortical bone"] = 210.0 + (1200.0 - 210.0) * frac
    return np.array([hu[t] for t in TISSUES], np.float32)


def mr_lut() -> np.ndarray:
    """T2-weighted fast spin echo signal of each tissue class (arbitrary units)."""
    sig = {
        "air": 0.0, "gas": 0.0, "subcutaneous fat": 950.0, "visceral fat": 900.0,
        "epidural fat": 900.0, "renal sinus fat": 900.0, "skin": 380.0, "muscle": 260.0,
        "cancellous bone": 520.0,  # fatty marrow: intermediate on T2 FSE
        "cortical bone": 40.0, "disc nucleus": 1500.0, "disc annulus": 220.0, "csf": 1900.0,
        "nerve": 600.0, "artery": 60.0,  # flow void
        "vein": 220.0, "kidney": 950.0, "bowel wall": 350.0, "bowel fluid": 1700.0,
        "stool": 450.0, "ligament": 110.0, "liver": 300.0,
    }
    return np.array([sig[t] for t in TISSUES], np.float32)


# --- building ----------------------------------------------------------------------------------
def _grid_for(spec: PhantomSpec, lay: anat.Layout) -> Grid:
    vs = lay.vertebrae
    top_nm, bot_nm = spec.fov
    for nm in (top_nm, bot_nm):
        if nm not in vs:
            raise ValueError(f"fov vertebra {nm!r} is not in this phantom ({', '.join(lay.order)})")
    if spec.fov_z_mm is not None:
        z0, z1 = sorted(float(z) for z in spec.fov_z_mm)
    else:
        t = vs[top_nm]
        z1 = t.to_lps([0, 0, t.height / 2])[2] + 8.0
        b = vs[bot_nm]
        if bot_nm == "S1":
            z0 = b.to_lps([0, 0, b.height / 2])[2] - 75.0  # down to ≈ S3
        else:
            z0 = b.to_lps([0, 0, -b.height / 2])[2] - 4.0
    yb = lay.back_skin[:, 1]
    y1 = float(yb.max()) + 8.0
    y0 = float(yb.min()) - 230.0 - 8.0
    x1 = 183.0
    x0 = -x1
    if spec.fov_xy_mm is not None:
        wx, wy = spec.fov_xy_mm
        yc = vs["L3"].frame.origin[1] + 20.0
        x0, x1 = -wx / 2, wx / 2
        y0, y1 = yc - wy / 2, yc + wy / 2
    sp = np.array(spec.spacing_mm)
    n = np.floor((np.array([x1, y1, z1]) - [x0, y0, z0]) / sp).astype(int) + 1
    return Grid(np.array([x0, y0, z0]), sp, (int(n[2]), int(n[1]), int(n[0])))


def _landmarks(lay: anat.Layout) -> Landmarks:
    verts = {}
    for nm in lay.order:
        v = lay.vertebrae[nm]
        ax = v.frame.axes
        peds = {}
        for side in anat.SIDES:
            c = v.to_lps(v.pedicle_isthmus(side))
            d = v.frame.vec_to_lps(v.pedicle_direction(side))
            ts = np.arange(0.0, 60.0, 0.05)
            back = vertebra_distance(v, lay, c[None, :] - ts[:, None] * d[None, :])
            entry = c - ts[np.argmax(back > 0)] * d
            fwd = vertebra_distance(v, lay, c[None, :] + ts[:, None] * d[None, :])
            target = c + ts[np.argmax(fwd > 0)] * d
            peds[side] = PedicleLandmarks(
                side, entry, d, c, target, v.ped_width, v.ped_height, v.ped_angle,
                float(np.linalg.norm(target - entry)))
        verts[nm] = VertebraLandmarks(
            name=nm, centroid_lps=v.frame.origin.copy(), frame=ax.copy(),
            superior_endplate_center_lps=v.to_lps([0, 0, v.height / 2]),
            superior_endplate_normal=ax[2].copy(),
            inferior_endplate_center_lps=v.to_lps([0, 0, -v.height / 2]),
            inferior_endplate_normal=-ax[2],
            canal_center_lps=v.to_lps([0, v.canal_center_v, 0]),
            body_width_mm=v.width, body_depth_mm=v.depth, body_height_mm=v.height,
            canal_width_mm=v.canal_width, canal_ap_mm=v.canal_ap,
            pedicles=MappingProxyType(peds))
    discs = {d["name"]: DiscLandmarks(d["name"], d["center"].copy(), d["frame"].axes[2].copy(),
                                      d["height"], d["height_anterior"], d["height_posterior"],
                                      d["lordosis_deg"]) for d in lay.discs}
    kambin = {k: KambinTriangle(k[0], k[1], v["corners"], v["inscribed_diameter_mm"])
              for k, v in lay.kambin.items()}
    roots = {k: RootLandmarks(k, r["points"].copy(), r["diameter_mm"])
             for k, r in lay.roots.items()}
    return Landmarks(
        vertebrae=MappingProxyType(verts), discs=MappingProxyType(discs),
        kambin=MappingProxyType(kambin), roots=MappingProxyType(roots),
        iliac_crest_top_lps=MappingProxyType({s: p.copy() for s, p in lay.crest_top.items()}),
        aortic_bifurcation_lps=lay.bifurcation.copy(), ivc_confluence_lps=lay.confluence.copy(),
        lordosis_deg=anat.lordosis_deg(lay))


def _uid(spec: PhantomSpec, what: str) -> str:
    from pydicom.uid import generate_uid

    # deterministic: the same spec gives the same UIDs, so a re-export is the same study
    return generate_uid(prefix=UID_ROOT, entropy_srcs=["surgplan-phantom", repr(spec), what])


def make_phantom(
    spec: Optional[PhantomSpec] = None,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> PhantomCase:
    """Build the phantom CT and its ground truth.

    Parameters
    ----------
    spec : PhantomSpec, optional
        Defaults to ``PhantomSpec()`` (0.8 × 0.8 × 1.0 mm, T12–S3, contrast).
    progress, cancel
        Progress callback and cancellation token (see :mod:`surgplan.core.progress`).

    Returns
    -------
    PhantomCase

    Raises
    ------
    OperationCancelled
        If ``cancel`` is set between steps.
    """
    spec = spec or PhantomSpec()
    lay = anat.build_layout(spec.lumbar_count, spec.ribs)
    grid = _grid_for(spec, lay)
    cv = paint_all(lay, grid, progress=SubProgress(progress, 0.0, 0.8), cancel=cancel)
    check(cancel)
    if progress:
        progress(0.8, "phantom: CT numbers")
    hu = ct_lut(spec.contrast, spec.spacing_mm)[cv.tissue]
    hu = _blur(hu, spec.blur_mm, spec.spacing_mm)
    check(cancel)
    if spec.noise_hu > 0:
        rng = np.random.default_rng(spec.seed)
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(spec.noise_hu)
    ct = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    del hu
    meta = ImageMetadata(
        **PHANTOM_PATIENT, modality="CT",
        study_instance_uid=_uid(spec, "study"),
        series_instance_uid=_uid(spec, "ct-series"),
        series_description="Phantom CT lumbar spine" + (" arterial phase" if spec.contrast else ""),
        series_number="2", slice_thickness_mm=float(spec.spacing_mm[2]), kvp=120.0,
        convolution_kernel="PHANTOM-SOFT")
    vol = Volume(ct, grid.affine, frame_of_reference_uid=_uid(spec, "frame"), metadata=meta,
                 source="surgplan phantom")
    names = {i + 1: n for i, n in enumerate(_names(cv))}
    for n in names.values():
        kind_of(n)  # every name must be a shared structure name
    for a in (cv.labels, cv.parts, cv.tissue):
        a.flags.writeable = False
    if progress:
        progress(1.0, "phantom: done")
    return PhantomCase(
        ct=vol, labels=cv.labels, label_names=MappingProxyType(names), parts=cv.parts,
        part_names=MappingProxyType(dict(PART_NAMES)), tissues=cv.tissue,
        tissue_names=MappingProxyType(dict(enumerate(TISSUES))), landmarks=_landmarks(lay),
        spec=spec)


def _names(cv) -> list:
    inv = sorted(cv.value.items(), key=lambda kv: kv[1])
    return [k for k, _ in inv]


def _blur(img: np.ndarray, sigma_mm: float, spacing_mm) -> np.ndarray:
    if sigma_mm <= 0:
        return img
    sig = [sigma_mm / s for s in spacing_mm[::-1]]  # array order k, j, i
    return ndimage.gaussian_filter(img, sig, output=np.float32, truncate=3.0)


def mr_volume(
    case_or_spec: Union[PhantomCase, PhantomSpec, None] = None,
    *,
    noise: float = 25.0,
    seed: Optional[int] = None,
) -> Volume:
    """A T2-weighted MR volume of the same anatomy on the same grid.

    CSF and healthy discs are bright, fat bright (fast spin echo), bodies
    intermediate, cortex and ligaments dark, muscle dark, fast-flowing arterial
    blood a flow void.  Noise is Rician (magnitude of complex Gaussian noise).

    Parameters
    ----------
    case_or_spec : PhantomCase or PhantomSpec or None
        An existing phantom (cheapest), or a spec to build one from.
    noise : float
        Standard deviation of each complex noise channel (signal units ≈ 0–2000).
    seed : int, optional
        Noise seed; defaults to the phantom's seed + 1.

    Returns
    -------
    Volume
        uint16, modality ``MR``, same geometry and frame of reference as the CT.
    """
    case = case_or_spec if isinstance(case_or_spec, PhantomCase) else make_phantom(case_or_spec)
    spec = case.spec
    img = mr_lut()[case.tissues]
    img = _blur(img, max(spec.blur_mm, 0.8), spec.spacing_mm)
    rng = np.random.default_rng(spec.seed + 1 if seed is None else seed)
    if noise > 0:
        n1 = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
        n2 = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
        img = np.sqrt((img + n1) ** 2 + n2**2)
    arr = np.clip(np.rint(img), 0, 4095).astype(np.uint16)
    meta = ImageMetadata(
        **PHANTOM_PATIENT, modality="MR",
        study_instance_uid=case.ct.metadata.study_instance_uid,
        series_instance_uid=_uid(spec, "mr-series"),
        series_description="Phantom MR T2 lumbar spine", series_number="3",
        slice_thickness_mm=float(spec.spacing_mm[2]))
    return Volume(arr, case.ct.ijk_to_lps, frame_of_reference_uid=case.ct.frame_of_reference_uid,
                  metadata=meta, source="surgplan phantom")


def structure_table(case: PhantomCase) -> list:
    """``[{"value", "name", "kind"}]`` for every label of a phantom."""
    return [{"value": int(v), "name": n, "kind": kind_of(n)} for v, n in case.label_names.items()]


def voxel_index(case: PhantomCase, point_lps) -> Tuple[int, int, int]:
    """Nearest ``(k, j, i)`` array index of an LPS point."""
    i, j, k = np.rint(case.ct.lps_to_index(np.asarray(point_lps, float))).astype(int)
    return int(k), int(j), int(i)


def write_demo(
    out_dir,
    spec: Optional[PhantomSpec] = None,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Dict[str, object]:
    """Write the demo case: CT and MR DICOM series plus the ground truth.

    Layout of ``out_dir``::

        ct/IM00001.dcm …            CT series (arterial phase unless spec.contrast is False)
        mr/IM00001.dcm …            T2 MR series, same study and frame of reference
        truth-labels.nii.gz         label map (SimpleITK; physical space LPS, stored as NIfTI)
        truth-labels.json           [{"value", "name", "kind"}, …]
        truth-landmarks.json        :meth:`Landmarks.as_dict`

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    spec : PhantomSpec, optional
        Default ``PhantomSpec()``.
    progress, cancel
        Progress callback and cancellation token.

    Returns
    -------
    dict
        ``{"ct": [paths], "mr": [paths], "labels": path, "label_table": path,
        "landmarks": path, "case": PhantomCase}``.
    """
    import json
    from pathlib import Path

    from surgplan.imaging.dicom.writer import write_series
    from surgplan.imaging.volume_files import write_label_volume

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    case = make_phantom(spec, progress=SubProgress(progress, 0.0, 0.5), cancel=cancel)
    check(cancel)
    ct_files = write_series(case.ct, out / "ct", modality="CT",
                            progress=SubProgress(progress, 0.5, 0.7), cancel=cancel)
    if progress:
        progress(0.7, "phantom: MR")
    mr = mr_volume(case)
    check(cancel)
    mr_files = write_series(mr, out / "mr", modality="MR",
                            progress=SubProgress(progress, 0.75, 0.95), cancel=cancel)
    labels_path = out / "truth-labels.nii.gz"
    write_label_volume(labels_path, case.labels, case.ct)
    table_path = out / "truth-labels.json"
    table_path.write_text(json.dumps(structure_table(case), indent=1))
    lm_path = out / "truth-landmarks.json"
    lm_path.write_text(json.dumps(case.landmarks.as_dict(), indent=1))
    if progress:
        progress(1.0, "demo case written")
    return {"ct": ct_files, "mr": mr_files, "labels": labels_path, "label_table": table_path,
            "landmarks": lm_path, "case": case}
