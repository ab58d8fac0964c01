r"""The im2col forms: each convolution as one matrix product with the columns ``S x``.

With ``M`` the ``(C_out/g, C_in/g * prod(k))`` weight matrix of each group,

* the convolution is :math:`Y = M\,(S x)`,
* its transpose is :math:`Z = S^\top (M^\top Y)`: the product makes columns and
  :func:`~convlib.selection.add_windows_` adds them back where they came from,
* the gradient with respect to the weight is :math:`G\,(S x)^\top`, summed over the batch.

The columns are made a few samples at a time (:func:`~convlib.selection.column_chunks`),
so they stay in cache between the copy and the product.

The ``_last`` forms compute the same products transposed, with one window (or, for the
transpose, one input position) per row, copied from channels-last data: the layout in
which oneDNN's matrix product (:mod:`convlib.gemm`) is fastest, with the many rows of the
windows on the left and the weights on the right (:func:`row_chunks`).
"""

from __future__ import annotations

import itertools
import math

from torch import Tensor

from .gemm import matmul
from .selection import CHUNK_BYTES, add_windows_, column_chunks, tap_slices
from .shapes import Geometry, per_chunk

__all__ = ["conv_columns", "conv_columns_last", "row_chunks", "samples_per_chunk",
           "conv_transpose_columns", "conv_transpose_columns_last", "weight_grad_columns",
           "weight_grad_columns_last", "weight_grad_taps"]


