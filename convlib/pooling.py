r"""Pooling as matrices: a fixed matrix for average pooling, one per input for max pooling.

Average pooling is linear: on one channel it is a matrix :math:`W_\text{avg}` whose row for an output
holds one over the divisor on the columns of that output's window. Without padding (or
with ``count_include_pad=True``) it is the kernel matrix of a constant kernel, a
convolution; its transpose is its gradient.

Max pooling is not linear, but at each input ``x`` it is a 0/1 *selection* matrix
:math:`Q(x)`: one 1 per row, in the column of the largest entry of that row's window.
:math:`Q(x)` is the Jacobian of max pooling at ``x``, so :math:`Q(x)^\top` routes the
output gradient back.

Both matrices act on one channel; pooling treats the channels one by one, so on ``C``
channels the matrix is block diagonal, :math:`I_C \otimes W_\text{avg}` (and one block of
:math:`Q(x)` per channel).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from .shapes import IntOrTuple, as_tuple

__all__ = ["pool_output_size", "avg_pool_matrix", "max_pool_matrix"]


def _pool_args(input_size, kernel_size, stride, padding, dilation, d=None):
    """Normalize pooling arguments to d-tuples and check them as torch's pooling does."""
    if d is None:
        d = 1 if isinstance(input_size, int) else len(input_size)
    n = as_tuple(input_size, d, "input_size")
    k = as_tuple(kernel_size, d, "kernel_size")
    no_stride = stride is None or (not isinstance(stride, int) and len(stride) == 0)  # torch: [] = default
    s = k if no_stride else as_tuple(stride, d, "stride")
    p = as_tuple(padding, d, "padding")
    dil = as_tuple(dilation, d, "dilation")
    if any(v <= 0 for v in k):
        raise RuntimeError(f"kernel_size must be greater than zero, but got kernel_size={kernel_size!r}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"stride should not be zero or negative, but got stride={stride!r}")
    if any(v <= 0 for v in dil):
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={dilation!r}")
    if any(v < 0 for v in p):
        raise RuntimeError(f"padding must be non-negative, but got padding={padding!r}")
    if any(pj > kj // 2 for pj, kj in zip(p, k)):  # torch: half the kernel size, whatever the dilation
        raise RuntimeError(f"pad should be at most half of kernel size, but got padding={padding!r} "
                           f"and kernel_size={kernel_size!r}")
    return n, k, s, p, dil


def pool_output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: Optional[IntOrTuple] = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    r"""Spatial output size of a pooling layer, per dimension, as ``nn.MaxPool2d`` computes it.

    .. math::

        n_\text{out} = \left\lfloor \frac{n + 2p - \delta (k - 1) - 1}{s} \right\rfloor + 1
        \quad\text{or, with }\mathtt{ceil\_mode}\text{,}\quad
        \left\lceil \frac{n + 2p - \delta (k - 1) - 1}{s} \right\rceil + 1 ,

    the floor of :func:`~convlib.conv_output_size`, or a ceiling that keeps one more window
    hanging over the end. With ``ceil_mode`` that last window must still *start* inside the
    input or its left padding, :math:`(n_\text{out} - 1)\, s < n + p`; if it would start in
    the right padding it is dropped again. The part of a window outside the input is
    ignored by max pooling (and by ``avg_pool`` with ``count_include_pad=False``).

    Args:
        input_size: ``n`` per dimension (an int for 1-d).
        kernel_size: an int or ``d`` ints.
        stride: an int or ``d`` ints. Default: ``kernel_size``, as in ``torch.nn.MaxPool2d``.
        padding: implicit padding on both sides, at most half the kernel size.
        dilation: spacing between the window's entries (max pooling only).
        ceil_mode: round up instead of down.

    Returns:
        A tuple of positive ints.

    Raises:
        RuntimeError: for a non-positive kernel size, stride or dilation, a negative padding
            or one larger than half the kernel size, or an output that would be empty (the
            class of torch's pooling functions).
    """
    n, k, s, p, dil = _pool_args(input_size, kernel_size, stride, padding, dilation)
    out = []
    for nj, kj, sj, pj, dj in zip(n, k, s, p, dil):
        span = nj + 2 * pj - dj * (kj - 1) - 1
        o = (span + (sj - 1 if ceil_mode else 0)) // sj + 1
        if ceil_mode and (o - 1) * sj >= nj + pj:  # the extra window would start in the padding
            o -= 1
        out.append(o)
    if any(o < 1 for o in out):
        raise RuntimeError(f"Given input size: {n}. Calculated output size: {tuple(out)}. "
                           "Output size is too small")
    return tuple(out)


def _windows(n, k, s, p, dil, ceil_mode):
    """Per output and window tap: the flat input index, and whether it lies inside the input.

    Returns ``(out, flat, inside, starts)``: the output size, two ``(prod(out), prod(k))``
    tensors, and per dimension the first position of each window, ``u * s - p``.
    """
    d = len(n)
    out = pool_output_size(n, k, s, p, dil, ceil_mode)
    flat = torch.zeros((), dtype=torch.int64)
    inside = torch.ones((), dtype=torch.bool)
    starts = []
    for j in range(d):
        start = torch.arange(out[j]) * s[j] - p[j]                     # (out_j,)
        pos = start[:, None] + torch.arange(k[j]) * dil[j]              # (out_j, k_j)
        shape = [1] * (2 * d)
        shape[j], shape[d + j] = out[j], k[j]                           # (*out, *k) after broadcasting
        flat = flat * n[j] + pos.clamp(0, n[j] - 1).view(shape)
        inside = inside & ((pos >= 0) & (pos < n[j])).view(shape)
        starts.append(start)
    full = (*out, *k)
    n_out, n_k = math.prod(out), math.prod(k)
    return out, flat.expand(full).reshape(n_out, n_k), inside.expand(full).reshape(n_out, n_k), starts


def avg_pool_matrix(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: Optional[IntOrTuple] = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: Union[torch.device, str, None] = None,
) -> torch.Tensor:
    r"""The matrix of average pooling on one channel: ``W @ x.flatten() == avg_pool(x).flatten()``.

    Row :math:`u` has the value :math:`1 / D_u` on the columns of the input entries in
    window :math:`u` and zeros elsewhere; entries of the window that fall on the padding
    have no column. The divisor :math:`D_u` is, as in ``F.avg_pool2d``:

    * ``divisor_override``, when it is given;
    * with ``count_include_pad=True`` (the default): the size of the window, padding
      included, but not the part of a ``ceil_mode`` window that hangs past the padding;
    * with ``count_include_pad=False``: the number of input entries in the window.

    With a constant divisor (no padding and no ``ceil_mode`` overhang, or
    ``count_include_pad=True`` with windows that stay within the padding) ``W`` is the kernel
    matrix of the constant kernel :math:`1/\prod k` with stride ``stride``: average pooling
    is that convolution, and ``W.T`` is its gradient. A divisor that changes from window to
    window gives rows a convolution's kernel matrix cannot have.

    Args:
        input_size: spatial size ``n`` of one channel, ``d`` ints (an int for 1-d).
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override: as in
            ``torch.nn.functional.avg_pool{d}d`` (``stride`` defaults to ``kernel_size``).

    Returns:
        torch.Tensor: dense, of shape :math:`(\prod n_\text{out}, \prod n)`.

    Shape:
        :math:`n_\text{out}` is :func:`pool_output_size` (with dilation 1).
    """
    n, k, s, p, dil = _pool_args(input_size, kernel_size, stride, padding, 1)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    out, flat, inside, starts = _windows(n, k, s, p, dil, ceil_mode)
    if divisor_override is not None:
        divisor = torch.full((flat.shape[0],), float(divisor_override), dtype=torch.float64)
    elif count_include_pad:
        # window size within the padded input: the end is clipped to n + p, the start is not
        sizes = [(torch.minimum(st + kj, torch.tensor(nj + pj)) - st) for st, kj, nj, pj in zip(starts, k, n, p)]
        divisor = _outer_product(sizes).to(torch.float64)
    else:
        divisor = inside.sum(1).to(torch.float64)
    W = torch.zeros(flat.shape[0], math.prod(n), dtype=torch.float64)
    rows = torch.arange(flat.shape[0])[:, None].expand_as(flat)
    W.index_put_((rows[inside], flat[inside]), (1 / divisor)[:, None].expand_as(flat)[inside], accumulate=True)
    return W.to(dtype=dtype, device=device)


def _outer_product(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row-major flattened outer product of 1-d tensors."""
    result = torch.ones((), dtype=vectors[0].dtype)
    for v in vectors:
        result = (result[..., None] * v).reshape(-1)
    return result


def max_pool_matrix(
    input: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: Optional[IntOrTuple] = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> torch.Tensor:
    r"""The 0/1 selection matrix :math:`Q(x)` of max pooling at ``x``: ``Q @ x.flatten() == max_pool(x).flatten()``.

    Row :math:`(c, u)` has a single 1, in the column of the largest entry of window
    :math:`u` of channel :math:`c` (the first one in row-major order if several are
    equal, as PyTorch picks it; padding never wins). :math:`Q(x)` is the Jacobian of max
    pooling at ``x`` wherever the maxima are unique, so the gradient of a loss with
    respect to ``x`` is ``Q.T @ G.flatten()``: each output gradient goes back to the
    entry that won its window, and entries that win several overlapping windows receive
    the sum. ``F.max_unpool{d}d`` with the indices of ``return_indices=True`` places
    values the same way but writes instead of adding, so it equals :math:`Q(x)^\top` exactly when
    no entry wins two windows (always, for windows that do not overlap).

    Args:
        input: one sample, :math:`(C, *n)` with ``d`` spatial dims.
        kernel_size, stride, padding, dilation, ceil_mode: as in
            ``torch.nn.functional.max_pool{d}d`` (``stride`` defaults to ``kernel_size``).

    Returns:
        torch.Tensor: dense, of shape :math:`(C \prod n_\text{out},\; C \prod n)`, on
        ``input``'s device with its dtype; block diagonal, one block per channel.
    """
    C, *size = input.shape
    d = len(size)
    if d < 1:
        raise ValueError(f"input must be (C, *spatial) with at least one spatial dim, got shape "
                         f"{tuple(input.shape)}")
    n, k, s, p, dil = _pool_args(tuple(size), kernel_size, stride, padding, dilation, d)
    out, flat, inside, _ = _windows(n, k, s, p, dil, ceil_mode)
    flat, inside = flat.to(input.device), inside.to(input.device)
    n_in, n_out = math.prod(n), math.prod(out)
    values = input.reshape(C, n_in)[:, flat]                               # (C, n_out, n_k)
    values = values.masked_fill(~inside, float("-inf"))                    # padding never wins
    winner = flat.expand(C, -1, -1).gather(2, values.argmax(2, keepdim=True))[..., 0]  # (C, n_out)
    Q = input.new_zeros(C * n_out, C * n_in)
    cols = winner + torch.arange(C, device=input.device)[:, None] * n_in
    Q[torch.arange(C * n_out, device=input.device), cols.reshape(-1)] = 1
    return Q
