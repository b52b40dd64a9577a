"""Turn an indexed :class:`Series` into a :class:`~surgplan.imaging.volume.Volume`.

The target grid was planned from the headers (:mod:`.geometry`).  Here the
slices are decoded one at a time straight into a preallocated array of the
final dtype: a regular stack is copied plane by plane; a tilted or irregular
stack is resampled plane by plane, each target plane blended from the two
original slices around it and shifted in-plane (bilinear), so that at most two
decoded slices are held besides the output.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from pydicom.uid import UID
from scipy import ndimage

from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.dicom.geometry import target_planes
from surgplan.imaging.dicom.index import Series
from surgplan.imaging.dicom.pixels import (
    check_decodable,
    decode_stored,
    is_ct,
    iter_file_frames,
    output_dtype,
    stored_to_values,
)
from surgplan.imaging.volume import LoadWarning, Volume

#: Transfer syntaxes whose compression loses information (JPEG baseline and
#: extended, JPEG-LS near-lossless, JPEG 2000 lossy, HTJ2K lossy).
LOSSY_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203",
}

#: Value given to resampled voxels outside every original slice: air for CT.
CT_OUTSIDE_HU = -1024


def load_series(
    series: Series,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Volume:
    """Decode a series onto its regular grid.

    Parameters
    ----------
    series : Series
        From :func:`surgplan.imaging.dicom.index.index_files`.
    progress : ProgressCallback, optional
        Called with the fraction of planes done.
    cancel : CancelToken, optional
        Checked before every plane.

    Returns
    -------
    Volume
        ``array[k, j, i]`` (int16 HU for CT; see :mod:`.pixels` for other
        modalities), ``ijk_to_lps`` in LPS mm, metadata, frame of reference,
        and warnings: those of the series (``empty-uid``, geometry) plus any
        raised while decoding (clipping, MONOCHROME1).

    Raises
    ------
    UnsupportedCodecError
        Before anything is decoded, if any file's transfer syntax lacks a decoder.
    TruncatedFileError, MissingPixelDataError, NotDicomError, DicomImportError
        When a slice cannot be decoded (naming the file).
    OperationCancelled
        When ``cancel`` is set; nothing is returned and nothing was changed.
    """
    geom = series.geometry
    slices = [series.slices[k] for k in geom.order]
    checked = set()
    for s in slices:  # fail fast, before minutes of decoding
        if s.pixel.transfer_syntax_uid not in checked:
            check_decodable(s.pixel.transfer_syntax_uid, s.label)
            checked.add(s.pixel.transfer_syntax_uid)

    ct = is_ct(series.modality)
    dtype = output_dtype(slices, series.modality)
    ni, nj, nk = geom.shape_ijk
    array = np.empty((nk, nj, ni), dtype)
    report = progress or (lambda f, m: None)
    clipped = 0

    if not geom.resample:
        done = 0
        for k_list in _by_file(slices):
            planes = (zip(k_list, (decode_stored(slices[k_list[0]]),)) if len(k_list) == 1
                      else _frames_of_file(slices, k_list))
            for k, stored in planes:
                check(cancel)
                report(done / nk, f"Decoding slice {done + 1}/{nk}")
                _, n_clip = stored_to_values(stored, slices[k], dtype,
                                             invert_monochrome1=not ct, out=array[k])
                clipped += n_clip
                done += 1
    else:
        clipped = _resample_into(array, slices, geom, ct, cancel, report)
    report(1.0, f"Loaded {nk} slices")

    warnings = list(series.all_warnings)
    if clipped:
        info = np.iinfo(dtype)
        warnings.append(LoadWarning(
            "clipped-values",
            f"{clipped} voxel values fell outside the {dtype} range "
            f"[{info.min}, {info.max}] after rescaling and were clipped to it",
        ))
    lossy = sorted({s.pixel.transfer_syntax_uid for s in slices} & LOSSY_TRANSFER_SYNTAXES)
    if lossy:
        names = ", ".join(UID(u).name for u in lossy)
        warnings.append(LoadWarning(
            "other",
            f"the pixel data is lossy-compressed ({names}): values are approximations of "
            "the original scan; measure densities with care",
        ))
    if any(s.pixel.photometric == "MONOCHROME1" for s in slices):
        warnings.append(LoadWarning(
            "other",
            "the images are MONOCHROME1 (low values displayed white): "
            + ("Hounsfield units are physical values and were kept as rescaled"
               if ct else "stored values were inverted so that higher values are brighter"),
        ))
    return Volume(
        array=array,
        ijk_to_lps=geom.ijk_to_lps,
        frame_of_reference_uid=series.frame_of_reference_uid,
        metadata=series.metadata,
        warnings=tuple(warnings),
        source=series.source,
    )


def _by_file(slices: list) -> list:
    """Slice positions (k) grouped by file, files in order of their first k."""
    groups: dict = {}
    for k, s in enumerate(slices):
        groups.setdefault(s.path, []).append(k)
    return list(groups.values())


def _frames_of_file(slices: list, k_list: list):
    """(k, stored) for the frames of one multi-frame file, read in one pass."""
    k_of = {slices[k].frame_index: k for k in k_list}
    for header, stored in iter_file_frames([slices[k] for k in k_list]):
        yield k_of[header.frame_index], stored


def _resample_into(array, slices, geom, ct, cancel, report) -> int:
    """Fill ``array`` plane by plane from the original slices (see module docstring)."""
    nk, nj, ni = array.shape
    rows, cols = slices[0].pixel.rows, slices[0].pixel.columns
    cval = float(CT_OUTSIDE_HU) if ct else 0.0
    cache: dict = {}
    clipped = 0
    planes = target_planes(geom)

    def values(m: int) -> np.ndarray:
        # Real-world values in float32 (exact for 16-bit stored data); rounded
        # only once, after interpolation.
        if m not in cache:
            s = slices[m]
            cache[m] = stored_to_values(decode_stored(s), s, np.dtype(np.float32),
                                        invert_monochrome1=not ct)[0]
        return cache[m]

    for k, tp in enumerate(planes):
        check(cancel)
        report(k / nk, f"Resampling plane {k + 1}/{nk}")
        for m in [m for m in cache if m < tp.lo]:
            del cache[m]  # planes advance monotonically: older slices are done
        blend = values(tp.lo)
        if tp.weight > 0.0:
            blend = (1.0 - tp.weight) * blend + tp.weight * values(tp.hi)
        aligned = (abs(tp.u_px) < 1e-6 and abs(tp.v_px) < 1e-6 and (nj, ni) == (rows, cols))
        if aligned:
            plane = blend
        else:
            # out[j, i] = blend[j - v, i - u]: one constant shift per plane.
            plane = ndimage.affine_transform(
                blend, np.ones(2), offset=(-tp.v_px, -tp.u_px), output_shape=(nj, ni),
                order=1, mode="constant", cval=cval, prefilter=False,
            )
        if array.dtype.kind == "f":
            array[k] = plane
        else:
            info = np.iinfo(array.dtype)
            plane = np.rint(plane)
            outside = (plane < info.min) | (plane > info.max)
            if outside.any():
                clipped += int(np.count_nonzero(outside))
                np.clip(plane, info.min, info.max, out=plane)
            array[k] = plane
    return clipped
