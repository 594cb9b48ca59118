"""The ``layers`` engine (restoration.stream): Caffe's layers one at a time over
small blocks must give the whole deploy net's output, in less memory."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import DEPLOY, DEPLOY_LINEAR, make_weights, micrograph, net_layers, rel_err
from restoration.engine import (
    IMAGE_BYTES_PER_PIXEL, MEMORY_BUDGET, MIN_STREAM_WINDOW, STREAM_WINDOW, Restorer, auto_window, load_net,
)
from restoration.reference import PAPER_LAYERS, forward_reference
from restoration.stream import MIN_BLOCK_ROWS, LayerStream, block_grid, block_net_text, chain_steps
from restoration.tiling import CONTEXT, plan_tiles, tiling_overhead
from stem_restore.normalize import denormalize, normalize


def test_deploy_net_is_a_chain():
    steps = chain_steps(DEPLOY)
    assert [(s.c_in, s.c_out, s.kernel) for s in steps] == list(PAPER_LAYERS)
    assert [s.name for s in steps] == [f"conv{i}" for i in range(1, 13)]
    assert all(s.relu_slope == 0.0 and s.bias and s.pad == 2 for s in steps)
    linear = chain_steps(DEPLOY_LINEAR)
    assert linear[-1].relu_slope is None and all(s.relu_slope == 0.0 for s in linear[:-1])


@pytest.mark.parametrize("old,new", [
    ("stride: 1", "stride: 2"),                                   # not same-size
    ("pad: 2 ", "pad: 1 "),                                       # output shrinks
    ("kernel_size: 5", "kernel_size: 5\n    dilation: 2"),        # dilated
    ("kernel_size: 5", "kernel_size: 5\n    group: 2"),           # grouped
    ('type: "ReLU"', 'type: "Sigmoid"'),                          # another layer type
    ("dim: 1 dim: 1", "dim: 1 dim: 3"),                           # 3-channel input
    ('"conv12"', '"out"'),                                        # output blob renamed
])
def test_non_chains_are_refused(tmp_path, old, new):
    text = DEPLOY.read_text()
    assert old in text, old
    path = tmp_path / "variant.prototxt"
    path.write_text(text.replace(old, new, 1 if old != '"conv12"' else -1))
    assert chain_steps(path) is None


def test_block_net_is_valid_caffe(caffe, tmp_path):
    step = chain_steps(DEPLOY)[1]
    path = tmp_path / "block.prototxt"
    path.write_text(block_net_text(step, rows=7, cols=33))
    block = caffe.Net(str(path), caffe.TEST)
    assert block.blobs["data"].data.shape == (1, 64, 11, 37)  # 7 x 33 + a 2-px halo on every side
    assert block.blobs["out"].data.shape == (1, 64, 7, 33)    # no padding by Caffe: the halo is the context


@pytest.mark.parametrize("h,w,pixels,cols", [(61, 75, 600, 384), (97, 131, 1000, 40), (5, 7, 1024, 384),
                                             (1, 1, 1024, 384), (2048, 1677, 1024, 384), (3, 1000, 10, 384)])
def test_block_grid_covers_the_window(h, w, pixels, cols):
    rows, columns = block_grid(h, w, pixels, cols)
    assert rows[0] == 0 and rows[-1] == h and columns[0] == 0 and columns[-1] == w
    heights, widths = np.diff(rows), np.diff(columns)
    assert heights.min() >= 1 and widths.min() >= 1
    assert widths.max() <= cols and widths.max() - widths.min() <= 1      # even columns
    assert heights.max() - heights.min() <= 1                             # even rows
    assert heights.max() <= max(MIN_BLOCK_ROWS, pixels // widths.max())   # about `pixels` per block


@pytest.mark.parametrize("shape,pixels,cols", [((61, 75), 600, 384), ((97, 131), 1000, 40),
                                               ((50, 52), 1 << 20, 384), ((60, 300), 200, 16)])
def test_stream_equals_whole_net(net, shape, pixels, cols):
    """Many blocks (in rows, columns, both, uneven), and one block: the same as Caffe's whole net."""
    img = micrograph(shape, seed=2)
    whole = Restorer(net, tile=0).restore(img).restored
    stream = LayerStream.from_net(DEPLOY, net, block_pixels=pixels, max_block_cols=cols)
    out = Restorer(net, tile=0, stream=stream).restore(img).restored
    assert out.std() > 0.01 * img.std()
    assert rel_err(out, whole) < 1e-6
    xn, stats = normalize(img)
    assert rel_err(out, denormalize(forward_reference(xn, net_layers(net)), stats)) < 1e-4


