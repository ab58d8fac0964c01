"""kernel_matrix: W @ vec(x) is torch's convolution, in every configuration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib import conv_output_size, corr2d, kernel_matrix, kernel_matrix_indices, kernel_matrix_loop
from convlib.shapes import resolve_padding

f64 = torch.float64
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def torch_conv_matrix_check(d, w, n, device, **hp):
    """W @ vec(x) == vec(F.conv{d}d(x)) for a random x; returns W."""
    c_in = w.shape[1] * hp.get("groups", 1)
    x = torch.randn(c_in, *n, dtype=w.dtype, device=device)
    W = kernel_matrix(w, n, **hp)
    y = TORCH_CONV[d](x.unsqueeze(0), w, None, hp.get("stride", 1), hp.get("padding", 0),
                      hp.get("dilation", 1), hp.get("groups", 1))
    assert W.shape == (y.numel(), x.numel())
    torch.testing.assert_close(W @ x.flatten(), y.flatten())
    return W


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, dilation, groups", [
    p for p in itertools.product((1, 2), (0, 1, "same", "valid"), (1, 2), (1, 2))
    if not (p[1] == "same" and p[0] > 1)])
def test_matches_torch(d, stride, padding, dilation, groups, device):
    w = torch.randn(2 * groups, 2, *(3, 2, 2)[:d], dtype=f64, device=device)
    torch_conv_matrix_check(d, w, (7, 6, 5)[:d], device, stride=stride, padding=padding,
                            dilation=dilation, groups=groups)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_single_kernel(d, device):
    k = torch.randn(*(3, 2, 2)[:d], dtype=f64, device=device)
    n = (6, 5, 4)[:d]
    x = torch.randn(n, dtype=f64, device=device)
    y = TORCH_CONV[d](x[None, None], k[None, None])
    torch.testing.assert_close(kernel_matrix(k, n if d > 1 else n[0]) @ x.flatten(), y.flatten())


@pytest.mark.parametrize("d", [1, 2, 3])
def test_sparse_equals_dense(d, device):
    w = torch.randn(4, 1, *(3, 3, 2)[:d], dtype=f64, device=device)
    hp = dict(stride=2, padding=1, dilation=1, groups=2)
    S = kernel_matrix(w, (6, 5, 4)[:d], **hp)
    D = kernel_matrix(w, (6, 5, 4)[:d], sparse=False, **hp)
    assert S.layout == torch.sparse_csr and D.layout == torch.strided
    torch.testing.assert_close(S.to_dense(), D, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_dtype_device_and_index_type(dtype, device):
    w = torch.randn(3, 2, 3, 3, device=device).to(dtype)
    W = kernel_matrix(w, (5, 5))
    assert W.dtype == dtype and W.device == w.device
    assert W.crow_indices().dtype == torch.int32 and W.col_indices().dtype == torch.int32
    D = kernel_matrix(w, (5, 5), sparse=False)
    assert D.dtype == dtype and D.device == w.device


def test_values_are_the_weights(device):
    """Every stored value is a weight entry, each row holds one window of weights."""
    w = torch.arange(1.0, 19.0, device=device).reshape(2, 1, 3, 3)
    W = kernel_matrix(w, (4, 4), groups=1, padding=0)  # 2 channels out, 1 in, no padding
    crow, col, widx = kernel_matrix_indices(w.shape, (4, 4), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, device)
    torch.testing.assert_close(W.values(), w.flatten()[widx])
    assert (crow.diff() == 9).all()  # no padding: full windows
    torch.testing.assert_close(W.to_dense().sum(1), w.sum((1, 2, 3)).repeat_interleave(4))


def test_transpose_is_conv_transpose(device):
    w = torch.randn(4, 2, 3, 2, dtype=f64, device=device)
    W = kernel_matrix(w, (7, 6), stride=2, padding=1, groups=2)
    out = conv_output_size((7, 6), (3, 2), 2, 1)
    y = torch.randn(4, *out, dtype=f64, device=device)  # a conv output
    op = [(n + 2 - dk) % 2 for n, dk in zip((7, 6), (3, 2))]  # positions the last window missed
    z = F.conv_transpose2d(y[None], w, None, 2, 1, op, 2)  # back to (4, 7, 6)
    assert z.shape[2:] == (7, 6)
    torch.testing.assert_close(W.mT @ y.flatten(), z.flatten())


@pytest.mark.parametrize("h, w, kh, kw", [(3, 3, 2, 2), (5, 4, 3, 1), (4, 6, 2, 4)])
def test_matches_loops(h, w, kh, kw):
    """The vectorized matrix equals the four-loop one, and both compute corr2d."""
    K, X = torch.randn(kh, kw, dtype=f64), torch.randn(h, w, dtype=f64)
    dense = kernel_matrix(K, (h, w), sparse=False)
    torch.testing.assert_close(dense, kernel_matrix_loop(K, (h, w)), rtol=0, atol=0)
    torch.testing.assert_close(dense @ X.flatten(), corr2d(X, K).flatten())


def test_dense_memory_bound_refused_before_allocating():
    """1.1e15 bytes: the message is the bound's own, so nothing of that size was allocated."""
    w = torch.randn(64, 64, 3, 3)
    with pytest.raises(RuntimeError, match=r"max_dense_bytes") as info:
        kernel_matrix(w, (4096, 4096), sparse=False)
    rows = 64 * math.prod(conv_output_size((4096, 4096), (3, 3)))
    need = rows * (64 * 4096 * 4096) * 4  # float32 entries
    assert f"{need:,}" in str(info.value)
    with pytest.raises(RuntimeError, match="max_dense_bytes"):
        kernel_matrix(torch.randn(2, 2), (10, 10), sparse=False, max_dense_bytes=100)


