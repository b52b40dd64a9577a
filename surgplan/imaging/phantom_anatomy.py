"""Where everything is in the spine phantom: sizes, frames and landmarks.

This module holds no voxels.  It turns the measurements of
``/work/shared/ANATOMY.md`` into one plausible adult: a chain of vertebral
frames along a recumbent lordosis, the facet joints, the exiting roots, the
vessels and the other soft tissue paths, all in LPS millimetres.  The painter
(:mod:`surgplan.imaging.phantom_paint`) draws these; the landmarks handed to the
planner are these very numbers, so they are exact by construction.

Local vertebral frame: origin at the centre of the vertebral body, ``u`` to the
patient's left, ``v`` posterior (through the canal), ``w`` superior
(perpendicular to the endplates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from surgplan.imaging.phantom_shapes import Frame, sagittal_frame

SIDES = ("left", "right")
#: +1 for the patient's left (+x in LPS), −1 for the right.
SIDE_SIGN = {"left": 1.0, "right": -1.0}

# --- level tables (L1 … L5; T12 and S1 separately) ---------------------------------------
# Each column cites ANATOMY.md.  Six-lumbar spines interpolate these columns.
_LUMBAR = {
    # body width ≈ 36 mm (L1) → 46 mm (L5) (dry-bone study 2012)
    "width": [36.0, 39.0, 41.5, 44.0, 46.0],
    # body depth: discs L1/2 → L4/5 30.2 → 33.1 mm, L5 35.7 mm (Cook & Baker 2021)
    "depth": [30.0, 31.0, 32.0, 33.1, 35.7],
    # body height ≈ 25–30 mm; L5 anterior 30.3 / posterior 26.3 → mean 28.3
    # (Cook & Baker 2021)
    "height": [26.0, 27.0, 28.0, 28.0, 28.3],
    # pedicle isthmus width L1 ≈ 8 → L5 ≈ 16 mm (Torun 2008; Cook & Baker 2021)
    "ped_width": [8.0, 9.0, 10.5, 12.5, 16.0],
    # pedicle height ≈ 13–15 mm (Cook & Baker 2021)
    "ped_height": [15.0, 15.0, 14.5, 14.0, 14.0],
    # pedicle medial angle, ≈ 5° per level, L4 ≈ 15°, L5 ≈ 20–24°
    # (CT controls 2022; Dickman 1992)
    "ped_angle": [5.0, 8.0, 11.0, 15.0, 20.0],
    # canal width = interpedicular distance L1 ≈ 21–23 → L5 ≈ 26–27 mm (dry bone);
    # L5 canal width 28.2 ± 3.1 mm (Cook & Baker 2021)
    "canal_width": [22.0, 23.0, 24.0, 25.5, 27.0],
    # canal AP 15–18 mm; L5 15.6 ± 2.1 mm (Cook & Baker 2021)
    "canal_ap": [17.5, 17.0, 16.5, 16.0, 15.6],
    # transverse process length L1 ≈ 10, L3 ≈ 19 (longest), L5 ≈ 15 mm (Li 2003)
    "tp_length": [10.0, 15.0, 19.0, 17.0, 15.0],
    # transverse process SI half-thickness: "L5 … thick" (Li 2003)
    "tp_half_height": [4.5, 4.5, 5.0, 5.5, 8.0],
    # spinous process length (lamina → tip), a typical adult value
    "sp_length": [28.0, 30.0, 30.0, 28.0, 22.0],
    # inferior facet ≈ 12 × 15 mm (L1) → 16 × 18 mm (L5) (Panjabi, in Patel 2007)
    "facet_len": [12.0, 13.0, 14.0, 15.0, 16.0],
    "facet_height": [15.0, 15.7, 16.5, 17.2, 18.0],
    # skin → spinous process L1 23, L3 27, L4 33, L5 37 mm (Kawchuk, MRI n=105)
    "skin_to_sp": [23.0, 25.0, 27.0, 33.0, 37.0],
    # psoas area ≈ 2 cm² at L1 → ≈ 12 cm² at L5 (MRI n=10)
    "psoas_area_mm2": [200.0, 450.0, 700.0, 950.0, 1200.0],
    # dural sac area; 152 ± 54 mm² at L4/5 (PMC5728944), larger above the conus
    "sac_area_mm2": [190.0, 175.0, 165.0, 155.0, 140.0],
}

# Discs below T12, L1 … L5 (the last one is Ln/S1).
_DISCS = {
    # middle disc height L1/2 10.0 … L4/5 13.8, L5/S1 13.0 mm (MRI n=14); T12/L1 a little lower
    "height": [8.5, 10.0, 11.3, 12.5, 13.8, 13.0],
    # recumbent segmental lordosis: the standing values L1/2 1°, L2/3 6°, L3/4 9°, L4/5 13°,
    # L5/S1 22° (Sci Rep 2022) scaled by 37/51 so that T12–S1 is the recumbent 37°
    # (PMC6680033)
    "lordosis": [0.0, 0.7, 4.4, 6.6, 9.5, 16.0],
    # facet angle to the midsagittal plane L2/3 30°, L3/4 39°, L4/5 47°, L5/S1 47°
    # (Jentzsch 2013); the thoracolumbar joints are more sagittal
    "facet_angle": [20.0, 25.0, 30.0, 39.0, 47.0, 47.0],
}

#: Recumbent sacral slope; standing ≈ 40°, a few degrees less lying down.
SACRAL_SLOPE_DEG = 32.0
#: Root diameter ≈ 3.5 mm (L1) → 5.6 mm (L5) (MRI n=67; Torun 2008; Silverstein 2015).
ROOT_DIAMETER = [3.5, 4.0, 4.5, 5.0, 5.6]
#: Exiting root angle to the disc plane, coronal ≈ 51° (MRI n=67).
ROOT_ANGLE_DEG = 51.0
#: S1 root diameter: the thickest lumbosacral root, 5.45 ± 0.8 mm against L1 3.9 mm (MRI
#: n=350, Folia Morphol 2022) and 5.38 against L5 5.29 mm (MR neurography n=11, Clin Anat
#: 2018); those ratios on this phantom's L5 5.6 mm give 5.8 mm.
S1_ROOT_DIAMETER_MM = 5.8
#: Centre of the first anterior sacral foramen from the midline: the posterior foramen lies
#: 23.5 ± 2.8 mm out (3D-CT n=632, Kim 2023), the anterior one ≈ 3 mm lateral of it (its
#: projection spans 3 mm medial to 10 mm lateral of the posterior one; Xu 1996, 6 sacra);
#: the anterior foramen is ≈ 13 × 12 mm (Saluja 2018, 108 sacra).
S1_ANTERIOR_FORAMEN_MM = 27.0
#: Facet joint space; thin, so it shows as a dark line on CT.
FACET_GAP_MM = 1.5
#: Sacroiliac joint space.
SI_GAP_MM = 2.0
#: Aortic radius (≈ 20 mm lumbar aortic diameter) and gap to the disc ≈ 1–3 mm (Kot 2022).
AORTA_RADIUS_MM = 10.0
AORTA_GAP_MM = 2.0


def _interp_table(values: List[float], n: int) -> List[float]:
    """Stretch a 5-entry lumbar column to ``n`` lumbar vertebrae."""
    x = np.linspace(0.0, len(values) - 1.0, n)
    return list(np.interp(x, np.arange(len(values)), values))


@dataclass
class VertebraSpec:
    """Sizes (mm, degrees) and the frame of one vertebra."""

    name: str
    frame: Frame
    width: float
    depth: float
    height: float
    ped_width: float
    ped_height: float
    ped_angle: float
    canal_width: float
    canal_ap: float
    tp_length: float
    tp_half_height: float
    sp_length: float
    facet_len: float
    facet_height: float
    skin_to_sp: float
    psoas_area_mm2: float
    sac_area_mm2: float
    kind: str = "lumbar"  # 'thoracic', 'lumbar' or 'sacrum'

    # derived positions in the local frame -------------------------------------------
    @property
    def ped_w(self) -> float:
        """SI centre of the pedicles (upper half of the body)."""
        return self.height / 2 - self.ped_height / 2 - 1.0

    @property
    def canal_center_v(self) -> float:
        return self.depth / 2 + self.canal_ap / 2

    def pedicle_isthmus(self, side: str) -> np.ndarray:
        s = SIDE_SIGN[side]
        return np.array(
            [s * (self.canal_width / 2 + self.ped_width / 2), self.depth / 2 + 0.45 * self.canal_ap,
             self.ped_w]
        )

    def pedicle_direction(self, side: str) -> np.ndarray:
        """Unit local direction of the pedicle axis, posterior → anteromedial."""
        s = SIDE_SIGN[side]
        a = np.radians(self.ped_angle)
        return np.array([-s * np.sin(a), -np.cos(a), 0.0])

    def to_lps(self, uvw) -> np.ndarray:
        return self.frame.to_lps(uvw)


@dataclass
class FacetJoint:
    """A facet joint between ``upper`` (its IAP) and ``lower`` (its SAP).

    ``center``, ``normal`` (from the SAP towards the IAP, posteromedial) and
    ``tangent`` (along the joint line, posterolateral) are in LPS.
    """

    upper: str
    lower: str
    side: str
    angle_deg: float
    center: np.ndarray
    normal: np.ndarray
    tangent: np.ndarray
    length: float
    height: float


@dataclass
class Layout:
    """Every placed part of the phantom (LPS mm), before painting."""

    vertebrae: Dict[str, VertebraSpec]
    order: List[str]  # cranial → caudal, ends with 'S1'
    discs: List[dict]  # upper, lower, name, center, normal, heights, frame
    facets: Dict[Tuple[str, str, str], FacetJoint]  # (upper, lower, side)
    roots: Dict[str, dict]  # name → points (LPS), radius, vertebra, side
    canal_path: np.ndarray
    canal_radii: np.ndarray  # (n, 2) half width, half AP
    sac_path: np.ndarray
    sac_radii: np.ndarray
    aorta: np.ndarray
    iliac_arteries: Dict[str, np.ndarray]
    ivc: np.ndarray
    iliac_veins: Dict[str, np.ndarray]
    bifurcation: np.ndarray
    confluence: np.ndarray
    psoas: Dict[str, Tuple[np.ndarray, np.ndarray]]
    paraspinal: Dict[str, Tuple[np.ndarray, np.ndarray]]
    crest_top: Dict[str, np.ndarray]
    ilium_center: Dict[str, np.ndarray]
    kidney: Dict[str, dict]
    ribs: Dict[str, np.ndarray]
    back_skin: np.ndarray  # (n, 2) z, y of the posterior skin at the midline
    body_box: Tuple[np.ndarray, np.ndarray]
    kambin: Dict[Tuple[str, str], dict] = field(default_factory=dict)


def _col(table: dict, key: str, n: int) -> List[float]:
    return _interp_table(table[key], n)


def build_layout(lumbar_count: int = 5, ribs: bool = True) -> Layout:
    """Place one plausible adult lumbar spine and its surroundings.

    Parameters
    ----------
    lumbar_count : int
        5 (normal) or 6 (transitional anatomy with an L6).
    ribs : bool
        Whether T12 carries ribs.
    """
    if lumbar_count not in (4, 5, 6):
        raise ValueError(f"lumbar_count must be 4, 5 or 6, got {lumbar_count}")
    n = lumbar_count
    lumbar_names = [f"L{i + 1}" for i in range(n)]
    cols = {k: _col(_LUMBAR, k, n) for k in _LUMBAR}
    # discs: T12/L1 stays, the lumbar ones stretch to n; lordosis rescaled to keep 37.2°
    disc_h = [_DISCS["height"][0]] + _interp_table(_DISCS["height"][1:], n)
    lord = [_DISCS["lordosis"][0]] + _interp_table(_DISCS["lordosis"][1:], n)
    lord = list(np.array(lord) * (sum(_DISCS["lordosis"]) / max(sum(lord), 1e-6)))
    facet_angle = [_DISCS["facet_angle"][0]] + _interp_table(_DISCS["facet_angle"][1:], n)

    rows = []
    # T12: a thoracolumbar vertebra, a little smaller than L1; small transverse process
    rows.append(dict(name="T12", kind="thoracic", width=34.0, depth=28.0, height=24.0,
                     ped_width=7.5, ped_height=15.5, ped_angle=3.0, canal_width=20.5,
                     canal_ap=17.5, tp_length=5.0, tp_half_height=4.5, sp_length=26.0,
                     facet_len=11.0, facet_height=14.5, skin_to_sp=22.0,
                     psoas_area_mm2=80.0, sac_area_mm2=200.0))
    for i, nm in enumerate(lumbar_names):
        rows.append(dict(name=nm, kind="lumbar", **{k: cols[k][i] for k in _LUMBAR}))
    # S1: sacral pedicles are wide; S1 medial angle ≈ 41–43° (Okutan 2003)
    rows.append(dict(name="S1", kind="sacrum", width=50.0, depth=36.0, height=28.0,
                     ped_width=18.0, ped_height=20.0, ped_angle=42.0, canal_width=28.0,
                     canal_ap=14.0, tp_length=0.0, tp_half_height=0.0, sp_length=14.0,
                     facet_len=16.0, facet_height=18.0, skin_to_sp=40.0,
                     psoas_area_mm2=1250.0, sac_area_mm2=120.0))

    # --- the chain, built upward from the S1 superior endplate at the origin ---------------
    order = [r["name"] for r in rows]
    vert: Dict[str, VertebraSpec] = {}
    s1 = rows[-1]
    tilt = SACRAL_SLOPE_DEG
    f = sagittal_frame([0.0, 0.0, 0.0], tilt)
    s1_center = -s1["height"] / 2 * f.axes[2]
    vert["S1"] = VertebraSpec(frame=sagittal_frame(s1_center, tilt), **s1)
    discs = []
    lower = "S1"
    for idx in range(len(rows) - 2, -1, -1):
        r = rows[idx]
        lo = vert[lower]
        d = idx  # disc index below vertebra rows[idx] (0 = T12/L1)
        up_tilt = tilt - lord[d]
        mid_tilt = (tilt + up_tilt) / 2
        mid_axes = sagittal_frame([0, 0, 0], mid_tilt).axes
        e_sup_lower = lo.to_lps([0, 0, lo.height / 2])
        h = disc_h[d]
        center = e_sup_lower + h / 2 * mid_axes[2]
        inf_upper = e_sup_lower + h * mid_axes[2]
        up_axes = sagittal_frame([0, 0, 0], up_tilt).axes
        c = inf_upper + r["height"] / 2 * up_axes[2]
        vert[r["name"]] = VertebraSpec(frame=sagittal_frame(c, up_tilt), **r)
        depth = (vert[r["name"]].depth + lo.depth) / 2
        dh = depth * np.tan(np.radians(lord[d]))
        discs.append(dict(upper=r["name"], lower=lower, name=f"disc {r['name']}-{lower}",
                          center=center, frame=sagittal_frame(center, mid_tilt),
                          height=h, height_anterior=h + dh / 2, height_posterior=h - dh / 2,
                          lordosis_deg=lord[d], facet_angle=facet_angle[d],
                          width=(vert[r["name"]].width + lo.width) / 2 + 1.0, depth=depth + 1.0))
        tilt = up_tilt
        lower = r["name"]
    discs.reverse()
    # Centre the lumbar spine front-to-back so that the body centres average y = 0.
    shift = np.array([0.0, -np.mean([vert[nm].frame.origin[1] for nm in lumbar_names]), 0.0])
    for v in vert.values():
        v.frame = Frame(v.frame.origin + shift, v.frame.axes)
    for dd in discs:
        dd["center"] = dd["center"] + shift
        dd["frame"] = Frame(dd["frame"].origin + shift, dd["frame"].axes)

    layout = Layout(vertebrae=vert, order=order, discs=discs, facets={}, roots={},
                    canal_path=np.zeros((0, 3)), canal_radii=np.zeros((0, 2)),
                    sac_path=np.zeros((0, 3)), sac_radii=np.zeros((0, 2)),
                    aorta=np.zeros((0, 3)), iliac_arteries={}, ivc=np.zeros((0, 3)),
                    iliac_veins={}, bifurcation=np.zeros(3), confluence=np.zeros(3),
                    psoas={}, paraspinal={}, crest_top={}, ilium_center={}, kidney={},
                    ribs={}, back_skin=np.zeros((0, 2)), body_box=(np.zeros(3), np.zeros(3)))
    _place_facets(layout)
    _place_canal(layout)
    _place_roots(layout)
    _place_vessels(layout)
    _place_muscles(layout)
    _place_pelvis_and_organs(layout)
    if ribs:
        _place_ribs(layout)
    _place_kambin(layout)
    return layout


# --- posterior elements -----------------------------------------------------------------
def _place_facets(lay: Layout) -> None:
    vs = lay.vertebrae
    pairs = [(d["upper"], d["lower"], d["facet_angle"]) for d in lay.discs]
    # T12's superior facets meet T11 (outside the model): thoracic, near-coronal joints
    pairs.insert(0, ("T11", "T12", 60.0))
    for upper, lower, beta in pairs:
        lo = vs[lower]
        disc_h = next((d["height"] for d in lay.discs if d["lower"] == lower), 7.0)
        for side in SIDES:
            s = SIDE_SIGN[side]
            b = np.radians(beta)
            # the joint sits posterolateral to the canal, at the level of the disc
            j = np.array([s * (lo.canal_width / 2 + lo.ped_width / 2 + 2.5),
                          lo.depth / 2 + 0.9 * lo.canal_ap,
                          lo.height / 2 + disc_h / 2 + 2.0])
            n = np.array([-s * np.cos(b), np.sin(b), 0.0])
            t = np.array([s * np.sin(b), np.cos(b), 0.0])
            up = vs.get(upper)
            length = up.facet_len if up else lo.facet_len
            height = up.facet_height if up else lo.facet_height
            lay.facets[(upper, lower, side)] = FacetJoint(
                upper, lower, side, beta, lo.to_lps(j), lo.frame.vec_to_lps(n),
                lo.frame.vec_to_lps(t), length, height)


def _place_canal(lay: Layout) -> None:
    """Centre line of the canal and the dural sac through bodies and discs."""
    pts, rad, spts, srad = [], [], [], []
    vs = lay.vertebrae
    names = lay.order
    for i, nm in enumerate(names):
        v = vs[nm]
        if nm == "S1":
            # the sacral canal narrows and follows the sacral kyphosis to S3
            for w, shrink, vc in ((v.height / 2, 1.0, v.canal_center_v - 1.0),
                                  (0.0, 0.85, v.canal_center_v - 2.0),
                                  (-30.0, 0.6, 17.0), (-56.0, 0.45, 7.0)):
                c = v.to_lps([0, vc, w])
                pts.append(c)
                rad.append([v.canal_width / 2 * shrink, v.canal_ap / 2 * shrink])
            # the sac ends at S2
            for w, a, vc in ((v.height / 2, v.sac_area_mm2, v.canal_center_v - 1.5),
                             (0.0, 90.0, v.canal_center_v - 2.5), (-22.0, 25.0, 19.0)):
                spts.append(v.to_lps([0, vc, w]))
                b = np.sqrt(a / np.pi / 1.5)
                srad.append([1.5 * b, b])
            break
        top = v.height / 2 + (3.0 if i == 0 else 0.0)
        for w in (top, 0.0, -v.height / 2):
            pts.append(v.to_lps([0, v.canal_center_v, w]))
            rad.append([v.canal_width / 2, v.canal_ap / 2])
            # the sac lies in the front of the canal, an ellipse 1.5 × wider than deep
            b = np.sqrt(v.sac_area_mm2 / np.pi / 1.5)
            spts.append(v.to_lps([0, v.canal_center_v - 1.0, w]))
            srad.append([1.5 * b, b])
    lay.canal_path, lay.canal_radii = np.array(pts), np.array(rad)
    lay.sac_path, lay.sac_radii = np.array(spts), np.array(srad)


def sac_half_width(lay: Layout, z: float) -> float:
    """Half-width (mm) of the dural sac at height ``z``."""
    zz = lay.sac_path[:, 2]
    o = np.argsort(zz)
    return float(np.interp(z, zz[o], lay.sac_radii[o, 0]))


def canal_half_width(lay: Layout, z: float) -> float:
    """Half-width (mm) of the spinal canal at height ``z``."""
    zz = lay.canal_path[:, 2]
    o = np.argsort(zz)
    return float(np.interp(z, zz[o], lay.canal_radii[o, 0]))


def _place_roots(lay: Layout) -> None:
    """Exiting roots: from the dura, under the pedicle, then anterolaterally and down."""
    vs = lay.vertebrae
    lumbar = [nm for nm in lay.order if nm != "S1"]
    nl = len(lumbar) - 1
    diam = [3.3] + _interp_table(ROOT_DIAMETER, nl)  # T12 a little thinner than L1
    ang = np.radians(ROOT_ANGLE_DEG)
    for i, nm in enumerate(lumbar):
        v = vs[nm]
        r = diam[i] / 2
        for side in SIDES:
            s = SIDE_SIGN[side]
            sac_hw = sac_half_width(lay, v.frame.origin[2] - v.height / 4)
            ped_bottom = v.ped_w - v.ped_height / 2
            p0 = [s * (sac_hw - r), v.canal_center_v - 2.0, ped_bottom + 1.0]
            # just under the pedicle, in the upper foramen (≈ 1 mm of fat above the root)
            p1 = [s * (v.canal_width / 2 + 1.0), v.depth / 2 + 4.0, ped_bottom - r - 1.0]
            p2 = [s * (v.canal_width / 2 + v.ped_width * 0.6), v.depth / 2 + 2.5,
                  ped_bottom - r - 2.5]
            # leaves the foramen at ≈ 51° to the disc plane (coronal), heading anterolaterally
            lat = v.ped_width * 0.6 + 6.0
            p3 = [p2[0] + s * lat, p2[1] - 4.0, p2[2] - lat * np.tan(ang)]
            d = np.array([s * np.cos(ang), -0.45, -np.sin(ang)])
            d /= np.linalg.norm(d)
            p4 = np.array(p3) + 40.0 * d
            pts = v.to_lps(np.array([p0, p1, p2, p3, p4]))
            # dorsal root ganglion: the root swells in and just outside the foramen
            radii = np.array([r, r, r * 1.25, r * 1.2, r])
            lay.roots[f"nerve root {nm} {side}"] = dict(
                points=pts, radii=radii, radius=r, diameter_mm=2 * r, vertebra=nm, side=side)
    _place_s1_roots(lay)


def _place_s1_roots(lay: Layout) -> None:
    """The S1 roots: the traversing roots at L5-S1, out through the first sacral foramina.

    The S1 root sleeve leaves the dural sac at or just above the L5-S1 disc (it takes off
    more cephalad and more vertically than any lumbar root, and its ganglion lies highest
    in its foramen: Hasegawa 1996, MRI of 233 roots), runs down in the lateral recess along
    the medial wall of the S1 pedicle, passes under the pedicle into the S1 foramen inside
    the sacrum and leaves through the first anterior sacral foramen, then runs
    anterolaterally and caudally on the front of the sacrum (toward the sciatic notch).
    The phantom's sacrum is solid bone beside its canal, so the painted root shows in the
    canal and in front of the sacrum; its centre line (the landmark) runs through the bone.
    Worked in S1's frame (``u`` left, ``v`` posterior, ``w`` superior).
    """
    v = lay.vertebrae["S1"]
    disc = next((d for d in lay.discs if d["lower"] == "S1"), None)
    # the L5-S1 disc's mid-plane at the back of the body (the disc is wedge-shaped: its
    # posterior height is the one beside the sac)
    w_disc = v.height / 2 + (disc["height_posterior"] / 2 if disc is not None else 4.0)
    r = S1_ROOT_DIAMETER_MM / 2
    ped_top = v.ped_w + v.ped_height / 2
    ped_bottom = v.ped_w - v.ped_height / 2
    v_recess = v.depth / 2 + r + 1.0  # on the back of the body, in the canal's front

    def recess_u(w: float) -> float:
        """The lateral recess at height ``w``: halfway between the sac's edge and the
        canal's wall (the canal's half-width less 1 mm, where its rounded corner meets
        the body), against the pedicle's medial wall."""
        z = v.to_lps([0.0, v.canal_center_v, w])[2]
        return 0.5 * (sac_half_width(lay, z) + canal_half_width(lay, z) - 1.0)

    for side in SIDES:
        s = SIDE_SIGN[side]
        z0 = v.to_lps([0.0, v.canal_center_v, w_disc + 2.0])[2]
        sac_hw = sac_half_width(lay, z0)
        # the sleeve leaves the sac's lateral edge 2 mm above the disc's mid-plane
        p0 = [s * (sac_hw - r), v.canal_center_v - 2.0, w_disc + 2.0]
        p1 = [s * recess_u(ped_top - 2.0), v_recess, ped_top - 2.0]
        p2 = [s * recess_u(ped_bottom + 1.0), v_recess - 0.5, ped_bottom + 1.0]
        # under the pedicle, into the S1 foramen inside the sacrum
        p3 = [s * (v.canal_width / 2 + 3.0), v.depth / 2 - 2.0, ped_bottom - r - 1.5]
        # out through the first anterior sacral foramen, onto the front of the sacrum
        p4 = [s * S1_ANTERIOR_FORAMEN_MM, -v.depth / 2 + 6.0, -v.height / 2 - 1.0]
        # then anterolaterally and caudally along the sacrum's front toward the sciatic notch
        d = np.array([s * 0.5, -0.15, -0.85])
        d /= np.linalg.norm(d)
        p5 = np.array(p4) + 30.0 * d
        pts = v.to_lps(np.array([p0, p1, p2, p3, p4, p5]))
        # the S1 ganglion, the largest, lies in the foramen (Hasegawa 1996)
        radii = np.array([r, r, r, r * 1.25, r * 1.15, r])
        lay.roots[f"nerve root S1 {side}"] = dict(
            points=pts, radii=radii, radius=r, diameter_mm=2 * r, vertebra="S1", side=side)


