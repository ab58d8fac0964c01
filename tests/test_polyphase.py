"""The polyphase decomposition of strided convolutions, forced, against torch: values and
all gradients (the weight gradient is polyphase too), in chunks, and NaN/Inf placement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.polyphase import phases
from helpers import CONVS, assert_matches_torch
from test_functional import conv_case


def test_phases_of_a_stride_2_kernel_of_3():
    """Taps 0 and 2 read phase 0 (shifts 0 and 1), tap 1 reads phase 1 (shift 0)."""
    layout = phases((3,), (2,), (1,), (4,))
    assert layout.residues == ((0,), (1,))
    assert layout.taps == ((0, (0,)), (1, (0,)), (0, (1,)))
    assert layout.grid == (5,)


@pytest.mark.parametrize("d, ours, theirs", CONVS, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("groups", ["1", "2", "depthwise"])
def test_forced_matches_torch(d, ours, theirs, stride, padding, dilation, groups):
    g, c_in_g, c_out_g = {"1": (1, 3, 2), "2": (2, 2, 3), "depthwise": (4, 1, 2)}[groups]
    x, w, b = conv_case(d, "cpu", g, c_in_g, c_out_g, k=(3, 2, 3), n=(9, 7, 6))
    geometry = convlib.Geometry((stride,) * d, ((padding, padding),) * d, (dilation,) * d, g)
    with convlib.backends.use("polyphase"):
        assert convlib.backends.choose(geometry) == "polyphase"
        assert_matches_torch(ours, theirs, x, w, b, stride, padding, dilation, g)


@pytest.mark.parametrize("groups", [1, 2])
def test_forced_in_chunks_with_a_short_last_one(groups, monkeypatch):
    x, w, b = conv_case(2, "cpu", groups, 3, 2, k=(3, 3), n=(9, 8), batch=5)
    monkeypatch.setattr(convlib.polyphase, "CHUNK_BYTES", 2 * x[0].numel() * x.element_size())
    with convlib.backends.use("polyphase"):
        assert_matches_torch(convlib.conv2d, F.conv2d, x, w, b, 2, 1, 1, groups)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_nan_and_inf_land_as_torchs(value):
    """The forward makes the definition's products and no others that are kept: a
    non-finite input lands where torch's does. The weight gradient's run-on products would
    multiply it by zeros, so there the rule falls back (and the gradients match too)."""
    x, w, _ = conv_case(2, "cpu", 1, 3, 2, k=(3, 3), n=(9, 8), batch=2, bias=False)
    x[0, 1, 4, 5] = value
    x[1, 0, 8, 7] = value  # the last row and column: read by the strided windows or not
    results = []
    for conv in (convlib.conv2d, F.conv2d):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        with convlib.backends.use("polyphase"):
            y = conv(xx, ww, None, 2, 1)
            results.append((y, *torch.autograd.grad(y, (xx, ww), torch.ones_like(y))))
    assert results[0][0].isnan().any() or results[0][0].isinf().any()
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, equal_nan=True)
    with convlib.backends.use("polyphase"):
        geometry = convlib.Geometry((2, 2), ((1, 1),) * 2, (1, 1))
        assert convlib.backends.choose(geometry, lambda: False, product="weight_grad") == "im2col"