def test_stream_linear_output(caffe, tmp_path):
    w = make_weights(caffe, tmp_path / "lin.caffemodel", seed=5, proto=DEPLOY_LINEAR)
    net = load_net(DEPLOY_LINEAR, w)
    img = micrograph((57, 64), seed=3)
    stream = LayerStream.from_net(DEPLOY_LINEAR, net, block_pixels=500, max_block_cols=30)
    out = Restorer(net, tile=0, stream=stream).restore(img).restored
    xn, stats = normalize(img)
    ref = denormalize(forward_reference(xn, net_layers(net), final_relu=False), stats)
    assert rel_err(out, ref) < 1e-4


@pytest.mark.parametrize("tile", [64, (60, 90), (100, 55)])
def test_stream_windows_equal_whole(net, tile):
    img = micrograph((130, 150), seed=4, dtype=np.uint16)
    stream = LayerStream.from_net(DEPLOY, net, block_pixels=2000)
    whole = Restorer(net, tile=0, stream=stream).restore(img)
    windowed = Restorer(net, tile=tile, stream=stream).restore(img)
    assert windowed.n_tiles > 1
    assert rel_err(windowed.restored, whole.restored) < 1e-5


def test_rectangular_tiles_cover_the_image():
    shape = (130, 150)
    seen = np.zeros(shape, int)
    for r, c in plan_tiles(shape, (60, 90)):
        assert r.win_stop - r.win_start == 60 and c.win_stop - c.win_start == 90
        seen[r.core_start:r.core_stop, c.core_start:c.core_stop] += 1
    assert np.all(seen == 1)


def test_from_files_engines(weights, tmp_path):
    assert Restorer.from_files(DEPLOY, weights).engine == "layers"  # auto on CPU
    assert Restorer.from_files(DEPLOY, weights, engine="net").engine == "net"
    with pytest.raises(ValueError, match="engine"):
        Restorer.from_files(DEPLOY, weights, engine="fast")
    pooled = tmp_path / "pooled.prototxt"
    pooled.write_text(DEPLOY.read_text().replace('type: "ReLU"', 'type: "Sigmoid"', 1))
    assert Restorer.from_files(pooled, weights).engine == "net"  # not a chain: whole net
    with pytest.raises(ValueError, match="not a plain chain"):
        Restorer.from_files(pooled, weights, engine="layers")


@pytest.mark.parametrize("shape", [(100, 70), (1024, 1024), (3000, 2000), (4096, 4096), (8192, 8192),
                                   (1000, 9000), (20000, 20000)])
def test_auto_window(net, shape):
    stream = LayerStream.from_net(DEPLOY, net)
    th, tw = auto_window(shape, stream)
    assert min(shape[0], MIN_STREAM_WINDOW) <= th <= min(shape[0], STREAM_WINDOW)
    assert min(shape[1], MIN_STREAM_WINDOW) <= tw <= min(shape[1], STREAM_WINDOW)
    image = IMAGE_BYTES_PER_PIXEL * shape[0] * shape[1]
    if image < MEMORY_BUDGET / 2:  # the budget can be met: it is
        used = image + th * tw * LayerStream.bytes_per_pixel() + stream.block_bytes()
        assert used <= MEMORY_BUDGET
        assert tiling_overhead(shape, (th, tw), CONTEXT) < 1.06  # windows split the axes evenly
    if max(shape) <= 2048:
        assert (th, tw) == shape  # one window: no overlap at all