# --- soft tissue paths -------------------------------------------------------------------
def _anterior_point(v: VertebraSpec, u: float, gap: float, w: float = 0.0) -> np.ndarray:
    return v.to_lps([u, -v.depth / 2 - gap, w])


def _place_vessels(lay: Layout) -> None:
    vs = lay.vertebrae
    lumbar = [nm for nm in lay.order if nm.startswith("L")]
    # the bifurcation is at the L4 body in 55–70 % (CT/MRI series): the lower third of the
    # second-last lumbar body; the IVC confluence 1–2 segments lower, mostly L4/5–L5 (CTA n=100)
    l4 = vs[lumbar[-2]]
    l5 = vs[lumbar[-1]]
    s1 = vs["S1"]
    r = AORTA_RADIUS_MM
    pts = []
    for nm in ["T12"] + lumbar[:-1]:
        v = vs[nm]
        w_list = (v.height / 2 + 6, 0.0) if nm != lumbar[-2] else (v.height / 2, 0.0)
        for w in w_list:
            pts.append(_anterior_point(v, 12.0, AORTA_GAP_MM + r, w))
    bif = _anterior_point(l4, 6.0, AORTA_GAP_MM + r, -l4.height / 3)
    pts.append(bif)
    lay.aorta = np.array(pts)
    lay.bifurcation = bif
    # common iliac arteries, ≈ 6 mm radius, 3–8 mm in front of the L5/S1 disc (Kot 2022)
    for side in SIDES:
        s = SIDE_SIGN[side]
        a = [bif,
             _anterior_point(l5, s * 16.0, 9.0, 0.0),
             _anterior_point(s1, s * 38.0, 10.0, s1.height / 2 - 2.0),
             _anterior_point(s1, s * 55.0, 8.0, -10.0)]
        lay.iliac_arteries[side] = np.array(a)
    # IVC right anterolateral, an ellipse; confluence at the top of L5
    pts = []
    for nm in ["T12"] + lumbar[:-1]:
        v = vs[nm]
        for w in (v.height / 2 + 6, 0.0):
            pts.append(_anterior_point(v, -22.0, 10.0, w))
    conf = _anterior_point(l5, -8.0, 9.0, l5.height / 3)
    pts.append(conf)
    lay.ivc = np.array(pts)
    lay.confluence = conf
    for side in SIDES:
        s = SIDE_SIGN[side]
        # the veins run behind and medial to the arteries
        a = [conf,
             _anterior_point(l5, s * 18.0, 3.0, -l5.height / 3),
             _anterior_point(s1, s * 36.0, 3.0, s1.height / 2 - 8.0),
             _anterior_point(s1, s * 50.0, 2.0, -14.0)]
        lay.iliac_veins[side] = np.array(a)