def conv_columns(x: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``M S x``: (N, C_in, *n) -> (N, C_out, *out)."""
    n, (c_out, _, *k), g = x.shape[0], weight.shape, geometry.groups
    out = geometry.output_size(x.shape[2:], k)
    w = weight.reshape(g, c_out // g, -1)  # (g, C_out/g, C_in/g*K)
    y = x.new_empty(n, g, c_out // g, math.prod(out))  # (N, g, C_out/g, L)
    for batch, cols in column_chunks(x, k, geometry):  # (m, g, C_in/g*K, L)
        matmul(w, cols, out=y[batch])  # (m, g, C_out/g, L)
    return y.view(n, c_out, *out)


def _per_chunk(count: int, entries: int, itemsize: int) -> int:
    """How many of ``count`` pieces of ``entries`` entries each fit in
    :data:`~convlib.selection.CHUNK_BYTES`: at least one, at most ``count``."""
    return per_chunk(count, entries * itemsize, CHUNK_BYTES)


def samples_per_chunk(x: Tensor, per_sample: int) -> int:
    """How many samples of ``x`` make one chunk of columns, ``per_sample`` entries each:
    as many as fit in :data:`~convlib.selection.CHUNK_BYTES`, at least one."""
    return _per_chunk(x.shape[0], per_sample, x.element_size())


def row_chunks(x: Tensor, k, geometry: Geometry, out=None):
    """Yield ``(samples, positions, rows)``: the columns :math:`(S x)^T` of one group, one
    window per row (its kernel offsets, then its channels, along the row), a chunk of
    :data:`~convlib.selection.CHUNK_BYTES` at a time: a few samples, or, where one sample's
    windows are more, a few positions ``positions`` (a slice) of the first output axis of
    one. ``rows`` is ``(samples x positions x the other output axes, C * prod(k))``, in a
    reused buffer, copied from a channels-last, zero-padded copy of the samples. ``out``
    keeps only the first windows in each dimension."""
    n, c, *size = x.shape
    d = len(k)
    out = list(out or geometry.output_size(size, k))
    K, rest = c * math.prod(k), math.prod(out[1:])  # rest: windows per step of the first axis
    channels_last = (0, *range(2, 2 + d), 1)  # (N, C, *n) -> (N, *n, C)
    m = samples_per_chunk(x, math.prod(out) * K)
    step = out[0] if m > 1 else _per_chunk(out[0], rest * K, x.element_size())
    padded = x.new_zeros(m, *geometry.padded_size(size), c)  # reused: its border is zeroed once
    interior = (slice(None), *geometry.interior(size))
    cols = x.new_empty(m, step, *out[1:], *k, c)  # (m, step, *out[1:], *k, C)
    for i in range(0, n, m):
        r = min(m, n - i)
        padded[:r][interior] = x[i:i + r].permute(channels_last)
        view = padded[:r]
        for j in range(d):  # (r, *out[:j], *padded[j:], C, *span[:j]): one more axis cut
            view = view.unfold(1 + j, geometry.dilation[j] * (k[j] - 1) + 1, geometry.stride[j])
        view = view[(Ellipsis, *(slice(None, None, dl) for dl in geometry.dilation))]  # (r, *out, C, *k)
        view = view.permute(0, *range(1, 1 + d), *range(2 + d, 2 + 2 * d), 1 + d)  # (r, *out, *k, C)
        view = view[(slice(None), *(slice(0, o) for o in out))]
        for o in range(0, out[0], step):
            t = min(step, out[0] - o)
            chunk = cols[:r, :t]
            chunk.copy_(view[:, o:o + t])  # the im2col copy
            yield slice(i, i + r), slice(o, o + t), chunk.view(r * t * rest, K)


def conv_columns_last(x: Tensor, weight: Tensor, geometry: Geometry, last: bool = False) -> Tensor:
    """``(S x)^T M^T``, the product of :func:`conv_columns` transposed, for one group:
    (N, C_in, *n) -> (N, C_out, *out).

    The columns one window per row (:func:`row_chunks`). Their product has the weight in
    the place of the right operand and every window of the chunk as a row: the layout in
    which oneDNN's matrix product is fastest (:mod:`convlib.gemm`; measured on ResNet-34's
    3x3 layer, 256 channels at 14x14: forward 6.0 ms against 8.2 ms with
    :func:`conv_columns`, where a chunk holds two samples). Each chunk's rows are then
    copied into the usual layout; with ``last`` the result stays channels-last (a view of
    its rows) and nothing is copied.
    """
    n, c_out, d = x.shape[0], weight.shape[0], weight.dim() - 2
    out = geometry.output_size(x.shape[2:], weight.shape[2:])
    channels_last = (0, *range(2, 2 + d), 1)
    w = weight.permute(channels_last).reshape(c_out, -1)  # (C_out, *k, C_in), one row per output channel
    y = x.new_empty(n, *out, c_out) if last else x.new_empty(n, c_out, *out)
    buffer = None
    for samples, positions, rows in row_chunks(x, weight.shape[2:], geometry):
        if last:  # whole samples, or positions of one: contiguous rows of y
            matmul(rows, w.mT, out=y[samples, positions].view(rows.shape[0], c_out))
        else:
            if buffer is None:
                buffer = x.new_empty(rows.shape[0], c_out)
            product = matmul(rows, w.mT, out=buffer[:rows.shape[0]])  # (rows, C_out)
            r, t = samples.stop - samples.start, positions.stop - positions.start
            y[samples, :, positions].copy_(product.view(r, t, *out[1:], c_out).movedim(-1, 1))
    return y.permute(0, 1 + d, *range(1, 1 + d)) if last else y


def weight_grad_columns_last(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry) -> Tensor:
    """``G (S x)^T`` summed over the batch, for one group, with the columns one window per
    row (:func:`row_chunks`): each chunk adds ``G_chunk rows``, with ``G_chunk`` the
    output gradient at the chunk's windows, one matrix of ``C_out`` rows per sample. The
    columns of a chunk never exceed :data:`~convlib.selection.CHUNK_BYTES`, where
    :func:`weight_grad_columns` holds at least one sample's. ``gy`` may have fewer
    positions than the convolution of ``x`` makes: only its windows are used."""
    n, c_out, *out = gy.shape
    d = len(out)
    gw = gy.new_zeros(c_out, math.prod(weight_shape[1:]))  # (C_out, *k, C_in) flattened
    for samples, positions, rows in row_chunks(x, weight_shape[2:], geometry, out):
        g = gy[samples, :, positions]  # (r, C_out, t, *out[1:])
        per_sample = rows.view(g.shape[0], -1, rows.shape[1])
        for j in range(g.shape[0]):
            gw += matmul(g[j].reshape(c_out, -1), per_sample[j])
    return gw.view(c_out, *weight_shape[2:], weight_shape[1]).permute(0, 1 + d, *range(1, 1 + d)).contiguous()


def conv_transpose_columns(y: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``S^T M^T y``: (N, C_in, *n) -> (N, C_out, *out).

    ``geometry.padding`` is that of the convolution being transposed: it is cropped off,
    and ``geometry.output_padding`` more positions are kept at the end.
    """
    n, c_in, *grid = y.shape
    _, c_out_g, *k = weight.shape
    g = geometry.groups
    K, L = math.prod(k), math.prod(grid)
    w_t = weight.reshape(g, c_in // g, c_out_g * K).mT  # (g, C_out/g*K, C_in/g)
    y = y.reshape(n, g, c_in // g, L)  # (N, g, C_in/g, L)
    z = y.new_zeros(n, g * c_out_g, *geometry.transpose_output_size(grid, k))  # (N, C_out, *out)
    crop = [a for a, _ in geometry.padding]
    m = samples_per_chunk(y, g * c_out_g * K * L)
    buffer = y.new_empty(m, g, c_out_g * K, L)
    for i in range(0, n, m):  # a few samples at a time, so the columns stay in cache
        cols = matmul(w_t, y[i:i + m], out=buffer[:min(m, n - i)])  # (m, g, C_out/g*K, L)
        cols = cols.view(-1, g * c_out_g, *k, *grid)  # (m, C_out, *k, *n)
        add_windows_(z[i:i + m], cols, geometry.stride, geometry.dilation, crop)  # col2im
    return z


def conv_transpose_columns_last(y: Tensor, weight: Tensor, geometry: Geometry, last: bool = False) -> Tensor:
    """``S^T M^T y`` for one group, as :func:`conv_transpose_columns`, with the columns one
    input position per row: (N, C_in, *n) -> (N, C_out, *out).

    A few samples at a time, the rows of ``y`` (channels-last) times the weight, whose
    columns are in (kernel offset, output channel) order, make one row of ``prod(k) * C_out``
    numbers per input position; col2im adds them into a channels-last block of the chunk's
    outputs, each kernel offset's slice with the channels side by side in memory. The block
    is then copied into the output while it is still in cache (``last``: the output stays
    channels-last and is written directly). Measured on DCGAN's transposed layer (16 x 256
    x 16 x 16, 4x4 kernel, stride 2): 19.0 ms against 29.8 ms with
    :func:`conv_transpose_columns`, whose product has the large operand in oneDNN's place
    for the weight.
    """
    n, c_in, *grid = y.shape
    _, c_out, *k = weight.shape
    d, K, L = len(k), math.prod(k), math.prod(grid)
    channels_last = (0, *range(2, 2 + d), 1)  # (N, C, *n) -> (N, *n, C)
    to_channels = (0, 1 + d, *range(1, 1 + d))  # (N, *n, C) -> (N, C, *n), a view
    w = weight.permute(0, *range(2, 2 + d), 1).reshape(c_in, K * c_out)  # (C_in, *k, C_out)
    out = geometry.transpose_output_size(grid, k)
    crop = [a for a, _ in geometry.padding]
    m = samples_per_chunk(y, L * K * c_out)
    rows = y.new_empty(m * L, K * c_out)
    if last:
        z = y.new_zeros(n, *out, c_out)
    else:
        z, block = y.new_empty(n, c_out, *out), y.new_empty(m, *out, c_out)
    for i in range(0, n, m):
        r = min(m, n - i)
        cols = matmul(y[i:i + r].permute(channels_last).reshape(r * L, c_in), w, out=rows[:r * L])
        cols = cols.view(r, *grid, *k, c_out)  # -> (r, C_out, *k, *n), a view
        cols = cols.permute(0, 1 + 2 * d, *range(1 + d, 1 + 2 * d), *range(1, 1 + d))
        target = z[i:i + r] if last else block[:r].zero_()  # (r, *out, C_out)
        add_windows_(target.permute(to_channels), cols, geometry.stride, geometry.dilation, crop)  # col2im
        if not last:
            z[i:i + r].copy_(target.permute(to_channels))
    return z.permute(to_channels) if last else z


def weight_grad_columns(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry) -> Tensor:
    """``G (S x)^T`` summed over the batch: the weight-shaped gradient of ``<G, conv(x, w)>``.
    ``gy`` may have fewer positions than the convolution of ``x`` makes: only its windows
    are used."""
    n, c_out, *out = gy.shape
    _, c_in_g, *k = weight_shape
    g = geometry.groups
    gy = gy.reshape(n, g, c_out // g, math.prod(out))  # (N, g, C_out/g, L)
    gw = gy.new_zeros(g, c_out // g, c_in_g * math.prod(k))  # (g, C_out/g, C_in/g*K)
    for batch, cols in column_chunks(x, k, geometry, out):  # (m, g, C_in/g*K, L)
        part = matmul(gy[batch], cols.mT)  # (m, g, C_out/g, C_in/g*K)
        gw += part.sum(0) if part.shape[0] > 1 else part[0]
    return gw.view(weight_shape)


def weight_grad_taps(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry) -> Tensor:
    """``G (S x)^T`` one kernel offset at a time, over only the windows whose tap lands
    inside ``x``: the products with padding zeros are not made. (The weight gradient of a
    transposed convolution is this one: its "padding" is what it crops, and torch makes no
    products with it, so a non-finite value of ``G`` there must not turn into NaN.)"""
    n, c_out, *out = gy.shape
    _, c_in_g, *k = weight_shape
    g = geometry.groups
    crop = [a for a, _ in geometry.padding]
    gw = gy.new_zeros(g, c_out // g, c_in_g, math.prod(k))  # (g, C_out/g, C_in/g, K)
    for i, kappa in enumerate(itertools.product(*map(range, k))):
        windows, positions = tap_slices(kappa, geometry.dilation, geometry.stride, out,
                                        x.shape[2:], crop)
        a = gy[(Ellipsis, *windows)].reshape(n, g, c_out // g, -1)  # (N, g, C_out/g, L_kappa)
        b = x[(Ellipsis, *positions)].reshape(n, g, c_in_g, -1)  # (N, g, C_in/g, L_kappa)
        if a.shape[-1]:
            gw[..., i] = matmul(a, b.mT).sum(0)
    return gw.view(weight_shape)
