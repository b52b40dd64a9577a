"""What the risk engine prepares once per anatomy: distance fields, skin, bone codes.

:meth:`PlanningContext.build` computes, for every critical structure present in the
anatomy, a signed distance field (mm; negative inside) on a grid of about 1 mm
cropped to the structure's box widened by :data:`FIELD_CAP_MM`; the skin surface
(the outer boundary of the body outline) as candidate entry points; and a bone-code
map (vertebral part, ilium, rib) for the bone in a tool's way.  Every trajectory is
then evaluated by trilinear sampling of these fields (vectorised, a few ms).

The body outline comes from the ``skin`` or ``body`` structure when the anatomy has
one (all labels united, holes filled); else, when a CT volume is given, from the
image (≥ −300 HU, the largest component, holes filled slice by slice); else there
is none and :attr:`PlanningContext.skin_note` says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
from scipy import ndimage as ndi

from surgplan.core.progress import CancelToken, ProgressCallback, check, no_progress
from surgplan.imaging.anatomy import Anatomy, VertebraFrame
from surgplan.imaging.structures import PART_NAMES, VERTEBRA_ORDER, is_vertebra, kind_of

#: Distance fields are exact up to this distance (mm); farther is reported as "≥ cap".
FIELD_CAP_MM = 30.0
#: Target spacing of the distance fields (mm).
FIELD_SPACING_MM = 1.0
#: Bone codes beyond the part codes 1…14 of ``PART_NAMES``.
BONE_VERTEBRA_OTHER = 15
BONE_ILIUM_LEFT = 16
BONE_ILIUM_RIGHT = 17
BONE_RIB = 18
BONE_NAMES = dict(PART_NAMES)
BONE_NAMES.update({BONE_VERTEBRA_OTHER: "bone (parts not separated)",
                   BONE_ILIUM_LEFT: "ilium left", BONE_ILIUM_RIGHT: "ilium right",
                   BONE_RIB: "rib"})
#: Kinds whose structures get a distance field.
FIELD_KINDS = ("dural sac", "spinal canal", "nerve root", "vessel", "bowel", "organ", "ilium",
               "rib")
BODY_HU = -300.0


@dataclass(frozen=True, eq=False)
class DistanceField:
    """Signed distance to one structure (mm, negative inside), on a cropped grid.

    Attributes
    ----------
    name : str
        Structure name.
    values : numpy.ndarray
        float32 ``[k, j, i]``, clipped to ``[-cap_mm, cap_mm]``.
    lps_to_grid : numpy.ndarray
        4×4 affine from LPS mm to continuous ``(i, j, k)`` indices of ``values``.
    cap_mm : float
        Points farther than this are reported at ``cap_mm``.
    """

    name: str
    values: np.ndarray
    lps_to_grid: np.ndarray
    cap_mm: float
    offset_ijk: np.ndarray = None
    stride_ijk: np.ndarray = None

    def sample(self, points_lps: np.ndarray) -> np.ndarray:
        """Trilinear signed distance (mm) at ``points_lps`` (…, 3); ``cap_mm`` off the grid."""
        p = np.asarray(points_lps, np.float64)
        shp = p.shape[:-1]
        ijk = apply_affine(self.lps_to_grid, p.reshape(-1, 3))
        return _trilinear(self.values, ijk, self.cap_mm).reshape(shp)

    def sample_index(self, ijk_volume: np.ndarray) -> np.ndarray:
        """As :meth:`sample`, from continuous ``(i, j, k)`` indices of the anatomy grid (N, 3).

        Lets many fields share one LPS → index transform of the same points.
        """
        ijk = (ijk_volume - self.offset_ijk) / self.stride_ijk
        return _trilinear(self.values, ijk, self.cap_mm)

    @property
    def box_ijk(self) -> tuple:
        """(low, high) corners of the field's grid in anatomy-grid indices (i, j, k)."""
        hi = self.offset_ijk + self.stride_ijk * (np.array(self.values.shape[::-1]) - 1)
        return self.offset_ijk, hi