def _place_muscles(lay: Layout) -> None:
    vs = lay.vertebrae
    names = [nm for nm in lay.order if nm != "S1"]
    s1 = vs["S1"]
    for side in SIDES:
        s = SIDE_SIGN[side]
        pts, rad = [], []
        for nm in names:
            v = vs[nm]
            rr = np.sqrt(v.psoas_area_mm2 / np.pi)
            # psoas lies against the side of the body, growing toward the pelvis
            pts.append(v.to_lps([s * (v.width / 2 + rr * 0.85), -3.0 - 0.2 * rr, 0.0]))
            rad.append([rr * 1.15, rr / 1.15])
        # over the pelvic brim the psoas runs forward and lateral beside the iliac vessels
        rr = np.sqrt(1250.0 / np.pi)
        pts.append(s1.to_lps([s * 48.0, -30.0, 0.0]))
        rad.append([rr * 1.1, rr / 1.1])
        pts.append(s1.to_lps([s * 62.0, -55.0, -45.0]))
        rad.append([rr, rr])
        lay.psoas[side] = (np.array(pts), np.array(rad))
        # paraspinal muscles (erector spinae + multifidus), large at L3–L5
        pts, rad = [], []
        for nm in names:
            v = vs[nm]
            lvl = names.index(nm) / max(len(names) - 1, 1)
            # from the spinous process to beyond the transverse process tips, and from the
            # transverse process plane back to the fascia ≈ 12 mm under the skin
            rx = 17.0 + 7.0 * lvl
            v_tp = v.depth / 2 + 0.6 * v.canal_ap
            back = v.depth / 2 + v.canal_ap + 6.0 + v.sp_length + v.skin_to_sp - 12.0
            ap = (back - v_tp) / 2
            pts.append(v.to_lps([s * (rx + 5.0), (back + v_tp) / 2, 0.0]))
            rad.append([rx, ap])
        pts.append(s1.to_lps([s * 28.0, s1.depth / 2 + 38.0, -20.0]))
        rad.append([20.0, 14.0])
        pts.append(s1.to_lps([s * 20.0, s1.depth / 2 + 38.0, -55.0]))
        rad.append([12.0, 8.0])
        lay.paraspinal[side] = (np.array(pts), np.array(rad))
    # posterior skin along the midline: spinous tip + skin distance (Kawchuk)
    back = []
    for nm in lay.order:
        v = vs[nm]
        tip = v.to_lps([0, v.depth / 2 + v.canal_ap + 6.0 + v.sp_length, -3.0])
        back.append([tip[2], tip[1] + v.skin_to_sp])
    lay.back_skin = np.array(sorted(back))


