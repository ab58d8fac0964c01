"""Upsampling matrices and kernels against F.interpolate."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.upsampling import upsample_matrix, upsampling_kernel

MODES = [("nearest", (5,)), ("nearest", (3, 4)), ("nearest", (2, 3, 2)),
         ("linear", (5,)), ("bilinear", (3, 4)), ("trilinear", (2, 3, 2))]
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@pytest.mark.parametrize("mode,size", MODES)
@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_upsample_matrix_equals_interpolate(mode, size, s):
    y = torch.randn(1, 1, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
    U = upsample_matrix(size, s, mode, dtype=torch.float64)
    expected = F.interpolate(y, scale_factor=s, mode=mode)
    torch.testing.assert_close(U @ y.flatten(), expected.flatten())


@pytest.mark.parametrize("mode,size", MODES)
@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_the_transposed_convolution_agrees_away_from_the_border(mode, size, s):
    d = len(size)
    y = torch.randn(1, 1, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
    kernel, padding = upsampling_kernel(s, mode, d=d, dtype=torch.float64)
    z = CONV_T[d](y, kernel[None, None], stride=s, padding=padding)
    expected = F.interpolate(y, scale_factor=s, mode=mode)
    assert z.shape == expected.shape
    b = 0 if mode == "nearest" else s // 2
    inner = (..., *(slice(b, z.shape[2 + j] - b) for j in range(d)))
    torch.testing.assert_close(z[inner], expected[inner])
    if b:  # and at the border it reads zeros where interpolation repeats the edge
        assert not torch.allclose(z, expected)


def test_bilinear_kernel_for_two_is_one_three_three_one():
    kernel, padding = upsampling_kernel(2, "linear", dtype=torch.float64)
    assert (kernel * 4).tolist() == [1.0, 3.0, 3.0, 1.0] and padding == 1
    k2, _ = upsampling_kernel(2, "bilinear", dtype=torch.float64)
    torch.testing.assert_close(k2, torch.outer(kernel, kernel), rtol=0, atol=0)


def test_nearest_is_the_transpose_of_sum_pooling():
    U = upsample_matrix((3, 4), 2, "nearest", dtype=torch.float64)
    W = convlib.kernel_matrix(torch.ones(2, 2, dtype=torch.float64), (6, 8), stride=2, sparse=False)
    torch.testing.assert_close(U, W.T, rtol=0, atol=0)


def test_bilinear_matches_the_fcn_initialization_of_d2l():
    """d2l's bilinear_kernel(in, out, k): og = 1 - |x - center| / factor, on the diagonal."""
    for s in (2, 3, 4):
        k = 2 * s - s % 2
        factor = (k + 1) // 2
        center = factor - 1 if k % 2 == 1 else factor - 0.5
        og = torch.arange(k, dtype=torch.float64)
        filt = (1 - (og[:, None] - center).abs() / factor) * (1 - (og[None, :] - center).abs() / factor)
        kernel, _ = upsampling_kernel(s, "bilinear", dtype=torch.float64)
        torch.testing.assert_close(kernel, filt, rtol=0, atol=1e-15)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_scale_factor(bad):
    with pytest.raises(ValueError, match="scale_factor"):
        upsampling_kernel(bad)
    with pytest.raises(ValueError, match="scale_factor"):
        upsample_matrix(4, bad)


def test_bad_modes():
    with pytest.raises(ValueError, match="mode"):
        upsample_matrix(4, 2, "bicubic")
    with pytest.raises(NotImplementedError, match="bilinear"):
        upsample_matrix(4, 2, "bilinear")
    with pytest.raises(NotImplementedError):
        F.interpolate(torch.zeros(1, 1, 4), scale_factor=2, mode="bilinear")


def test_resize_then_convolve_is_the_transpose_of_one_strided_convolution():
    """W_conv @ U = (W_up-conv)^T with the composed kernel of flip(K) and ones(2): equal phase sums."""
    from convlib.stacks import compose_conv
    gen = torch.Generator().manual_seed(0)
    for k, n in itertools.product([3, 5], [6, 7]):
        K = torch.randn(k, dtype=torch.float64, generator=gen)
        W_conv = convlib.kernel_matrix(K, 2 * n, padding=k // 2, sparse=False)
        resize_conv = W_conv @ upsample_matrix(n, 2, "nearest", dtype=torch.float64)
        c = compose_conv(K.flip(0).view(1, 1, k), torch.ones(1, 1, 2, dtype=torch.float64), padding1=k // 2,
                         stride2=2)
        W = convlib.kernel_matrix(c.weight, 2 * n, stride=c.stride, padding=c.padding, sparse=False)
        torch.testing.assert_close(resize_conv, W.T)
        K_eff = c.weight.flatten()
        torch.testing.assert_close(K_eff[0::2].sum(), K_eff[1::2].sum())


def test_checkerboard_score_is_the_nyquist_energy_fraction():
    from convlib.upsampling import checkerboard_score
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3, 6, 8, dtype=torch.float64, generator=gen)
    power = torch.fft.fft2(z).abs().square()
    torch.testing.assert_close(checkerboard_score(z), power[:, 3, 4] / power.sum((-2, -1)))
    # in terms of the means over the four phases
    m = [[z[:, a::2, b::2].mean((-2, -1)) for b in range(2)] for a in range(2)]
    numerator = (6 * 8 / 4) ** 2 * (m[0][0] - m[0][1] - m[1][0] + m[1][1]) ** 2
    torch.testing.assert_close(checkerboard_score(z), numerator / (6 * 8 * z.square().sum((-2, -1))))
    board = (-1.0) ** (torch.arange(5)[:, None] + torch.arange(7))
    assert checkerboard_score(board).item() == pytest.approx(1.0)
    assert checkerboard_score(torch.ones(4, 4)).item() == 0.0


def test_a_stride_two_transposed_convolution_moves_the_input_sum_to_the_nyquist_frequency():
    """Z^(pi, pi) = K^(pi, pi) * sum(y) with padding 0: zero for the nearest and bilinear kernels."""
    gen = torch.Generator().manual_seed(2)
    y = torch.rand(1, 1, 5, 6, dtype=torch.float64, generator=gen)
    sign = lambda h, w: (-1.0) ** (torch.arange(h)[:, None] + torch.arange(w))  # noqa: E731
    for K in [torch.randn(3, 3, dtype=torch.float64, generator=gen), torch.randn(4, 4, dtype=torch.float64, generator=gen),
              upsampling_kernel(2, "nearest", dtype=torch.float64)[0], upsampling_kernel(2, "bilinear", dtype=torch.float64)[0]]:
        z = F.conv_transpose2d(y, K[None, None], stride=2)[0, 0]
        nyquist = (z * sign(*z.shape)).sum()
        torch.testing.assert_close(nyquist, (K * sign(*K.shape)).sum() * y.sum())
    assert (upsampling_kernel(2, "bilinear")[0] * sign(4, 4)).sum().item() == 0.0