def apply_affine(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``a[:3, :3] @ p + a[:3, 3]`` for rows ``p`` (N, 3), without BLAS (tiny inner size)."""
    return (p[:, 0:1] * a[:3, 0] + p[:, 1:2] * a[:3, 1] + p[:, 2:3] * a[:3, 2]) + a[:3, 3]


def _trilinear(vol: np.ndarray, ijk: np.ndarray, outside: float) -> np.ndarray:
    """Trilinear interpolation of ``vol[k, j, i]`` at ``ijk`` rows (``outside`` off it)."""
    nk, nj, ni = vol.shape
    out = np.full(len(ijk), outside, np.float32)
    i, j, k = ijk[:, 0], ijk[:, 1], ijk[:, 2]
    ok = (i >= 0) & (j >= 0) & (k >= 0) & (i <= ni - 1) & (j <= nj - 1) & (k <= nk - 1)
    if not ok.any():
        return out
    i, j, k = i[ok], j[ok], k[ok]
    i0 = np.minimum(i.astype(np.intp), max(ni - 2, 0))
    j0 = np.minimum(j.astype(np.intp), max(nj - 2, 0))
    k0 = np.minimum(k.astype(np.intp), max(nk - 2, 0))
    fi = (i - i0).astype(np.float32)
    fj = (j - j0).astype(np.float32)
    fk = (k - k0).astype(np.float32)
    i1 = np.minimum(i0 + 1, ni - 1)
    j1 = np.minimum(j0 + 1, nj - 1)
    k1 = np.minimum(k0 + 1, nk - 1)
    flat = vol.ravel()
    sj, sk = ni, ni * nj
    b00 = k0 * sk + j0 * sj
    b01 = k0 * sk + j1 * sj
    b10 = k1 * sk + j0 * sj
    b11 = k1 * sk + j1 * sj
    c00 = flat[b00 + i0] * (1 - fi) + flat[b00 + i1] * fi
    c01 = flat[b01 + i0] * (1 - fi) + flat[b01 + i1] * fi
    c10 = flat[b10 + i0] * (1 - fi) + flat[b10 + i1] * fi
    c11 = flat[b11 + i0] * (1 - fi) + flat[b11 + i1] * fi
    c0 = c00 * (1 - fj) + c01 * fj
    c1 = c10 * (1 - fj) + c11 * fj
    out[ok] = c0 * (1 - fk) + c1 * fk
    return out


def signed_distance_field(labels: np.ndarray, ijk_to_lps: np.ndarray, name: str,
                          label=True, cap_mm: float = FIELD_CAP_MM,
                          spacing_mm: float = FIELD_SPACING_MM,
                          box: Optional[tuple] = None) -> Optional[DistanceField]:
    """The :class:`DistanceField` of ``labels == label`` on a grid with affine ``ijk_to_lps``.

    ``labels`` is a label map (or a boolean mask with ``label=True``).  The field is
    computed on the structure's bounding box widened by ``cap_mm`` (clipped to the
    grid), subsampled by an integer stride so voxels are about ``spacing_mm``.  The
    zero level lies on the voxel faces of the mask (half a voxel from the centres).
    ``box`` (tuple of slices, ``[k, j, i]``) skips the bounding-box search.  None when
    the structure is empty.
    """
    aff = np.asarray(ijk_to_lps, float)
    sp = np.linalg.norm(aff[:3, :3], axis=0)  # along i, j, k
    if box is None:
        objs = ndi.find_objects((labels == label).astype(np.uint8))
        if not objs or objs[0] is None:
            return None
        box = objs[0]
    stride = [max(1, int(round(spacing_mm / s))) for s in sp[::-1]]  # k, j, i
    grow = [int(np.ceil(cap_mm / s)) + 1 for s in sp[::-1]]
    lo = [max(0, sl.start - g) for sl, g in zip(box, grow)]
    hi = [min(n, sl.stop + g) for sl, g, n in zip(box, grow, labels.shape)]
    sub = labels[lo[0]:hi[0]:stride[0], lo[1]:hi[1]:stride[1], lo[2]:hi[2]:stride[2]] == label
    if not sub.any():
        return None
    sampling = [sp[2] * stride[0], sp[1] * stride[1], sp[0] * stride[2]]
    half = 0.5 * min(sampling)
    # ITK's signed Maurer distance (exact, multi-threaded; 4–5× scipy's two EDTs here) puts
    # 0 on the object's border voxels and one voxel outside them; the faces lie half a
    # voxel out, so half a voxel is taken off everywhere.
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(sub.astype(np.uint8))
    img.SetSpacing((sampling[2], sampling[1], sampling[0]))
    sdf = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
    sdf -= half
    np.clip(sdf, -cap_mm, cap_mm, out=sdf)
    # grid index (a, b, c) along (i, j, k) ↔ volume index lo + stride * grid
    g2v = np.eye(4)
    g2v[0, 0], g2v[1, 1], g2v[2, 2] = stride[2], stride[1], stride[0]
    g2v[:3, 3] = [lo[2], lo[1], lo[0]]
    lps_to_grid = np.linalg.inv(aff @ g2v)
    return DistanceField(name, np.ascontiguousarray(sdf, np.float32), lps_to_grid, cap_mm,
                         np.array([lo[2], lo[1], lo[0]], float),
                         np.array([stride[2], stride[1], stride[0]], float))


@dataclass(eq=False)
class PlanningContext:
    """Everything the risk engine needs about one anatomy, prepared once.

    Build with :meth:`build`; read-only afterwards (the small caches of Kambin
    triangles and targets are filled under a lock, so the GUI may evaluate from
    a worker thread).

    Attributes
    ----------
    anatomy : Anatomy
    volume : Volume or None
        The CT, for Hounsfield units along a screw.
    fields : dict of str → DistanceField
        One per critical structure present, and one per vertebra.
    provenance : dict of str → str
        ``segmented``, ``modelled`` or ``edited`` per structure name.
    bone : numpy.ndarray
        uint8 bone code per anatomy voxel (``BONE_NAMES``).
    outline : numpy.ndarray or None
        Boolean body outline on the anatomy grid.
    skin_vertices_lps : numpy.ndarray
        (N, 3) skin surface points (centres of the outline's outer boundary voxels).
    skin_note : str
        Where the skin came from, or why there is none.
    frames : dict of str → VertebraFrame
        Per vertebra (from the anatomy, or estimated from the centroids).
    """

    anatomy: Anatomy
    volume: object
    fields: Dict[str, DistanceField]
    provenance: Dict[str, str]
    bone: np.ndarray
    outline: Optional[np.ndarray]
    skin_vertices_lps: np.ndarray
    skin_note: str
    frames: Dict[str, VertebraFrame]
    lps_to_ijk: np.ndarray = field(default=None)
    cache: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, anatomy: Anatomy, volume=None, *,
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> "PlanningContext":
        """Prepare the distance fields, skin and bone codes of ``anatomy``.

        Parameters
        ----------
        anatomy : Anatomy
        volume : Volume, optional
            The image the anatomy was made from (same grid): Hounsfield units for
            screws, and the body outline when the anatomy has no skin or body.
        progress, cancel
            See :mod:`surgplan.core.progress`.

        Raises
        ------
        OperationCancelled
            ``cancel`` was set; nothing is kept.
        """
        progress = progress or no_progress
        aff = np.asarray(anatomy.ijk_to_lps, float)
        if volume is not None and tuple(volume.array.shape) != tuple(anatomy.shape):
            volume = None  # not the anatomy's grid: HU cannot be looked up voxel by voxel
        names = [s for s in anatomy.items]
        provenance = {s.name: s.provenance for s in names}
        progress(0.0, "planning: bounding boxes")
        boxes = {}
        for mname in ("vertebrae", "structures"):
            arr = getattr(anatomy, mname)
            objs = ndi.find_objects(arr)
            for s in names:
                if s.map == mname and s.label - 1 < len(objs) and objs[s.label - 1] is not None:
                    boxes[s.name] = objs[s.label - 1]
        want = [s for s in names if s.name in boxes and (s.map == "vertebrae"
                                                         or kind_of(s.name) in FIELD_KINDS)]
        fields: Dict[str, DistanceField] = {}
        for n, s in enumerate(want):
            check(cancel)
            progress(0.05 + 0.75 * n / max(len(want), 1), f"planning: distance to {s.name}")
            arr = getattr(anatomy, s.map)
            box = boxes[s.name]
            f = signed_distance_field(arr, aff, s.name, label=s.label, box=box)
            if f is not None:
                fields[s.name] = f
        check(cancel)
        progress(0.82, "planning: bone parts")
        bone = np.where(anatomy.vertebrae > 0,
                        np.where(anatomy.parts > 0, anatomy.parts, BONE_VERTEBRA_OTHER),
                        0).astype(np.uint8)
        for s in names:
            if s.kind == "ilium":
                bone[anatomy.structures == s.label] = (BONE_ILIUM_LEFT if s.name.endswith("left")
                                                       else BONE_ILIUM_RIGHT)
            elif s.kind == "rib":
                bone[anatomy.structures == s.label] = BONE_RIB
        check(cancel)
        progress(0.88, "planning: skin")
        outline, note = _body_outline(anatomy, volume)
        verts = _skin_vertices(outline, aff) if outline is not None else np.zeros((0, 3))
        frames = _frames(anatomy)
        progress(1.0, "planning: ready")
        bone.flags.writeable = False
        return cls(anatomy, volume, fields, provenance, bone, outline, verts, note, frames,
                   np.linalg.inv(aff))

    # --- lookups ----------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """True when ``name`` is in the anatomy."""
        return name in self.provenance

    def to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """Nearest voxel indices ``(i, j, k)`` (clipped to the grid) of LPS points (…, 3)."""
        p = np.asarray(points_lps, float)
        ijk = np.rint(apply_affine(self.lps_to_ijk, p.reshape(-1, 3))).astype(np.intp)
        ijk = ijk.reshape(p.shape)
        nk, nj, ni = self.anatomy.shape
        np.clip(ijk[..., 0], 0, ni - 1, out=ijk[..., 0])
        np.clip(ijk[..., 1], 0, nj - 1, out=ijk[..., 1])
        np.clip(ijk[..., 2], 0, nk - 1, out=ijk[..., 2])
        return ijk

    def inside_grid(self, points_lps: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps, float)
        ijk = apply_affine(self.lps_to_ijk, p.reshape(-1, 3)).reshape(p.shape)
        nk, nj, ni = self.anatomy.shape
        return ((ijk > -0.5) & (ijk < np.array([ni, nj, nk]) - 0.5)).all(-1)

    def lookup(self, array: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
        """Nearest-voxel values of an anatomy-grid ``array`` at LPS points."""
        ijk = self.to_index(points_lps)
        return array[ijk[..., 2], ijk[..., 1], ijk[..., 0]]

    def in_body(self, points_lps: np.ndarray) -> np.ndarray:
        """True where points lie inside the body outline (False outside the grid)."""
        if self.outline is None:
            return np.zeros(np.shape(points_lps)[:-1], bool)
        return self.lookup(self.outline, points_lps) & self.inside_grid(points_lps)

    def frame(self, vertebra: str) -> VertebraFrame:
        """The frame of ``vertebra``; KeyError when it is not in the anatomy."""
        try:
            return self.frames[vertebra]
        except KeyError:
            raise KeyError(f"{vertebra} is not in the anatomy (it has "
                           f"{list(self.frames)})") from None

    def cached(self, key, compute):
        """``compute()`` once per ``key`` (thread-safe)."""
        with self.lock:
            if key in self.cache:
                return self.cache[key]
        val = compute()
        with self.lock:
            self.cache.setdefault(key, val)
            return self.cache[key]


def _body_outline(anatomy: Anatomy, volume) -> tuple:
    names = set(anatomy.names)
    if "skin" in names or "body" in names:
        which = "skin" if "skin" in names else "body"
        union = (anatomy.vertebrae > 0) | (anatomy.structures > 0)
        union = _fill_slices(union)
        note = (f"skin: the outer boundary of all labels (the anatomy's '{which}' structure, "
                f"{anatomy.structure(which).provenance})")
        ct = _ct_outline(volume)
        if ct is not None:  # unlabelled air inside the body (lungs, bowel gas) is not skin
            union |= ct
            note += " joined with the CT's body outline"
        return union, note
    ct = _ct_outline(volume)
    if ct is not None:
        return ct, ("skin: the body outline of the CT (≥ −300 HU, largest component); "
                    "the anatomy has no skin or body structure")
    return None, ("no body outline: the anatomy has no 'skin' or 'body' structure and no CT "
                  "volume was given, so skin entries and depths cannot be checked")


def _ct_outline(volume) -> Optional[np.ndarray]:
    """Voxels ≥ −300 HU, largest component, holes filled per slice; None without a CT."""
    if volume is None or not np.issubdtype(volume.array.dtype, np.number) or \
            volume.modality not in ("CT", ""):
        return None
    hu = np.asarray(volume.array)
    if hu.min() >= -500:
        return None
    body = hu >= BODY_HU
    lab, n = ndi.label(body)
    if not n:
        return None
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return _fill_slices(lab == int(np.argmax(sizes)))


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Holes filled in every axial (k) slice: gas in the bowel, the canal in a ring of bone."""
    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        out[k] = ndi.binary_fill_holes(mask[k])
    return out


def _skin_vertices(outline: np.ndarray, aff: np.ndarray) -> np.ndarray:
    """Centres of outline voxels that touch the outside within a slice (not the cut ends)."""
    inner = np.zeros_like(outline)
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 1)
    inner = ndi.binary_erosion(outline, structure=st, border_value=1)
    surf = outline & ~inner
    # the image's own edges are not skin (a cropped field of view)
    surf[:, 0, :] = surf[:, -1, :] = False
    surf[:, :, 0] = surf[:, :, -1] = False
    surf[0] = surf[-1] = False
    k, j, i = np.nonzero(surf)
    return apply_affine(aff, np.stack([i, j, k], 1).astype(float))