def _place_pelvis_and_organs(lay: Layout) -> None:
    vs = lay.vertebrae
    lumbar = [nm for nm in lay.order if nm.startswith("L")]
    crest_v = vs[lumbar[-2]]
    s1 = vs["S1"]
    # intercrestal line at the L4 body / its lower endplate in most men (Spine 2008, n=260)
    z_crest = crest_v.to_lps([0, 0, -crest_v.height / 2 + 3.0])[2]
    for side in SIDES:
        s = SIDE_SIGN[side]
        top = s1.to_lps([s * 95.0, 10.0, 0.0])
        top[2] = z_crest
        lay.crest_top[side] = top
        lay.ilium_center[side] = s1.to_lps([s * 30.0, -20.0, 0.0])
    # kidneys ≈ 10 × 5 × 3 cm; left ≈ T11–L2, right 1–2.5 cm lower;
    # hilum ≈ 5 cm from the midline (anatomy texts)
    l1 = vs["L1"]
    for side in SIDES:
        s = SIDE_SIGN[side]
        c = l1.to_lps([s * 78.0, 10.0, 0.0 if side == "left" else -18.0])
        lay.kidney[side] = dict(center=c, radii=np.array([26.0, 17.0, 52.0]))
    lo = np.array([-175.0, 0.0, 0.0])
    lay.body_box = (lo, -lo)