# (weight shape, input size, kwargs): calls torch refuses too
INVALID = [
    ((4, 2, 3, 3), (5, 5), dict(groups=3)),
    ((4, 2, 3, 3), (5, 5), dict(groups=0)),
    ((4, 2, 3, 3), (5, 5), dict(stride=0)),
    ((4, 2, 3, 3), (5, 5), dict(dilation=0)),
    ((4, 2, 3, 3), (5, 5), dict(padding=-1)),
    ((4, 2, 3, 3), (2, 2), dict()),
    ((4, 2, 3, 3), (5, 5), dict(dilation=3)),
]


@pytest.mark.parametrize("w_shape, n, kwargs", INVALID)
def test_errors_like_torch(w_shape, n, kwargs):
    w = torch.randn(w_shape)
    groups = kwargs.get("groups", 1)
    x = torch.randn(1, w_shape[1] * max(groups, 1), *n)
    with pytest.raises(Exception) as theirs:
        F.conv2d(x, w, None, kwargs.get("stride", 1), kwargs.get("padding", 0),
                 kwargs.get("dilation", 1), groups)
    with pytest.raises(Exception) as ours:
        kernel_matrix(w, n, **kwargs)
    assert type(ours.value) is type(theirs.value)


@pytest.mark.parametrize("kwargs", [dict(padding="same", stride=2), dict(padding="full")])
def test_padding_string_errors_like_torch(kwargs):
    w, x = torch.randn(2, 2, 3, 3), torch.randn(1, 2, 5, 5)
    with pytest.raises(Exception) as theirs:
        F.conv2d(x, w, **kwargs)
    with pytest.raises(Exception) as ours:
        kernel_matrix(w, (5, 5), **kwargs)
    assert type(ours.value) is type(theirs.value)


def test_bad_weight_rank():
    with pytest.raises(ValueError, match="weight"):
        kernel_matrix(torch.randn(2, 2, 3), (5, 5))
    with pytest.raises(TypeError, match="weight"):
        kernel_matrix([[1.0]], (5, 5))


def test_same_padding_is_asymmetric_like_torch():
    """An even kernel under 'same' pads the odd zero after: W matches torch exactly."""
    w = torch.randn(1, 1, 4, dtype=f64)
    assert resolve_padding("same", (4,), (1,), (1,)) == ((1, 2),)
    torch_conv_matrix_check(1, w, (7,), "cpu", padding="same")


def test_sparse_build_that_cannot_fit_is_refused_before_allocating():
    """A 200000 x 200000 image: about 3.6e11 stored entries, terabytes. The message is the
    size check's own (an allocator failure would not say it), so nothing was allocated."""
    with pytest.raises(RuntimeError, match=r"would need about [\d,]+ bytes") as error:
        kernel_matrix(torch.randn(3, 3), (200_000, 200_000))
    assert "input_size" in str(error.value)


def test_non_finite_weight_next_to_the_padding():
    """The one documented difference from conv: W has no entries for padding, so an Inf
    weight that conv multiplies by a padding zero (NaN) makes no product in W @ x."""
    K = torch.randn(3, 3, dtype=torch.float64)
    K[0, 0] = float("inf")
    x = torch.randn(5, 5, dtype=torch.float64)
    conv = torch.nn.functional.conv2d(x[None, None], K[None, None], padding=1).flatten()
    Wx = convlib.kernel_matrix(K, (5, 5), padding=1) @ x.flatten()
    differ = conv.isnan() != Wx.isnan()
    # the outputs whose tap (0, 0) lands in the padding: the first row and the first column
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[0, :] = expected[:, 0] = True
    assert torch.equal(differ, expected.flatten())
    assert torch.equal(conv[~differ].isnan(), Wx[~differ].isnan())
