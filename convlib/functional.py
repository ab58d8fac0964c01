r"""The six ``torch.nn.functional`` convolutions, computed as ``weight @ im2col(x)``.

The kernel matrix of :mod:`convlib.matrix` factors into two matrices:

.. math::

    W = \underbrace{\operatorname{blockdiag}_g(\text{weight}_g)}_{\text{weights}}
        \;\underbrace{S}_{\text{im2col}},

where ``weight_g`` is the ``(C_out/g, C_in/g * prod(k))`` matrix of group ``g`` and the
0/1 selection matrix ``S`` copies every input entry that a window sees into one column
per output position (:func:`im2col`). So a convolution is one strided view, one copy
and one matrix product, and nothing ever builds ``W``. (The copy and the product run a
few samples of the batch at a time, so the columns stay in cache.) Its transpose
``W^T = S^T weight^T`` is the transposed convolution: ``weight^T`` makes columns and
``S^T`` (:func:`col2im`) adds them back where they came from.

With stride 1 and many channels the columns are not even copied: ``S`` splits into one
block per kernel offset, ``weight @ S x = sum_kappa weight[..., kappa] @ S_kappa x``, and
each ``S_kappa x`` is a shifted slice of the flattened padded input
(:func:`_conv_shifted`; :func:`_conv_transpose_shifted` is its transpose).

No torch convolution operator runs here, forward or backward: the gradients are
written out below with the same two factors (see :class:`_Conv` and
:class:`_ConvTranspose`).
"""

from __future__ import annotations

import itertools
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .shapes import (IntOrTuple, Padding, as_tuple, conv_output_size, conv_transpose_output_size,
                     resolve_padding)

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "im2col",
    "col2im",
]

Pairs = tuple[tuple[int, int], ...]


# --------------------------------------------------------------------------------------
# The selection matrix S and its transpose
# --------------------------------------------------------------------------------------


def _windows(x: Tensor, k: Sequence[int], stride: Sequence[int], pads: Pairs,
             dilation: Sequence[int]) -> Tensor:
    """Every window of ``x`` as a strided view (no copy): ``(N, C, *k, *out)``."""
    if any(p for pair in pads for p in pair):
        x = F.pad(x, [p for pair in reversed(pads) for p in pair])  # (N, C, *padded)
    n, c, *size = x.shape
    out = conv_output_size(tuple(size), tuple(k), tuple(stride), 0, tuple(dilation))
    sn, sc, *step = x.stride()
    return x.as_strided(
        (n, c, *k, *out),
        (sn, sc, *(a * b for a, b in zip(step, dilation)), *(a * b for a, b in zip(step, stride))),
        x.storage_offset(),
    )  # (N, C, *k, *out): window o, offset kappa -> x[..., o * s + kappa * dilation]


