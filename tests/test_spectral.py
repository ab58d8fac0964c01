"""fft_conv2d against torch's circular convolution; the circulant W's eigenvalues against the DFT."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convlib
from convlib.padding import padding_matrix
from convlib.spectral import circulant_eigenvalues, fft_conv2d, wrap_kernel


def circular_conv2d(x, weight, bias, padding):
    """torch's reference: pad circularly, then a valid convolution."""
    p_h, p_w = (padding, padding) if isinstance(padding, int) else padding
    return F.conv2d(F.pad(x, (p_w, p_w, p_h, p_h), mode="circular"), weight, bias)


def circulant_kernel_matrix(kernel, size, padding):
    """W = W_valid(padded size) @ P_circular, dense, for one 2-d kernel."""
    p_h, p_w = padding
    W_valid = convlib.kernel_matrix(kernel, (size[0] + 2 * p_h, size[1] + 2 * p_w), sparse=False)
    return W_valid @ padding_matrix(size, padding, "circular", dtype=kernel.dtype)


@pytest.mark.parametrize("N,C_in,C_out,H,W,k_h,k_w,p", [
    (2, 3, 4, 8, 8, 3, 3, 1),
    (1, 1, 1, 5, 7, 5, 3, (2, 1)),
    (3, 2, 5, 6, 9, 3, 5, (1, 2)),
    (2, 2, 3, 7, 6, 2, 4, 0),      # even kernel, no padding: output smaller than input
    (1, 2, 2, 4, 4, 1, 1, 2),      # padding larger than the kernel needs: output wraps around
    (1, 1, 2, 3, 3, 5, 5, 2),      # kernel larger than the input: wrapped offsets add up
    (2, 4, 1, 16, 12, 7, 7, 3),
])
def test_fft_conv2d_matches_torch_circular_conv_in_float64(N, C_in, C_out, H, W, k_h, k_w, p):
    gen = torch.Generator().manual_seed(N + 10 * C_in + 100 * H + 1000 * k_h)
    x = torch.randn(N, C_in, H, W, dtype=torch.float64, generator=gen)
    weight = torch.randn(C_out, C_in, k_h, k_w, dtype=torch.float64, generator=gen)
    bias = torch.randn(C_out, dtype=torch.float64, generator=gen)
    expected = circular_conv2d(x, weight, bias, p)
    torch.testing.assert_close(fft_conv2d(x, weight, bias, padding=p), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(fft_conv2d(x, weight, padding=p), expected - bias[:, None, None],
                               rtol=0, atol=1e-10)


def test_fft_conv2d_matches_nn_conv2d_circular_module():
    gen = torch.Generator().manual_seed(7)
    conv = nn.Conv2d(3, 2, 3, padding=1, padding_mode="circular").double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, dtype=torch.float64, generator=gen))
        conv.bias.copy_(torch.randn(2, dtype=torch.float64, generator=gen))
    x = torch.randn(4, 3, 10, 11, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(fft_conv2d(x, conv.weight, conv.bias, 1), conv(x), rtol=0, atol=1e-10)


def test_fft_conv2d_unbatched_and_float32():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 9, 9, generator=gen)
    weight = torch.randn(3, 2, 3, 3, generator=gen)
    torch.testing.assert_close(fft_conv2d(x, weight, padding=1), circular_conv2d(x[None], weight, None, 1)[0])


def test_fft_conv2d_rejects_bad_input():
    with pytest.raises(RuntimeError, match="input channels"):
        fft_conv2d(torch.zeros(1, 2, 5, 5), torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="at most"):
        fft_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), padding=4)


@pytest.mark.parametrize("H,W,k_h,k_w,seed", [(8, 1, 3, 1, 0), (1, 9, 1, 5, 1), (4, 5, 3, 3, 2),
                                               (6, 6, 5, 3, 3), (3, 4, 3, 5, 4)])
def test_eigenvalues_of_circulant_kernel_matrix_are_the_dft_of_the_kernel(H, W, k_h, k_w, seed):
    gen = torch.Generator().manual_seed(seed)
    kernel = torch.randn(k_h, k_w, dtype=torch.float64, generator=gen)
    pad = ((k_h - 1) // 2, (k_w - 1) // 2)
    C = circulant_kernel_matrix(kernel, (H, W), pad)
    lam = circulant_eigenvalues(kernel, (H, W), pad).flatten()  # (H * W,)

    # Fourier modes are eigenvectors: C E = E diag(lambda), column (m, l) of E is f_{m,l}.
    i = torch.arange(H, dtype=torch.float64)
    j = torch.arange(W, dtype=torch.float64)
    F_H = torch.exp(2j * torch.pi * torch.outer(i, i) / H)
    F_W = torch.exp(2j * torch.pi * torch.outer(j, j) / W)
    E = torch.kron(F_H, F_W)  # (H W, H W): rows (i, j), columns (m, l)
    torch.testing.assert_close(C.to(E.dtype) @ E, E * lam[None, :], rtol=0, atol=1e-10)

    # ... and, as a multiset, eig(C) equals the DFT values.
    eig = torch.linalg.eigvals(C)
    dist = (eig[:, None] - lam[None, :]).abs()
    matched = torch.zeros(lam.numel(), dtype=torch.bool)
    for row in dist:  # greedy matching: each eigenvalue to the nearest unused DFT value
        row = row.masked_fill(matched, float("inf"))
        best = row.argmin()
        assert row[best] < 1e-9
        matched[best] = True
    assert matched.all()


def test_circulant_kernel_matrix_is_circulant():
    kernel = torch.randn(3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    W_valid = convlib.kernel_matrix(kernel, 10, sparse=False)
    C = W_valid @ padding_matrix(8, 1, "circular", dtype=torch.float64)
    for r in range(8):
        torch.testing.assert_close(C[r], C[0].roll(r), rtol=0, atol=0)
    c = wrap_kernel(kernel[None], (1, 8), (0, 1))[0]
    torch.testing.assert_close(C[0], c, rtol=0, atol=0)
