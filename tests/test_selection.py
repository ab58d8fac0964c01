"""The selection matrix S: im2col and col2im against unfold and fold, and as transposes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlib
from helpers import CONV_TRANSPOSES, CONVS, transpose_output_padding
from test_functional import make


@pytest.mark.parametrize("kernel_size, dilation, padding, stride",
                         [(3, 1, 0, 1), ((2, 3), (2, 1), (1, 2), (2, 3)), (1, 1, 0, 2)])
def test_im2col_col2im_are_unfold_fold(kernel_size, dilation, padding, stride, device):
    x = make((2, 3, 7, 8), device)
    cols = convlib.im2col(x, kernel_size, dilation, padding, stride)
    torch.testing.assert_close(cols, F.unfold(x, kernel_size, dilation, padding, stride))
    c = torch.randn_like(cols)
    torch.testing.assert_close(convlib.col2im(c, (7, 8), kernel_size, dilation, padding, stride),
                               F.fold(c, (7, 8), kernel_size, dilation, padding, stride))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_col2im_is_the_transpose_of_im2col(d, device):
    """<im2col(x), c> == <x, col2im(c)>, and a convolution is weight @ im2col."""
    n, k, dl, p, s = (7, 6, 5)[:d], (3, 2, 2)[:d], (1, 2, 1)[:d], (1, 0, 2)[:d], (2, 1, 2)[:d]
    x = make((2, 4, *n), device)
    cols = convlib.im2col(x, k, dl, p, s)
    c = torch.randn_like(cols)
    torch.testing.assert_close((cols * c).sum(), (x * convlib.col2im(c, n, k, dl, p, s)).sum())
    w = make((5, 4, *k), device, seed=4)
    y = CONVS[d - 1][2](x, w, None, s, p, dl)
    torch.testing.assert_close((w.reshape(5, -1) @ cols).reshape(y.shape), y)
    # and col2im(weight^T @ y) is the transposed convolution, back to x's size
    op = transpose_output_padding(n, k, s, p, dl)
    torch.testing.assert_close(convlib.col2im(w.reshape(5, -1).mT @ y.flatten(2), n, k, dl, p, s),
                               CONV_TRANSPOSES[d - 1][2](y, w, None, s, p, op, 1, dl))
    # col2im(im2col(x)) multiplies each entry by the number of windows covering it
    ones = torch.ones_like(x)
    count = convlib.col2im(convlib.im2col(ones, k, dl, p, s), n, k, dl, p, s)
    torch.testing.assert_close(convlib.col2im(cols, n, k, dl, p, s), x * count)
