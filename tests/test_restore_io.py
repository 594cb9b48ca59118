"""restore.py's readers: every listed format round-trips through a real file,
and the tile arithmetic covers the receptive field.  No Caffe needed here."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import (RSCIIO_DATA, micrograph, write_emd_h5py, write_emd_rsciio,
                              write_mrc, write_png, write_tiff)
from restoration.io import InputError, PixelSize, normalize_length_unit, read_image
from restoration.tiling import CONTEXT, plan_axis, plan_tiles, pad_widths_to_min, tiling_overhead


def only(path):
    f = read_image(path)
    assert len(f.signals) == 1
    return f.signals[0], f


# ------------------------------------------------------------------ TIFF
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32, np.int32,
                                   np.float32, np.float64])
def test_tiff_dtypes_round_trip(tmp_path, dtype):
    data = micrograph((33, 47), dtype=dtype)
    s, _ = only(write_tiff(tmp_path / "a.tif", data))
    assert s.data.dtype == dtype
    np.testing.assert_array_equal(s.data, data)
    assert s.stack_shape == () and s.pixel_size is None


def test_tiff_multipage_stack_every_frame(tmp_path):
    stack = np.stack([micrograph((30, 40), seed=k, dtype=np.uint16) for k in range(4)])
    s, _ = only(write_tiff(tmp_path / "s.tif", stack, photometric="minisblack"))
    assert s.stack_shape == (4,) and s.n_frames == 4
    np.testing.assert_array_equal(s.frames(), stack)


def test_tiff_imagej_pixel_size_in_nm(tmp_path):
    data = micrograph((30, 40))
    write_tiff(tmp_path / "ij.tif", data, imagej=True, resolution=(1 / 0.0125, 1 / 0.0125),
               metadata={"unit": "micron"})
    s, _ = only(tmp_path / "ij.tif")
    assert s.pixel_size.unit == "nm"
    assert s.pixel_size.x == pytest.approx(12.5) and s.pixel_size.y == pytest.approx(12.5)


def test_tiff_centimetre_resolution(tmp_path):
    data = micrograph((30, 40), dtype=np.uint16)
    write_tiff(tmp_path / "cm.tif", data, resolution=(1e8, 2e8), resolutionunit="CENTIMETER")
    s, _ = only(tmp_path / "cm.tif")
    assert s.pixel_size.x == pytest.approx(0.1) and s.pixel_size.y == pytest.approx(0.05)


def test_tiff_rgb_to_luminance_with_warning(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    s, f = only(write_tiff(tmp_path / "rgb.tif", rgb, photometric="rgb"))
    assert s.data.shape == (20, 30)
    np.testing.assert_allclose(s.data, 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-6)
    assert any("luminance" in w for w in f.warnings)


def test_tiff_grey_plus_alpha_drops_the_alpha(tmp_path):
    la = np.dstack([micrograph((20, 24), dtype=np.uint8), np.full((20, 24), 255, np.uint8)])
    s, f = only(write_tiff(tmp_path / "la.tif", la, photometric="minisblack", extrasamples=["unassalpha"]))
    np.testing.assert_array_equal(s.data, la[..., 0])
    assert "alpha channel dropped" in f.warnings


# ------------------------------------------------------------- PNG / JPEG
def test_png_8bit_and_16bit(tmp_path):
    d8 = micrograph((25, 31), dtype=np.uint8)
    s, _ = only(write_png(tmp_path / "a.png", d8))
    np.testing.assert_array_equal(s.data, d8)
    d16 = micrograph((25, 31), dtype=np.uint16)
    s, _ = only(write_png(tmp_path / "b.png", d16))
    np.testing.assert_array_equal(s.data, d16)


def test_png_rgb_luminance(tmp_path):
    rgb = np.dstack([np.full((10, 12), v, np.uint8) for v in (10, 20, 30)])
    s, f = only(write_png(tmp_path / "c.png", rgb))
    np.testing.assert_allclose(s.data, 0.299 * 10 + 0.587 * 20 + 0.114 * 30, rtol=1e-6)
    assert f.warnings


def test_png_beyond_pillows_pixel_cap(tmp_path, monkeypatch):
    """Pillow's decompression-bomb cap (~179 Mpx) would call a large valid PNG corrupt; the
    memory-limit check is the guard, and Pillow's own cap is back afterwards."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 = 4096 px: > 2 x cap, an error
    d = micrograph((64, 64), dtype=np.uint8)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(write_png(tmp_path / "big.png", d))
    s, _ = only(tmp_path / "big.png")
    np.testing.assert_array_equal(s.data, d)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_jpeg_grey(tmp_path):
    from PIL import Image

    d = micrograph((40, 48), dtype=np.uint8)
    Image.fromarray(d).save(tmp_path / "a.jpg", quality=95)
    s, _ = only(tmp_path / "a.jpg")
    assert s.data.shape == d.shape and s.data.dtype == np.uint8
    assert np.abs(s.data.astype(float) - d).mean() < 4  # lossy, but the same image


