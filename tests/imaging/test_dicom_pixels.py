"""Pixel decoding: value conversion, transfer syntaxes, and the errors of broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from surgplan.core.errors import (
    DicomImportError,
    MissingPixelDataError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedCodecError,
)
from surgplan.imaging.dicom import pixels
from surgplan.imaging.dicom.headers import PixelFormat, SliceHeader
from surgplan.imaging.dicom.index import index_files
from surgplan.imaging.dicom.reader import load_series
from tests.imaging import dicom_synth as syn
from tests.imaging.test_dicom_index import pydicom_file


def load_one(paths):
    idx = index_files(paths)
    assert idx.skipped == [] and len(idx.series) == 1, (idx.skipped, idx.series)
    return load_series(idx.series[0])


def header_for(path: Path) -> SliceHeader:
    """A SliceHeader built by hand, for files the index (rightly) refuses."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    meta = getattr(ds, "file_meta", None)
    return SliceHeader(
        path=str(path), frame_index=None, position_lps=(0, 0, 0), orientation=(1, 0, 0, 0, 1, 0),
        pixel_spacing_mm=(1, 1), slice_thickness_mm=None, rescale_slope=1.0,
        rescale_intercept=0.0, instance_number=1, acquisition_number="", echo_number="",
        pixel=PixelFormat(
            rows=int(ds.get("Rows", 0) or 0), columns=int(ds.get("Columns", 0) or 0),
            bits_allocated=16, bits_stored=16, pixel_representation=0,
            photometric="MONOCHROME2", samples_per_pixel=1,
            transfer_syntax_uid=str(meta.get("TransferSyntaxUID", "")) if meta else "",
        ),
    )


def test_ct_slope_and_intercept_give_rounded_int16_hu(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.integers(-2000, 3000, size=(24, 20)) * 0.5
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0), values=values, slope=0.5,
                           intercept=-1000.0)
    vol = load_one([path])
    assert vol.array.dtype == np.int16
    assert np.array_equal(vol.array[0], np.rint(values))


def test_mr_with_a_scale_factor_loads_as_float32_real_values(tmp_path):
    values = np.arange(24 * 20, dtype=float).reshape(24, 20) * 2.5
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0), values=values, slope=2.5,
                           intercept=0.0, modality="MR", signed=False)
    vol = load_one([path])
    assert vol.array.dtype == np.float32
    assert np.allclose(vol.array[0], values)


@pytest.mark.parametrize("signed, bits, top, dtype", [
    (False, 12, 4095, np.int16),
    (False, 16, 65535, np.uint16),
    (True, 16, 32767, np.int16),
])
def test_signed_and_unsigned_mr_keep_their_stored_integers(tmp_path, signed, bits, top, dtype):
    values = np.linspace(-1000 if signed else 0, top, 24 * 20).round().reshape(24, 20)
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0), values=values, intercept=0.0,
                           modality="MR", signed=signed, bits_stored=bits)
    vol = load_one([path])
    assert vol.array.dtype == dtype
    assert np.array_equal(vol.array[0], values)


def test_bits_above_bits_stored_are_masked(tmp_path):
    values = np.arange(24 * 20).reshape(24, 20) % 4096
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0), values=values, intercept=0.0,
                           modality="MR", signed=False, bits_stored=12)

    def add_overlay_bits(ds):
        raw = np.frombuffer(ds.PixelData, np.uint16) | 0xF000
        ds.PixelData = raw.tobytes()

    syn.map_slices([path], add_overlay_bits)
    vol = load_one([path])
    assert np.array_equal(vol.array[0], values)


def test_signed_12_bit_values_are_sign_extended(tmp_path):
    stored = np.full((24, 20), -5, np.int16) & 0x0FFF  # 12-bit two's complement, top bits 0
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0), values=np.zeros((24, 20)),
                           intercept=0.0, bits_stored=12)

    def set_raw(ds):
        ds.PixelData = stored.astype(np.uint16).tobytes()

    syn.map_slices([path], set_raw)
    vol = load_one([path])
    assert np.all(vol.array == -5)


def test_monochrome1_mr_is_inverted_but_ct_hu_are_kept(tmp_path):
    values = np.arange(24 * 20).reshape(24, 20)
    mr = syn.write_slice(tmp_path / "mr.dcm", position=(0, 0, 0), values=values, intercept=0.0,
                         modality="MR", signed=False, bits_stored=12, photometric="MONOCHROME1")
    vol = load_one([mr])
    assert np.array_equal(vol.array[0], 4095 - values)
    assert any("inverted" in w.message for w in vol.warnings)
    ct = syn.write_slice(tmp_path / "ct.dcm", position=(0, 0, 0), values=values - 500,
                         photometric="MONOCHROME1")
    vol = load_one([ct])
    assert np.array_equal(vol.array[0], values - 500)
    assert any("Hounsfield units" in w.message for w in vol.warnings)


