"""The 1x1 convolution as one matrix product: chosen by the rule wherever it applies, no
copy of the input, values and all gradients as torch's, NaN and Inf included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.pointwise import conv_pointwise
from helpers import assert_matches_torch

ALL = [(1, convlib.conv1d, F.conv1d), (2, convlib.conv2d, F.conv2d), (3, convlib.conv3d, F.conv3d),
       (1, convlib.conv_transpose1d, F.conv_transpose1d),
       (2, convlib.conv_transpose2d, F.conv_transpose2d),
       (3, convlib.conv_transpose3d, F.conv_transpose3d)]


def applies(geometry, k):
    return convlib.backends.choose(geometry, kernel_size=k) == "pointwise"


def test_applies_only_to_one_tap_stride_1_unpadded():
    G = convlib.Geometry
    assert applies(G((1, 1), ((0, 0),) * 2, (2, 2)), (1, 1))  # dilation is irrelevant
    assert not applies(G((2, 1), ((0, 0),) * 2, (1, 1)), (1, 1))
    assert not applies(G((1, 1), ((1, 1), (0, 0)), (1, 1)), (1, 1))
    assert not applies(G((1, 1), ((0, 0),) * 2, (1, 1)), (1, 3))
    assert not applies(G((1, 1), ((0, 0),) * 2, (2, 2), 1, (1, 0)), (1, 1))


@pytest.mark.parametrize("d, ours, theirs", ALL, ids=[f"{f.__name__}" for _, f, _ in ALL])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_matches_torch_by_default(d, ours, theirs, groups):
    gen = torch.Generator().manual_seed(d + groups)
    x = torch.randn(3, 4, *(5, 4, 3)[:d], generator=gen, dtype=torch.float64)
    transposed, c_out_g = "transpose" in ours.__name__, 3
    shape = (4, c_out_g) if transposed else (groups * c_out_g, 4 // groups)
    w = torch.randn(*shape, *(1,) * d, generator=gen, dtype=torch.float64)
    b = torch.randn(groups * c_out_g, generator=gen, dtype=torch.float64)
    geometry = convlib.Geometry((1,) * d, ((0, 0),) * d, (1,) * d, groups)
    assert convlib.backends.choose(geometry, kernel_size=(1,) * d) == "pointwise"
    assert_matches_torch(ours, theirs, x, w, b, 1, 0, groups=groups)


def test_no_copy_of_the_input():
    """The product reads the input where it lies: the 1x1 convolution of a contiguous
    input is the weights times a view of it."""
    x = torch.randn(2, 8, 5, 6)
    w = torch.randn(3, 8, 1, 1)
    grouped = x.view(2, 1, 8, 30)
    assert grouped.data_ptr() == x.data_ptr()  # the operand is a view
    y = conv_pointwise(x, w, convlib.Geometry((1, 1), ((0, 0),) * 2, (1, 1)))
    torch.testing.assert_close(y, F.conv2d(x, w))


def test_nan_and_inf_land_as_torchs():
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    x[0, 1, 2, 3], x[1, 0, 0, 0] = float("inf"), float("nan")
    w = torch.randn(3, 4, 1, 1, dtype=torch.float64)
    results = []
    for conv in (convlib.conv2d, F.conv2d):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = conv(xx, ww)
        results.append((y, *torch.autograd.grad(y, (xx, ww), torch.ones_like(y))))
    assert results[0][0].isnan().any() and results[0][0].isinf().any()
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, equal_nan=True)