def _frames(anatomy: Anatomy) -> Dict[str, VertebraFrame]:
    """Vertebra frames: the anatomy's, or estimated from the centroids where missing."""
    verts = [s for s in anatomy.items if s.map == "vertebrae" and is_vertebra(s.name)]
    verts.sort(key=lambda s: VERTEBRA_ORDER.index(s.name))
    cents = {}
    aff = np.asarray(anatomy.ijk_to_lps, float)
    for s in verts:
        c = s.centroid_lps
        if c is None:
            idx = np.argwhere(anatomy.vertebrae == s.label)
            if not len(idx):
                continue
            c = aff[:3, :3] @ idx.mean(0)[::-1] + aff[:3, 3]
        cents[s.name] = np.asarray(c, float)
    out = {}
    order = [s.name for s in verts if s.name in cents]
    for n, s in enumerate(verts):
        if s.frame is not None:
            out[s.name] = s.frame
            continue
        if s.name not in cents:
            continue
        k = order.index(s.name)
        up = cents[order[k - 1]] if k > 0 else None
        dn = cents[order[k + 1]] if k + 1 < len(order) else None
        si = (up - dn) if up is not None and dn is not None else \
            (up - cents[s.name]) if up is not None else \
            (cents[s.name] - dn) if dn is not None else np.array([0.0, 0.0, 1.0])
        si = si / np.linalg.norm(si)
        ap = np.array([0.0, 1.0, 0.0]) - si[1] * si
        ap /= np.linalg.norm(ap)
        lr = np.cross(ap, si)
        out[s.name] = VertebraFrame(cents[s.name], si, ap, lr)
    return out