def _place_ribs(lay: Layout) -> None:
    """Twelfth ribs: floating, ≈ 12 cm, curving laterally, back and then down."""
    v = lay.vertebrae["T12"]
    for side in SIDES:
        s = SIDE_SIGN[side]
        local = np.array([
            [s * (v.width / 2 - 3.0), v.depth / 2 + 2.0, v.height / 2 - 6.0],
            [s * 30.0, v.depth / 2 + 14.0, 0.0],
            [s * 55.0, v.depth / 2 + 16.0, -14.0],
            [s * 80.0, v.depth / 2 + 6.0, -32.0],
            [s * 98.0, v.depth / 2 - 14.0, -50.0],
            [s * 106.0, v.depth / 2 - 36.0, -64.0],
        ])
        lay.ribs[f"rib T12 {side}"] = v.to_lps(local)


# --- Kambin's triangle ------------------------------------------------------------------
def _place_kambin(lay: Layout) -> None:
    """Corners of the bony Kambin triangle per disc level and side.

    Worked in the lower vertebra's frame, projected on the coronal plane of the
    posterior disc wall: base on the lower vertebra's superior endplate, the
    medial side at the anterolateral edge of the lower vertebra's SAP, the
    hypotenuse along the lower edge of the exiting root.
    """
    vs = lay.vertebrae
    for d in lay.discs:
        up, lo = vs[d["upper"]], vs[d["lower"]]
        for side in SIDES:
            root = lay.roots.get(f"nerve root {up.name} {side}")
            joint = lay.facets.get((up.name, lo.name, side))
            if root is None or joint is None:
                continue
            s = SIDE_SIGN[side]
            j = lo.frame.point_to_local(joint.center)
            n = lo.frame.vec_to_local(joint.normal)
            t = lo.frame.vec_to_local(joint.tangent)
            th = sap_thickness(lo)
            corner = j - t * joint.length / 2 - n * (FACET_GAP_MM / 2 + th)
            u_m = corner[0]
            w_b = lo.height / 2
            v_wall = lo.depth / 2
            # root's lower edge, sampled densely in the lower vertebra's frame
            from surgplan.imaging.phantom_shapes import resample_polyline

            rp = lo.frame.point_to_local(resample_polyline(root["points"], 0.25))
            edge_w = rp[:, 2] - root["radius"]
            us = rp[:, 0] * s
            # lateral corner: where the root's lower edge comes down to the endplate
            below = np.nonzero(edge_w <= w_b)[0]
            if len(below) == 0:
                continue
            k = below[0]
            u_r = us[k]
            # apex: where the root's lower edge passes over the SAP edge
            over = np.nonzero(us >= s * u_m)[0]
            if len(over) == 0 or u_r <= s * u_m:
                continue
            w_a = edge_w[over[0]]
            base = np.array([u_m, v_wall, w_b])
            lat = np.array([s * u_r, v_wall, w_b])
            apex = np.array([u_m, v_wall, w_a])
            a = abs(u_r - s * u_m)
            b = max(w_a - w_b, 0.0)
            c = np.hypot(a, b)
            lay.kambin[(f"{up.name}-{lo.name}", side)] = dict(
                corners=lo.to_lps(np.array([base, lat, apex])),
                inscribed_diameter_mm=float(a + b - c),
                base_mm=float(a), height_mm=float(b))


def sap_thickness(v: VertebraSpec) -> float:
    """Thickness (mm) of a superior articular process, perpendicular to its facet."""
    return 6.0 if v.kind != "sacrum" else 8.0


def lordosis_deg(lay: Layout, top: str = "T12", bottom: str = "S1") -> float:
    """Angle between the superior endplates of two vertebrae (degrees)."""
    a = lay.vertebrae[top].frame.axes[2]
    b = lay.vertebrae[bottom].frame.axes[2]
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1, 1))))