def _add_windows_(x: Tensor, cols: Tensor, stride: Sequence[int], dilation: Sequence[int],
                  crop: Sequence[int]) -> Tensor:
    """Adjoint of :func:`_windows`: add the windows ``cols`` ``(N, C, *k, *out)`` back into
    ``x`` ``(N, C, *size)`` in place, where ``x`` starts ``crop`` positions into the padded
    input (what falls outside ``x`` is padding, dropped). One strided slice per kernel
    offset: ``prod(k)`` additions, each at most as large as the output."""
    d = x.dim() - 2
    k, out, size = cols.shape[2:2 + d], cols.shape[2 + d:], x.shape[2:]
    for kappa in itertools.product(*map(range, k)):
        src, dst = [slice(None)] * 2, [slice(None)] * 2
        for a, dl, s, o, n, c in zip(kappa, dilation, stride, out, size, crop):
            start = a * dl - c  # window o lands on start + o * s
            lo, hi = max(0, -(start // s)), min(o, (n - 1 - start) // s + 1)  # inside x
            src.append(slice(lo, max(lo, hi)))
            dst.append(slice(start + lo * s, start + (max(lo, hi) - 1) * s + 1, s) if hi > lo
                       else slice(0, 0))
        x[tuple(dst)] += cols[(slice(None), slice(None), *kappa, *src[2:])]
    return x


#: Columns are built this many bytes at a time (a few samples of the batch), so they
#: stay in cache between the copy that makes them and the product that uses them.
CHUNK_BYTES = 4 << 20


def _column_chunks(x: Tensor, k: Sequence[int], stride: Sequence[int], pads: Pairs,
                   dilation: Sequence[int], groups: int, out: Optional[Sequence[int]] = None):
    """Yield ``(batch slice, columns)``: the windows of ``x`` (:func:`_windows`) as columns
    ``(m, g, C/g * prod(k), L)``, a few samples at a time, padded and copied into one
    reused buffer that stays in cache for the product that follows. ``out`` keeps only
    the first windows in each dimension.

    Under grad mode (double backward) it yields the whole batch at once, as a
    differentiable copy.
    """
    n, c, *size = x.shape
    out = out or conv_output_size(tuple(size), tuple(k), tuple(stride), pads, tuple(dilation))
    first = (Ellipsis, *(slice(0, o) for o in out))
    rows, L = c // groups * math.prod(k), math.prod(out)
    if torch.is_grad_enabled():
        windows = _windows(x, k, stride, pads, dilation)[first]  # (N, C, *k, *out)
        yield slice(0, n), windows.reshape(n, groups, rows, L)
        return
    m = max(1, min(n, CHUNK_BYTES // max(1, groups * rows * L * x.element_size())))
    buffer = x.new_empty(m, groups, rows, L)
    # with padding, a reused zero-padded buffer too: its border is zeroed once
    padded = None
    if any(map(any, pads)):
        padded = x.new_zeros(m, c, *(ni + a + b for ni, (a, b) in zip(size, pads)))
    interior = (Ellipsis, *(slice(a, a + ni) for ni, (a, _) in zip(size, pads)))
    for i in range(0, n, m):
        chunk = x[i:i + m]  # (m, C, *n)
        if padded is not None:
            padded[:len(chunk)][interior] = chunk
            chunk = padded[:len(chunk)]  # (m, C, *padded)
        windows = _windows(chunk, k, stride, ((0, 0),) * len(k), dilation)[first]
        cols = buffer[:len(chunk)]  # (m, g, C/g*K, L)
        cols.view(windows.shape).copy_(windows)  # the im2col copy: (m, C, *k, *out)
        yield slice(i, i + m), cols


def im2col(input: Tensor, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
           padding: Padding = 0, stride: IntOrTuple = 1) -> Tensor:
    r"""Extract every sliding window of a batched input into a column (N-d ``unfold``).

    For an input of ``d`` spatial dimensions, column ``o`` (an output position) holds the
    entries that the kernel sees when its output lands at ``o``:

    .. math::

        \text{out}[n,\; (c, \kappa),\; o] = x_\text{pad}[n,\, c,\, o \cdot s + \kappa \cdot \delta]

    with :math:`(c, \kappa)` flattened row-major (channel outer, kernel offset inner).
    As a matrix acting on ``vec(x)`` this is the 0/1 selection matrix ``S`` of
    ``W = weight @ S``: a convolution is ``weight.reshape(C_out, -1) @ im2col(x)``.
    For ``d = 2`` it equals :func:`torch.nn.functional.unfold`, whose argument order it
    keeps.

    .. note::
        Its transpose is :func:`col2im`, and ``col2im(weight^T @ y)`` is
        ``conv_transpose(y)``: the gradient of the convolution with respect to its input,
        ``W^T y = S^T weight^T y``.

    Args:
        input: :math:`(N, C, *n)`.
        kernel_size, dilation, stride: an int or ``d`` ints.
        padding: an int, ``d`` ints, ``'valid'`` or ``'same'`` (zeros, as in ``conv``).

    Shape:
        - Input: :math:`(N, C, *n)`
        - Output: :math:`(N,\; C \prod k,\; \prod n_\text{out})` with
          :math:`n_\text{out} = \lfloor (n + 2p - \delta (k - 1) - 1) / s \rfloor + 1`
          (see :func:`convlib.conv_output_size`).
    """
    d = input.dim() - 2
    k = as_tuple(kernel_size, d, "kernel_size")
    s, dil = as_tuple(stride, d, "stride"), as_tuple(dilation, d, "dilation")
    pads = resolve_padding(padding, k, s, dil)
    n, c = input.shape[:2]
    return _windows(input, k, s, pads, dil).reshape(n, c * math.prod(k), -1)


def col2im(input: Tensor, output_size: IntOrTuple, kernel_size: IntOrTuple,
           dilation: IntOrTuple = 1, padding: IntOrTuple = 0, stride: IntOrTuple = 1) -> Tensor:
    r"""Add columns back into the positions they were taken from (N-d ``fold``).

    The transpose of :func:`im2col`: ``<im2col(x), c> == <x, col2im(c)>``. An input entry
    seen by several windows receives the sum of their columns, so
    ``col2im(im2col(x))`` multiplies each entry by the number of windows covering it.
    Entries that land in the padding are dropped. For ``d = 2`` it equals
    :func:`torch.nn.functional.fold`, whose argument order it keeps.

    .. note::
        ``col2im(weight^T @ y)`` is the transposed convolution ``W^T y``, i.e. the gradient
        of ``conv`` with respect to its input: what :func:`conv_transpose2d` returns.

    Args:
        input: :math:`(N, C \prod k, L)` columns, ``L`` the number of windows.
        output_size: the spatial size ``n`` of the image to rebuild (``d`` ints).
        kernel_size, dilation, padding, stride: as in :func:`im2col`.

    Shape:
        - Input: :math:`(N,\; C \prod k,\; \prod n_\text{out})`
        - Output: :math:`(N, C, *n)`
    """
    size = as_tuple(output_size, len(output_size) if not isinstance(output_size, int) else 1,
                  "output_size")
    d = len(size)
    k = as_tuple(kernel_size, d, "kernel_size")
    s, dil, p = (as_tuple(v, d, name) for v, name in
                 ((stride, "stride"), (dilation, "dilation"), (padding, "padding")))
    pads = tuple((a, a) for a in p)
    out = conv_output_size(size, k, s, pads, dil)
    n, ck, L = input.shape
    if ck % math.prod(k) or L != math.prod(out):
        raise RuntimeError(f"col2im: expected input of shape (N, C * {math.prod(k)}, "
                           f"{math.prod(out)}), got input of shape {tuple(input.shape)}")
    cols = input.reshape(n, ck // math.prod(k), *k, *out)  # (N, C, *k, *out)
    return _add_windows_(input.new_zeros(n, ck // math.prod(k), *size), cols, s, dil, p)


# --------------------------------------------------------------------------------------
# The two linear maps and their autograd: each one's gradient is the other
# --------------------------------------------------------------------------------------


#: Stride-1 convolutions with at least this many input channels per group skip the
#: im2col copy (:func:`_conv_shifted`); with fewer, the products would be too thin.
SHIFTED_MIN_CHANNELS = 64

#: :func:`_conv_shifted` pads about this many bytes of the batch at a time and multiplies
#: them together, so that each product has enough work for every core yet stays in cache.
SHIFTED_CHUNK_BYTES = 2 << 20


def _add_product_(out: Tensor, a: Tensor, b: Tensor) -> None:
    """``out += a @ b`` in place, for matrices or batches of them (``out`` may be a view)."""
    (out.addmm_ if a.dim() == 2 else out.baddbmm_)(a, b)


def _shifts(padded: Sequence[int], out: Sequence[int], k: Sequence[int], dilation):
    """Geometry of the stride-1 trick on a flat ``padded`` grid: its strides, the flat
    extent ``span`` of the ``out`` grid on it, and the flat shift of every kernel offset."""
    step = [math.prod(padded[j + 1:]) for j in range(len(k))]
    span = sum((o - 1) * st for o, st in zip(out, step)) + 1
    shifts = [sum(a * dl * st for a, dl, st in zip(kappa, dilation, step))
              for kappa in itertools.product(*map(range, k))]
    return step, span, shifts


def _conv_shifted(x: Tensor, weight: Tensor, pads: Pairs, dilation, groups: int) -> Tensor:
    """``weight @ S x`` for stride 1, without copying the columns.

    Split ``S`` by kernel offset: ``weight @ S x = sum_kappa weight[..., kappa] @ S_kappa x``.
    With stride 1, ``S_kappa x`` is the padded input shifted by ``kappa * dilation``. Flatten
    the padded input and let each output row run on over the padding to the padded width:
    then ``S_kappa x`` is one contiguous slice of it, a matrix operand as it stands. The
    extra entries of each row are dropped at the end. A few samples (and all groups) go
    through each product together, as one batched matrix product.
    """
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight.shape
    padded = [m + a + b for m, (a, b) in zip(size, pads)]
    out = [p - dl * (kk - 1) for p, dl, kk in zip(padded, dilation, k)]
    step, span, shifts = _shifts(padded, out, k, dilation)
    m = max(1, min(n, SHIFTED_CHUNK_BYTES // (c_in * math.prod(padded) * x.element_size())))
    # one contiguous matrix per kernel offset and group, the same for every sample
    w = weight.flatten(2).permute(2, 0, 1).reshape(-1, 1, groups, c_out // groups, c_in_g)
    w = w.contiguous().expand(-1, m, -1, -1, -1).flatten(1, 2)  # (K, m*g, C_out/g, C_in/g)
    buffer = x.new_zeros(m, c_in, math.prod(padded))  # m zero-padded samples, flat
    interior = (slice(None), slice(None), *(slice(a, a + s) for s, (a, _) in zip(size, pads)))
    interior = buffer.view(m, c_in, *padded)[interior]  # (m, C_in, *n), where samples go
    batched = buffer.view(m * groups, c_in_g, -1)  # (m*g, C_in/g, P)
    acc = x.new_empty(m * groups, c_out // groups, span)  # (m*g, C_out/g, span)
    y = x.new_empty(n, c_out, *out)
    for i in range(0, n, m):
        chunk = x[i:i + m]
        b = len(chunk) * groups  # the last chunk may be short
        interior[:len(chunk)].copy_(chunk)
        torch.bmm(w[0, :b], batched[:b, :, shifts[0]:shifts[0] + span], out=acc[:b])
        for w_kappa, shift in zip(w[1:], shifts[1:]):
            acc[:b].baddbmm_(w_kappa[:b], batched[:b, :, shift:shift + span])
        y[i:i + m] = acc[:b].view(len(chunk), c_out, span).as_strided(
            (len(chunk), c_out, *out), (c_out * span, span, *step))  # drop the overrun
    return y


def _conv_transpose_shifted(y: Tensor, weight: Tensor, pads: Pairs, dilation, groups: int,
                            output_padding) -> Tensor:
    """``S^T weight^T y`` for stride 1, the adjoint of :func:`_conv_shifted`: each product
    ``weight[..., kappa]^T @ y`` is added straight into a shifted slice of the flat padded
    output, so col2im happens inside the matrix products."""
    n, c_in, *grid = y.shape
    _, c_out_g, *k = weight.shape
    c_out = groups * c_out_g
    full = [o + dl * (kk - 1) + op for o, dl, kk, op in zip(grid, dilation, k, output_padding)]
    step, span, shifts = _shifts(full, grid, k, dilation)
    w = weight.flatten(2).permute(2, 0, 1)  # (K, C_in, C_out/g): one matrix per offset
    w = w.reshape(-1, groups, c_in // groups, c_out_g).mT.contiguous()  # (K, g, C_out/g, C_in/g)
    spread = y.new_zeros(groups, c_in // groups, span)  # one sample of y, rows run on (zeros)
    grid_view = spread.view(c_in, span).as_strided((c_in, *grid), (span, *step))
    acc = y.new_empty(groups, c_out_g, math.prod(full))  # one padded output sample, flat
    crop = (slice(None), *(slice(a, f - b) for f, (a, b) in zip(full, pads)))
    z = y.new_empty(n, c_out, *(f - a - b for f, (a, b) in zip(full, pads)))
    flat = acc[0] if groups == 1 else acc
    if groups == 1:  # plain 2-d products
        w, spread = w[:, 0], spread[0]
    for i in range(n):
        grid_view.copy_(y[i])
        acc.zero_()
        for w_kappa, shift in zip(w, shifts):
            _add_product_(flat[..., shift:shift + span], w_kappa, spread)  # (g, C_out/g, span)
        z[i] = acc.view(c_out, *full)[crop]
    return z


def _conv(x: Tensor, weight: Tensor, stride, pads: Pairs, dilation, groups: int) -> Tensor:
    """``weight @ S x``: (N, C_in, *n) -> (N, C_out, *out), no bias."""
    if all(s == 1 for s in stride) and weight.shape[1] >= SHIFTED_MIN_CHANNELS:
        return _conv_shifted(x, weight, pads, dilation, groups)
    n, (c_out, _, *k) = x.shape[0], weight.shape
    out = conv_output_size(tuple(x.shape[2:]), tuple(k), tuple(stride), pads, tuple(dilation))
    w = weight.reshape(groups, c_out // groups, -1)  # (g, C_out/g, C_in/g*K)
    y = x.new_empty(n, groups, c_out // groups, math.prod(out))  # (N, g, C_out/g, L)
    for batch, cols in _column_chunks(x, k, stride, pads, dilation, groups):  # (m, g, C_in/g*K, L)
        torch.matmul(w, cols, out=y[batch])  # (m, g, C_out/g, L)
    return y.view(n, c_out, *out)


def _conv_transpose(y: Tensor, weight: Tensor, stride, pads: Pairs, dilation, groups: int,
                    output_padding) -> Tensor:
    """``S^T weight^T y``: (N, C_in, *n) -> (N, C_out, *out), no bias.

    ``pads`` are the (before, after) zeros of the *forward* convolution; they are cropped
    off, and ``output_padding`` more positions are kept at the end.
    """
    if all(s == 1 for s in stride) and weight.shape[0] // groups >= SHIFTED_MIN_CHANNELS:
        return _conv_transpose_shifted(y, weight, pads, dilation, groups, output_padding)
    n, c_in, *grid = y.shape
    _, c_out_g, *k = weight.shape
    K, L = math.prod(k), math.prod(grid)
    w_t = weight.reshape(groups, c_in // groups, c_out_g * K).mT  # (g, C_out/g*K, C_in/g)
    y = y.reshape(n, groups, c_in // groups, L)  # (N, g, C_in/g, L)
    out = [(o - 1) * s + dl * (kk - 1) + 1 - a - b + op for o, s, dl, kk, (a, b), op in
           zip(grid, stride, dilation, k, pads, output_padding)]
    z = y.new_zeros(n, groups * c_out_g, *out)  # (N, C_out, *out)
    crop = [a for a, _ in pads]
    m = max(1, min(n, CHUNK_BYTES // max(1, groups * c_out_g * K * L * y.element_size())))
    buffer = y.new_empty(m, groups, c_out_g * K, L)
    for i in range(0, n, m):  # a few samples at a time, so the columns stay in cache
        cols = torch.matmul(w_t, y[i:i + m], out=buffer[:min(m, n - i)])  # (m, g, C_out/g*K, L)
        cols = cols.view(-1, groups * c_out_g, *k, *grid)  # (m, C_out, *k, *n)
        _add_windows_(z[i:i + m], cols, stride, dilation, crop)  # col2im, minus the padding
    return z


def _weight_grad_shifted(x: Tensor, gy: Tensor, weight_shape, pads: Pairs, dilation,
                         groups: int) -> Tensor:
    """``gy @ (S x)^T`` for stride 1, one block per kernel offset: ``gy @ (S_kappa x)^T``,
    with ``S_kappa x`` a shifted slice of the flat padded input (:func:`_conv_shifted`) and
    ``gy`` spread onto the padded grid, zeros where the rows run on."""
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight_shape
    padded = [m + a + b for m, (a, b) in zip(size, pads)]
    step, span, shifts = _shifts(padded, gy.shape[2:], k, dilation)
    buffer = x.new_zeros(groups, c_in_g, math.prod(padded))  # one zero-padded sample, flat
    interior = (slice(None), *(slice(a, a + m) for m, (a, _) in zip(size, pads)))
    interior = buffer.view(c_in, *padded)[interior]  # (C_in, *n), where the sample goes
    spread = gy.new_zeros(groups, c_out // groups, span)  # one sample of gy, rows run on
    grid_view = spread.view(c_out, span).as_strided((c_out, *gy.shape[2:]), (span, *step))
    gw = x.new_zeros(len(shifts), groups, c_out // groups, c_in_g)  # (K, g, C_out/g, C_in/g)
    blocks = gw
    if groups == 1:  # plain 2-d products
        blocks, spread, buffer = gw[:, 0], spread[0], buffer[0]
    for i in range(n):
        interior.copy_(x[i])
        grid_view.copy_(gy[i])
        for block, shift in zip(blocks, shifts):  # (g, C_out/g, span) @ (g, span, C_in/g)
            _add_product_(block, spread, buffer[..., shift:shift + span].mT)
    return gw.permute(1, 2, 3, 0).reshape(weight_shape)  # (g, C_out/g, C_in/g, K) -> weight


def _weight_grad(x: Tensor, gy: Tensor, weight_shape, stride, pads: Pairs, dilation,
                 groups: int) -> Tensor:
    """d<gy, conv(x, w)>/dw = gy @ S(x)^T, summed over the batch: weight-shaped."""
    n, c_out, *out = gy.shape
    _, c_in_g, *k = weight_shape
    if (all(s == 1 for s in stride) and c_in_g >= SHIFTED_MIN_CHANNELS
            and not torch.is_grad_enabled()):
        return _weight_grad_shifted(x, gy, weight_shape, pads, dilation, groups)
    gy = gy.reshape(n, groups, c_out // groups, math.prod(out))  # (N, g, C_out/g, L)
    gw = gy.new_zeros(groups, c_out // groups, c_in_g * math.prod(k))  # (g, C_out/g, C_in/g*K)
    for batch, cols in _column_chunks(x, k, stride, pads, dilation, groups, out):
        gw = gw + (gy[batch] @ cols.mT).sum(0)  # (m, g, C_out/g, L) @ (m, g, L, C_in/g*K)
    return gw.view(weight_shape)


def _bias_grad(g: Tensor) -> Tensor:
    return g.sum([0, *range(2, g.dim())])


class _Conv(torch.autograd.Function):
    r"""``y = weight @ S x + bias``. Backward uses the same two factors transposed:

    * ``grad_input  = S^T weight^T grad_y`` -- a transposed convolution (:class:`_ConvTranspose`),
    * ``grad_weight = grad_y @ (S x)^T`` -- the columns are rebuilt, a few samples at a
      time, rather than kept from the forward pass (they are ``prod(k)`` times the input),
    * ``grad_bias   = grad_y`` summed over batch and positions.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, pads, dilation, groups):
        y = _conv(x, weight, stride, pads, dilation, groups)  # (N, C_out, *out)
        if bias is not None:
            y += bias.view(-1, *[1] * (y.dim() - 2))
        ctx.args = (stride, pads, dilation, groups)
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.args
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            # conv_transpose of gy, cropped back to x's size: output_padding is the part of
            # the padded input the last window did not reach.
            extra = [n + a + b - ((o - 1) * s + dl * (kk - 1) + 1) for n, (a, b), o, s, dl, kk in
                     zip(x.shape[2:], pads, gy.shape[2:], stride, dilation, weight.shape[2:])]
            gx = _ConvTranspose.apply(gy, weight, None, stride, pads, dilation, groups, extra)
        if ctx.needs_input_grad[1]:
            gw = _weight_grad(x, gy, weight.shape, stride, pads, dilation, groups)
        if ctx.needs_input_grad[2]:
            gb = _bias_grad(gy)
        return gx, gw, gb, None, None, None, None


class _ConvTranspose(torch.autograd.Function):
    r"""``z = S^T weight^T y + bias``, the adjoint of :class:`_Conv`. Backward:

    * ``grad_input  = weight @ S grad_z`` -- a convolution (:class:`_Conv`),
    * ``grad_weight = y @ (S grad_z)^T``,
    * ``grad_bias   = grad_z`` summed over batch and positions.
    """

    @staticmethod
    def forward(ctx, y, weight, bias, stride, pads, dilation, groups, output_padding):
        z = _conv_transpose(y, weight, stride, pads, dilation, groups, output_padding)
        if bias is not None:
            z += bias.view(-1, *[1] * (z.dim() - 2))
        ctx.args = (stride, pads, dilation, groups)
        ctx.save_for_backward(y, weight)
        return z

    @staticmethod
    def backward(ctx, gz):
        y, weight = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.args
        gy = gw = gb = None
        grid = tuple(slice(0, o) for o in y.shape[2:])  # output_padding >= stride adds windows
        if ctx.needs_input_grad[0]:
            gy = _Conv.apply(gz, weight, None, stride, pads, dilation, groups)[(Ellipsis, *grid)]
        if ctx.needs_input_grad[1]:
            # d<gz, S^T w^T y>/dw = y @ (S gz)^T: the conv weight gradient with roles swapped
            gw = _weight_grad(gz, y, weight.shape, stride, pads, dilation, groups)
        if ctx.needs_input_grad[2]:
            gb = _bias_grad(gz)
        return gy, gw, gb, None, None, None, None, None


# --------------------------------------------------------------------------------------
# Argument checking: the same exception classes as torch, before any large allocation
# --------------------------------------------------------------------------------------


def _check_common(fn: str, d: int, input, weight, bias, stride, dilation, groups):
    """Checks shared by conv and conv_transpose; returns (stride, dilation)."""
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor, got {type(t).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{fn}: bias must be a Tensor or None, got {type(bias).__name__}")
    if input.dim() not in (d + 1, d + 2):
        raise RuntimeError(f"{fn}: expected input to be {d + 1}-d (unbatched) or {d + 2}-d "
                           f"(batched), but got input of shape {tuple(input.shape)}")
    if weight.dim() != d + 2:
        raise RuntimeError(f"{fn}: expected weight to be {d + 2}-d, but got weight of shape "
                           f"{tuple(weight.shape)}")
    s, dil = as_tuple(stride, d, "stride"), as_tuple(dilation, d, "dilation")
    if not isinstance(groups, int) or isinstance(groups, bool):
        raise TypeError(f"{fn}: groups must be an int, got {groups!r}")
    if groups <= 0:
        raise RuntimeError(f"{fn}: non-positive groups is not supported, got groups={groups}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"{fn}: non-positive stride is not supported, got stride={stride!r}")
    if any(v <= 0 for v in dil):
        raise RuntimeError(f"{fn}: non-positive dilation is not supported, "
                           f"got dilation={dilation!r}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise RuntimeError(f"{fn}: input dtype ({input.dtype}) and {name} dtype ({t.dtype}) "
                               "should be the same")
        if t is not None and t.device != input.device:
            raise RuntimeError(f"{fn}: input and {name} must be on the same device, got input on "
                               f"{input.device} and {name} on {t.device}")
    if weight.shape[0] == 0 or weight.shape[0] % groups:
        raise RuntimeError(f"{fn}: given groups={groups}, expected weight to be non-empty and "
                           f"divisible by {groups} at dimension 0, but got weight of shape "
                           f"{tuple(weight.shape)}")
    return s, dil


def _check_bias(fn: str, bias, weight, c_out: int):
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != c_out):
        raise RuntimeError(f"{fn}: given weight of shape {tuple(weight.shape)}, expected bias to "
                           f"be 1-d with {c_out} elements, but got bias of shape "
                           f"{tuple(bias.shape)}")


def _conv_nd(d, input, weight, bias, stride, padding, dilation, groups):
    fn = f"conv{d}d"
    s, dil = _check_common(fn, d, input, weight, bias, stride, dilation, groups)
    c_in = input.shape[-d - 1]
    if c_in != weight.shape[1] * groups:
        raise RuntimeError(f"{fn}: given groups={groups}, weight of shape {tuple(weight.shape)}, "
                           f"expected input of shape {tuple(input.shape)} to have "
                           f"{weight.shape[1] * groups} channels, but got {c_in} channels")
    _check_bias(fn, bias, weight, weight.shape[0])
    k = tuple(weight.shape[2:])
    pads = resolve_padding(padding, k, s, dil)
    if any(o < 1 for o in conv_output_size(tuple(input.shape[-d:]), k, s, pads, dil)):
        padded = tuple(n + a + b for n, (a, b) in zip(input.shape[-d:], pads))
        span = tuple(dl * (kk - 1) + 1 for kk, dl in zip(k, dil))
        raise RuntimeError(f"{fn}: calculated padded input size per channel {padded}, kernel size "
                           f"(dilated) {span}: the kernel (weight) can't be larger than the "
                           f"padded input (input, padding)")
    unbatched = input.dim() == d + 1
    x = input.unsqueeze(0) if unbatched else input  # (N, C_in, *n)
    y = _Conv.apply(x, weight, bias, s, pads, dil, groups)  # (N, C_out, *out)
    return y.squeeze(0) if unbatched else _memory_format_like_torch(y, x, weight)


def _conv_transpose_nd(d, input, weight, bias, stride, padding, output_padding, groups, dilation):
    fn = f"conv_transpose{d}d"
    s, dil = _check_common(fn, d, input, weight, bias, stride, dilation, groups)
    if isinstance(padding, str):
        raise TypeError(f"{fn}: padding must be an int or a tuple of {d} ints, got {padding!r}")
    p, op = as_tuple(padding, d, "padding"), as_tuple(output_padding, d, "output_padding")
    if any(v < 0 for v in p):
        raise RuntimeError(f"{fn}: negative padding is not supported, got padding={padding!r}")
    if any(v < 0 for v in op):
        raise RuntimeError(f"{fn}: negative output_padding is not supported, "
                           f"got output_padding={output_padding!r}")
    if any(o >= a and o >= b for o, a, b in zip(op, s, dil)):
        raise RuntimeError(f"{fn}: output_padding must be smaller than either stride or "
                           f"dilation, got output_padding={op}, stride={s}, dilation={dil}")
    c_in = input.shape[-d - 1]
    if c_in != weight.shape[0]:
        raise RuntimeError(f"{fn}: given transposed weight of shape {tuple(weight.shape)}, "
                           f"expected input of shape {tuple(input.shape)} to have "
                           f"{weight.shape[0]} channels, but got {c_in} channels")
    c_out = weight.shape[1] * groups
    _check_bias(fn, bias, weight, c_out)
    k = tuple(weight.shape[2:])
    out = conv_transpose_output_size(tuple(input.shape[-d:]), k, s, p, op, dil)
    if any(o < 1 for o in out):
        raise RuntimeError(f"{fn}: the output size {out} is too small (input {tuple(input.shape)}, "
                           f"weight {tuple(weight.shape)}, padding={p}, stride={s}, "
                           f"dilation={dil})")
    unbatched = input.dim() == d + 1
    y = input.unsqueeze(0) if unbatched else input  # (N, C_in, *n)
    pads = tuple((a, a) for a in p)
    z = _ConvTranspose.apply(y, weight, bias, s, pads, dil, groups, op)  # (N, C_out, *out)
    return z.squeeze(0) if unbatched else _memory_format_like_torch(z, y, weight)


def _memory_format_like_torch(out: Tensor, input: Tensor, weight: Tensor) -> Tensor:
    """torch returns a channels-last 2-d result when the input or the weight is channels-last."""
    cl = torch.channels_last
    if out.dim() == 4 and any(t.is_contiguous(memory_format=cl) and not t.is_contiguous()
                              for t in (input, weight)):
        return out.contiguous(memory_format=cl)
    return out


# --------------------------------------------------------------------------------------
# The public functions: torch.nn.functional's signatures
# --------------------------------------------------------------------------------------

_CONV_DOC = r"""Applies a {d}-d convolution over an input signal composed of several input planes.

    Drop-in for :func:`torch.nn.functional.conv{d}d`, computed as
    ``weight @ im2col(input)``; no torch convolution operator runs, forward or backward.
    For group :math:`g`,

    .. math::

        \text{{out}}[n, c_\text{{out}}, o] = \text{{bias}}[c_\text{{out}}] +
        \sum_{{c=0}}^{{C_\text{{in}}/\text{{groups}} - 1}} \sum_\kappa
        \text{{weight}}[c_\text{{out}}, c, \kappa]\;
        x_\text{{pad}}[n,\, g\,C_\text{{in}}/\text{{groups}} + c,\, o \cdot s + \kappa \cdot \delta]

    (a cross-correlation, as in torch). In matrix form ``vec(out) = W vec(input)`` with
    ``W = weight @ S`` the kernel matrix (:func:`convlib.kernel_matrix`) and ``S`` the
    selection matrix of :func:`im2col`; the gradient with respect to ``input`` is
    ``W^T grad``, i.e. :func:`conv_transpose{d}d`.

    Args:
        input: :math:`(N, C_\text{{in}}, *n)` or unbatched :math:`(C_\text{{in}}, *n)`.
        weight: :math:`(C_\text{{out}}, C_\text{{in}}/\text{{groups}}, *k)`.
        bias: optional :math:`(C_\text{{out}})`. Default: ``None``.
        stride: an int or {d} ints. Default: 1.
        padding: an int, {d} ints, ``'valid'`` (no padding) or ``'same'`` (output as large
            as the input; stride must be 1; an odd number of zeros puts the extra one
            after). Default: 0.
        dilation: spacing between kernel elements, an int or {d} ints. Default: 1.
        groups: split the channels into this many independent convolutions; both
            :math:`C_\text{{in}}` and :math:`C_\text{{out}}` must be divisible by it. Default: 1.

    Shape:
        - Output: :math:`(N, C_\text{{out}}, *n_\text{{out}})` with
          :math:`n_\text{{out}} = \lfloor (n + p_\text{{before}} + p_\text{{after}}
          - \delta (k - 1) - 1) / s \rfloor + 1` (:func:`convlib.conv_output_size`).
    """

_CONV_TRANSPOSE_DOC = r"""Applies a {d}-d transposed convolution, sometimes called "deconvolution".

    Drop-in for :func:`torch.nn.functional.conv_transpose{d}d`: the gradient of
    :func:`conv{d}d` with respect to its input, i.e. multiplication by ``W^T`` where ``W``
    is the kernel matrix of the convolution with the same weight, stride, padding and
    dilation. It is computed as ``col2im(weight^T @ input)``: every input position
    stamps a weighted copy of the kernel into the output, overlapping stamps add up,
    then ``padding`` is cropped off each side:

    .. math::

        \text{{out}}[n, g\,C_\text{{out}}/\text{{groups}} + c, o \cdot s + \kappa \cdot \delta - p]
        \mathrel{{+}}= \text{{weight}}[g\,C_\text{{in}}/\text{{groups}} + c_\text{{in}}, c, \kappa]\;
        \text{{input}}[n, g\,C_\text{{in}}/\text{{groups}} + c_\text{{in}}, o]

    Args:
        input: :math:`(N, C_\text{{in}}, *n)` or unbatched :math:`(C_\text{{in}}, *n)`.
        weight: :math:`(C_\text{{in}}, C_\text{{out}}/\text{{groups}}, *k)`.
        bias: optional :math:`(C_\text{{out}})`. Default: ``None``.
        stride: an int or {d} ints. Default: 1.
        padding: positions cropped off each side of the output: the padding of the
            convolution this is the transpose of. (The equivalent direct convolution
            pads ``dilation * (k - 1) - padding`` zeros.) An int or {d} ints. Default: 0.
        output_padding: extra positions added to one side of the output, to pick among
            the ``stride`` input sizes a strided convolution maps to the same size. Must
            be smaller than either ``stride`` or ``dilation``. Default: 0.
        groups: as in :func:`conv{d}d`. Default: 1.
        dilation: spacing between kernel elements. Default: 1.

    Shape:
        - Output: :math:`(N, C_\text{{out}}, *n_\text{{out}})` with
          :math:`n_\text{{out}} = (n - 1) s - 2p + \delta (k - 1) + \text{{output padding}} + 1`
          (:func:`convlib.conv_transpose_output_size`).
    """


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    return _conv_transpose_nd(1, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    return _conv_transpose_nd(2, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    return _conv_transpose_nd(3, input, weight, bias, stride, padding, output_padding, groups,
                              dilation)


for _d, _f in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _f.__doc__ = _CONV_DOC.format(d=_d)
for _d, _f in ((1, conv_transpose1d), (2, conv_transpose2d), (3, conv_transpose3d)):
    _f.__doc__ = _CONV_TRANSPOSE_DOC.format(d=_d)
del _d, _f