def test_ct_values_beyond_int16_are_clipped_with_a_warning(tmp_path):
    values = np.full((24, 20), 1000.0)
    values[0, :3] = 40000
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0), values=values, intercept=0.0,
                           signed=False)
    vol = load_one([path])
    assert vol.array[0, 0, 0] == 32767 and vol.array[0, 5, 5] == 1000
    msg = next(w.message for w in vol.warnings if w.code == "clipped-values")
    assert msg.startswith("3 voxel values")


def _encoder_available(uid) -> bool:
    try:
        return pydicom.pixels.get_encoder(uid).is_available
    except Exception:
        return False


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_synthetic_slices_decode_identically(tmp_path, syntax):
    if not _encoder_available(syntax):
        pytest.skip(f"no installed encoder writes {syntax.name}")
    positions = syn.axial_positions(3)
    size = dict(rows=64, cols=64)  # JPEG 2000 needs room for its default 6 resolutions
    plain = load_one(syn.write_stack(tmp_path / "plain", positions, **size))
    packed = load_one(syn.write_stack(tmp_path / "packed", positions, transfer_syntax=syntax,
                                      **size))
    assert np.array_equal(plain.array, packed.array)


def test_deflated_transfer_syntax_decodes(tmp_path):
    positions = syn.axial_positions(2)
    plain = load_one(syn.write_stack(tmp_path / "plain", positions))
    paths = syn.write_stack(tmp_path / "dfl", positions)

    def deflate(ds):
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian

    syn.map_slices(paths, deflate)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert np.array_equal(load_one(paths).array, plain.array)


def test_pydicom_mr_small_in_every_transfer_syntax_decodes_identically():
    reference = load_one([pydicom_file("MR_small.dcm")]).array
    for name in ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
                 "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_jp2klossless.dcm"]:
        arr = load_one([pydicom_file(name)]).array
        assert np.array_equal(arr, reference), name


def test_missing_transfer_syntax_is_inferred_for_native_pixel_data(tmp_path):
    path = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0))
    ds = pydicom.dcmread(path)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    expected = syn.ramp_hu(syn.pixel_centres((0, 0, 0), (1, 0, 0, 0, 1, 0), 24, 20, (1, 1)))
    vol = load_one([path])
    assert np.max(np.abs(vol.array[0] - expected)) <= 0.5 + 1e-6


def test_missing_decoder_raises_unsupported_codec_naming_file_syntax_and_fix(tmp_path,
                                                                             monkeypatch):
    class NoDecoder:
        is_available = False
        missing_dependencies = ["pylibjpeg-openjpeg - requires pylibjpeg-openjpeg>=2.0"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoDecoder())
    path = shutil.copy(pydicom_file("MR_small_jp2klossless.dcm"), tmp_path / "j2k.dcm")
    idx = index_files([Path(path)])
    with pytest.raises(UnsupportedCodecError,
                       match=r"j2k\.dcm.*JPEG 2000 Image Compression \(Lossless Only\) "
                             r"\(1\.2\.840\.10008\.1\.2\.4\.90\).*pip install"):
        load_series(idx.series[0])


def test_truncated_pixel_data_raises_truncated_file_error():
    path = pydicom_file("MR_truncated.dcm")
    with pytest.raises(TruncatedFileError, match=r"MR_truncated\.dcm is truncated.*copy"):
        pixels.decode_stored(header_for(path))


def test_file_truncated_after_indexing_fails_the_load_naming_it(tmp_path):
    paths = syn.write_stack(tmp_path, syn.axial_positions(3))
    idx = index_files(paths)
    syn.truncate(paths[1], 0.7)
    with pytest.raises(TruncatedFileError, match=r"IM0001\.dcm is truncated"):
        load_series(idx.series[0])


def test_no_meta_file_is_not_dicom_for_the_decoder():
    with pytest.raises(NotDicomError, match=r"no_meta\.dcm is not a DICOM file"):
        pixels.decode_stored(header_for(pydicom_file("no_meta.dcm")))


def test_header_without_pixel_data_raises_missing_pixel_data(tmp_path):
    sr = syn.write_sr(tmp_path / "sr.dcm")
    with pytest.raises(MissingPixelDataError, match=r"sr\.dcm has no pixel data.*re-export"):
        pixels.decode_stored(header_for(sr))


def test_meta_missing_transfer_syntax_pydicom_file_gives_a_clear_error():
    # Only a PixelData element, no Rows/Columns: the index skips it with a reason,
    # and decoding it directly fails naming the file.
    path = pydicom_file("meta_missing_tsyntax.dcm")
    assert "no image attributes" in index_files([path]).skipped[0].reason
    with pytest.raises(DicomImportError, match="meta_missing_tsyntax.dcm"):
        pixels.decode_stored(header_for(path))


def test_bad_vr_rt_dose_is_skipped_not_raised():
    idx = index_files([pydicom_file("badVR.dcm")])
    assert idx.series == [] and "RT dose" in idx.skipped[0].reason