# ------------------------------------------------------------------ NPY
def test_npy_2d_and_3d_stack(tmp_path):
    d = micrograph((20, 22), dtype=np.float64)
    np.save(tmp_path / "a.npy", d)
    s, _ = only(tmp_path / "a.npy")
    np.testing.assert_array_equal(s.data, d)
    st = np.stack([d, 2 * d, 3 * d])
    np.save(tmp_path / "b.npy", st)
    s, _ = only(tmp_path / "b.npy")
    assert s.stack_shape == (3,)
    np.testing.assert_array_equal(s.frames()[2], 3 * d)


def test_npy_with_colour_last_is_luminance_and_a_stack_stays_a_stack(tmp_path):
    rgb = np.dstack([np.full((20, 22), v, np.uint8) for v in (10, 20, 30)])
    np.save(tmp_path / "rgb.npy", rgb)
    s, f = only(tmp_path / "rgb.npy")
    assert s.data.shape == (20, 22) and any("luminance" in w for w in f.warnings)
    np.testing.assert_allclose(s.data, 0.299 * 10 + 0.587 * 20 + 0.114 * 30, rtol=1e-6)
    np.save(tmp_path / "rgba_stack.npy", np.stack([np.dstack([rgb, rgb[..., :1]])] * 2))  # (2, 20, 22, 4)
    s, f = only(tmp_path / "rgba_stack.npy")
    assert s.data.shape == (2, 20, 22) and f.warnings
    frames = np.stack([micrograph((20, 22), seed=k) for k in range(3)])  # 3 frames, not colour (last axis 22)
    np.save(tmp_path / "three.npy", frames)
    s, f = only(tmp_path / "three.npy")
    np.testing.assert_array_equal(s.data, frames)
    assert not f.warnings


# ------------------------------------------------------------------ MRC
def test_mrc_image_and_stack_with_pixel_size(tmp_path):
    d = micrograph((30, 36))
    write_mrc(tmp_path / "a.mrc", d, voxel_size=(2.5, 2.5, 1.0))  # Å
    s, _ = only(tmp_path / "a.mrc")
    np.testing.assert_array_equal(s.data, d)
    assert s.pixel_size == PixelSize(pytest.approx(0.25), pytest.approx(0.25), "nm")
    st = np.stack([d, d + 1]).astype(np.int16)
    write_mrc(tmp_path / "b.mrcs", st)
    s, _ = only(tmp_path / "b.mrcs")
    assert s.stack_shape == (2,) and s.pixel_size is None
    np.testing.assert_array_equal(s.data, st)


def test_mrc_without_map_id_is_read_with_a_note_and_other_faults_still_refused(tmp_path):
    """Writers older than MRC2000 leave out the "MAP " ID and the machine stamp (header words
    53-54): read as the header says, with a note; a header with another fault is still refused."""
    d = micrograph((30, 36))
    write_mrc(tmp_path / "a.mrc", d, voxel_size=(2.5, 2.5, 1.0))
    raw = bytearray((tmp_path / "a.mrc").read_bytes())
    assert raw[208:212] == b"MAP "
    raw[208:212] = bytes(4)
    (tmp_path / "old.mrc").write_bytes(bytes(raw))
    s, f = only(tmp_path / "old.mrc")
    np.testing.assert_array_equal(s.data, d)
    assert s.pixel_size == PixelSize(pytest.approx(0.25), pytest.approx(0.25), "nm")
    assert any("without the 'MAP ' ID" in w for w in f.warnings)
    raw[212:216] = bytes(4)  # no machine stamp either
    (tmp_path / "older.mrc").write_bytes(bytes(raw))
    np.testing.assert_array_equal(only(tmp_path / "older.mrc")[0].data, d)
    raw[12:16] = (99).to_bytes(4, "little")  # mode 99: no MRC mode
    (tmp_path / "bad.mrc").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="mode '99'"):
        read_image(tmp_path / "bad.mrc")


# ------------------------------------------------------------------ EMD
def test_berkeley_emd_written_by_rosettasciio(tmp_path):
    d = micrograph((20, 24))
    s, _ = only(write_emd_rsciio(tmp_path / "r.emd", d, 0.05))
    np.testing.assert_array_equal(s.data, d)
    assert s.pixel_size.x == pytest.approx(0.05) and s.pixel_size.unit == "nm"


