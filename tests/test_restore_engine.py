"""pycaffe forward pass of restore.py: equals an independent NumPy forward pass,
tiled == whole, any size (odd, tiny), output in the input's units."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import DEPLOY_LINEAR, make_weights, micrograph, net_layers, rel_err
from restoration.engine import DEFAULT_TILE, MIN_AUTO_TILE, Restorer, auto_tile, load_net
from restoration.reference import PAPER_LAYERS, forward_reference, macs_per_pixel
from stem_restore.normalize import denormalize, normalize


def reference_restore(net, image, final_relu=True):
    xn, stats = normalize(image)
    return denormalize(forward_reference(xn, net_layers(net), final_relu=final_relu), stats)


def test_deploy_net_is_the_papers(net):
    shapes = [tuple(net.params[n][0].data.shape) for n in net.params]
    assert shapes == [(co, ci, k, k) for ci, co, k in PAPER_LAYERS]
    n_params = sum(net.params[n][0].data.size + net.params[n][1].data.size for n in net.params)
    assert n_params == 1_027_905
    assert macs_per_pixel(PAPER_LAYERS) == 1_027_200


def test_pycaffe_equals_numpy_reference(net):
    img = micrograph((61, 75), seed=1)
    out = Restorer(net, tile=0).restore(img).restored
    ref = reference_restore(net, img)
    assert out.dtype == np.float32 and out.shape == img.shape
    assert out.std() > 0.01 * img.std()  # not a dead (all-ReLU-zero) net
    assert rel_err(out, ref) < 1e-4


def test_linear_output_net_equals_reference(caffe, tmp_path):
    w = make_weights(caffe, tmp_path / "lin.caffemodel", seed=5, proto=DEPLOY_LINEAR)
    net = load_net(DEPLOY_LINEAR, w)
    img = micrograph((50, 52), seed=2)
    out = Restorer(net, tile=0).restore(img).restored
    assert rel_err(out, reference_restore(net, img, final_relu=False)) < 1e-4


@pytest.mark.parametrize("shape,tile", [((100, 90), 64), ((97, 131), 72), ((130, 70), 100)])
def test_tiled_equals_whole(net, shape, tile):
    img = micrograph(shape, seed=4, dtype=np.uint16)
    whole = Restorer(net, tile=0).restore(img)
    tiled = Restorer(net, tile=tile).restore(img)
    assert tiled.n_tiles > 1 and whole.n_tiles == 1
    assert rel_err(tiled.restored, whole.restored) < 1e-5


def test_too_little_overlap_would_differ(net):
    """Control: with 8 px of context instead of 24 the tiles do NOT match,
    so the test above really checks the overlap."""
    img = micrograph((100, 90), seed=4)
    whole = Restorer(net, tile=0).restore(img).restored
    short = Restorer(net, tile=64, context=8).restore(img).restored
    assert rel_err(short, whole) > 1e-3


@pytest.mark.parametrize("shape", [(2, 2), (5, 3), (17, 60), (48, 48), (49, 49), (51, 33)])
def test_small_and_odd_sizes(net, shape):
    img = micrograph((max(shape[0], 8), max(shape[1], 8)), seed=6)[: shape[0], : shape[1]].copy()
    img[0, 0] += 7.0  # never flat
    out = Restorer(net).restore(img).restored
    assert out.shape == shape and np.all(np.isfinite(out))
    if min(shape) >= 49:
        assert rel_err(out, reference_restore(net, img)) < 1e-4
    else:  # padded symmetrically to 49 px, restored, cropped back
        pads = [((49 - n) // 2, 49 - n - (49 - n) // 2) if n < 49 else (0, 0) for n in shape]
        padded = np.pad(img, pads, mode="symmetric")
        xn, stats = normalize(img)  # statistics of the image itself, not of the padding
        ref = denormalize(forward_reference(normalize(padded, stats)[0], net_layers(net)), stats)
        ref = ref[pads[0][0]: pads[0][0] + shape[0], pads[1][0]: pads[1][0] + shape[1]]
        assert rel_err(out, ref) < 1e-4


def test_output_in_input_units(net):
    """Normalisation is inverted: restore(a x + b) == a restore(x) + b for a > 0."""
    img = micrograph((60, 64), seed=7).astype(np.float64)
    r = Restorer(net)
    base = r.restore(img).restored.astype(np.float64)
    scaled = r.restore(250.0 * img + 1.0e4).restored.astype(np.float64)
    np.testing.assert_allclose(scaled, 250.0 * base + 1.0e4, rtol=1e-5, atol=1e-3 * 250 * img.std())


def test_deterministic(net):
    img = micrograph((55, 66), seed=8)
    a = Restorer(net, tile=64).restore(img).restored
    b = Restorer(net, tile=64).restore(img).restored
    assert np.array_equal(a, b)


def test_auto_tile_bounds_memory():
    assert auto_tile((1024, 1024)) == DEFAULT_TILE
    t = auto_tile((8192, 8192))
    assert MIN_AUTO_TILE <= t < DEFAULT_TILE
    assert auto_tile((10**5, 10**5)) == MIN_AUTO_TILE
