"""The sub-pixel decomposition of strided transposed convolutions, forced, against torch:
values and all gradients (the input gradient of a strided convolution is sub-pixel too),
the phases' taps, and the non-finite fallback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.subpixel import conv_transpose_subpixel, phase_taps
from helpers import CONV_TRANSPOSES as TRANSPOSES
from helpers import CONVS, assert_matches_torch


def test_phase_taps_of_stride_2():
    """Kernel 4, stride 2: phase 0 gets taps 0 and 2, phase 1 taps 1 and 3, both with
    shifts one apart; with dilation 3 every other tap again, three positions apart."""
    assert phase_taps(4, 2, 1, 0) == (slice(0, 4, 2), 0, 1)
    assert phase_taps(4, 2, 1, 1) == (slice(1, 4, 2), 0, 1)
    assert phase_taps(3, 2, 3, 1) == (slice(1, 3, 2), 1, 3)  # tap 1 at 3 = 1 + 2 * 1
    assert phase_taps(1, 3, 1, 2) is None  # kernel shorter than the stride: no tap


def test_phases_partition_the_taps():
    """Every tap writes to exactly one phase, at the shift its position says."""
    for k, s, dl in [(4, 2, 1), (5, 3, 2), (3, 2, 2), (7, 4, 3)]:
        seen = []
        for r in range(s):
            found = phase_taps(k, s, dl, r)
            if found:
                taps, shift, step = found
                for j, a in enumerate(range(k)[taps]):
                    assert a * dl == r + s * (shift + j * step)
                    seen.append(a)
        assert sorted(seen) == list(range(k))


def _case(d, g, c_in_g, c_out_g, k, n, batch=2):
    gen = torch.Generator().manual_seed(d * 10 + g)
    y = torch.randn(batch, g * c_in_g, *n[:d], generator=gen, dtype=torch.float64)
    w = torch.randn(g * c_in_g, c_out_g, *k[:d], generator=gen, dtype=torch.float64)
    b = torch.randn(g * c_out_g, generator=gen, dtype=torch.float64)
    return y, w, b


@pytest.mark.parametrize("d, ours, theirs", TRANSPOSES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("groups", ["1", "2", "depthwise"])
def test_forced_matches_torch(d, ours, theirs, stride, padding, dilation, groups):
    g, c_in_g, c_out_g = {"1": (1, 3, 2), "2": (2, 2, 3), "depthwise": (4, 1, 1)}[groups]
    y, w, b = _case(d, g, c_in_g, c_out_g, k=(3, 4, 2), n=(5, 4, 3))
    op = stride - 1
    geometry = convlib.Geometry((stride,) * d, ((padding, padding),) * d, (dilation,) * d, g)
    with convlib.backends.use("subpixel"):
        assert convlib.backends.choose(geometry, product="transpose") == "subpixel"
        assert_matches_torch(ours, theirs, y, w, b, stride, padding, op, g, dilation)


@pytest.mark.parametrize("d, ours, theirs", CONVS, ids=["1d", "2d", "3d"])
def test_input_gradient_of_a_strided_convolution(d, ours, theirs):
    """The backward of a stride-2 convolution is a stride-2 transpose: sub-pixel."""
    gen = torch.Generator().manual_seed(d)
    x = torch.randn(2, 4, *(7, 6, 5)[:d], generator=gen, dtype=torch.float64)
    w = torch.randn(4, 2, *(3, 2, 3)[:d], generator=gen, dtype=torch.float64)
    with convlib.backends.use("subpixel"):
        assert_matches_torch(ours, theirs, x, w, None, 2, 1, 1, 2)


def test_kernel_equal_to_stride_is_one_product_per_phase():
    """UNet's 2x2 stride-2 layer: each of the 4 phases has one tap, and the result is
    the four matrix products ``M_a^T y`` interleaved."""
    y, w, _ = _case(2, 1, 3, 2, k=(2, 2), n=(4, 5))
    geometry = convlib.Geometry((2, 2), ((0, 0),) * 2, (1, 1), 1, (0, 0))
    z = conv_transpose_subpixel(y, w, geometry)
    for a in range(2):
        for b in range(2):
            expect = torch.einsum("io,nihw->nohw", w[:, :, a, b], y)
            torch.testing.assert_close(z[:, :, a::2, b::2], expect, rtol=0, atol=1e-12)
    torch.testing.assert_close(z, F.conv_transpose2d(y, w, stride=2))


def test_non_finite_values_fall_back():
    """Its stride-1 pieces run on over zeros: with Inf in the weights the rule falls back to
    im2col, and the result has NaN/Inf where torch's has."""
    y, w, _ = _case(2, 1, 3, 2, k=(3, 3), n=(4, 5))
    w[0, 1, 1, 2] = float("inf")
    geometry = convlib.Geometry((2, 2), ((1, 1),) * 2, (1, 1), 1, (1, 1))
    with convlib.backends.use("subpixel"):
        assert convlib.backends.choose(geometry, lambda: False, product="transpose") == "im2col"
        ours = convlib.conv_transpose2d(y, w, None, 2, 1, 1)
    torch.testing.assert_close(ours, F.conv_transpose2d(y, w, None, 2, 1, 1), equal_nan=True)