def test_berkeley_emd_written_by_h5py(tmp_path):
    d = micrograph((20, 24), dtype=np.uint16)
    s, _ = only(write_emd_h5py(tmp_path / "h.emd", d, 0.02))
    np.testing.assert_array_equal(s.data, d)
    assert s.pixel_size.y == pytest.approx(0.02)


def test_berkeley_emd_shipped_example():
    s, _ = only(RSCIIO_DATA / "emd" / "example_image.emd")
    assert s.data.shape == (3, 3) and s.data.dtype == np.int32


def test_velox_emd_stack_real_file():
    s, _ = only(RSCIIO_DATA / "emd" / "fei_example_tem_stack.emd")
    assert s.stack_shape == (2,) and s.data.shape[-2:] == (3, 3)
    assert s.pixel_size.unit == "nm" and s.pixel_size.x == pytest.approx(8.1729e-3, rel=1e-4)


# ----------------------------------------------------------- DM3 / DM4 / SER
def test_dm3_real_stem_image():
    s, _ = only(RSCIIO_DATA / "digitalmicrograph" / "2D" / "test_STEM_image.dm3")
    assert s.data.shape == (68, 68) and s.data.dtype == np.uint32
    assert s.data.std() > 0
    assert s.pixel_size.unit == "nm" and s.pixel_size.x == pytest.approx(0.248538, rel=1e-5)


def test_dm4_real_float_and_rgb():
    s, _ = only(RSCIIO_DATA / "digitalmicrograph" / "2D" / "test-2.dm4")
    assert s.data.shape == (2, 2) and s.data.dtype == np.float32
    s, f = only(RSCIIO_DATA / "digitalmicrograph" / "2D" / "test-8.dm4")
    assert s.data.shape == (2, 2) and any("luminance" in w for w in f.warnings)


def test_ser_real_file_matches_reference_array():
    s, _ = only(RSCIIO_DATA / "tia" / "old" / "64x64_TEM_images_acquire_1.ser")
    ref = np.load(RSCIIO_DATA / "tia" / "old" / "64x64_TEM_images_acquire.npy")
    np.testing.assert_array_equal(s.data, ref)
    assert s.pixel_size.x == pytest.approx(6.2818336, rel=1e-6) and s.pixel_size.unit == "nm"


# ------------------------------------------------------------ helpers
def test_length_units():
    assert normalize_length_unit(2, 2, "Å") == PixelSize(pytest.approx(0.2), pytest.approx(0.2), "nm")
    assert normalize_length_unit(1, 1, "pm").x == pytest.approx(1e-3)
    assert normalize_length_unit(1, 1, "\\u00B5m").x == pytest.approx(1000)
    assert normalize_length_unit(1, 1, "1/nm") == PixelSize(1.0, 1.0, "1/nm")
    assert normalize_length_unit(1, 1, "pixel") is None
    assert normalize_length_unit(0, 1, "nm") is None


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "a.xyz"
    p.write_bytes(b"abc")
    with pytest.raises(InputError, match="unsupported"):
        read_image(p)


# ------------------------------------------------------------ tiling
@pytest.mark.parametrize("length", [2, 49, 64, 65, 111, 192, 193, 500, 1001])
@pytest.mark.parametrize("tile", [0, 49, 64, 100, 192])
def test_plan_axis_covers_with_context(length, tile):
    spans = plan_axis(length, tile)
    assert spans[0].core_start == 0 and spans[-1].core_stop == length
    for a, b in zip(spans, spans[1:]):
        assert a.core_stop == b.core_start
    for s in spans:
        assert 0 <= s.win_start <= s.core_start < s.core_stop <= s.win_stop <= length
        assert s.win_stop - s.win_start == (length if tile == 0 or tile >= length else tile)
        assert s.win_start == 0 or s.core_start - s.win_start >= CONTEXT
        assert s.win_stop == length or s.win_stop - s.core_stop >= CONTEXT


def test_plan_rejects_tile_without_room_for_context():
    with pytest.raises(ValueError):
        plan_axis(100, 2 * CONTEXT)


def test_tiles_and_padding_arithmetic():
    assert len(plan_tiles((100, 90), 64)) == len(plan_axis(100, 64)) * len(plan_axis(90, 64))
    assert tiling_overhead((192, 192), 192) == 1.0
    assert 1.5 < tiling_overhead((8192, 8192), 192) < 2.0
    assert pad_widths_to_min((10, 60)) == ((19, 20), (0, 0))
