r"""The selection matrix ``S`` of im2col, and its transpose, without building either.

The kernel matrix factors as ``W = (M \otimes I) S``: ``M`` holds the weights, and the 0/1
matrix ``S`` copies every input entry a window sees into one column per output position.
``S`` is never stored. Applied to a tensor it is a *view*, :func:`windows`, which reads
the padded input in place; its transpose adds columns back where they came from,
:func:`add_windows_`. :func:`im2col` and :func:`col2im` are the two as public functions,
N-dimensional ``unfold`` and ``fold``.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator, Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from .shapes import (Geometry, IntOrTuple, Padding, Pairs, as_tuple, conv_output_size, per_chunk,
                     resolve_padding)

__all__ = ["im2col", "col2im", "windows", "add_windows_", "tap_slices", "column_chunks", "pad"]


def pad(x: Tensor, padding: Pairs) -> Tensor:
    """``x`` with ``padding[j] = (before, after)`` zeros around spatial dimension ``j``."""
    if not any(p for pair in padding for p in pair):
        return x
    return F.pad(x, [p for pair in reversed(padding) for p in pair])


def windows(x: Tensor, k: Sequence[int], stride: Sequence[int], padding: Pairs,
            dilation: Sequence[int]) -> Tensor:
    """Every window of ``x`` as a view (no copy): ``(N, C, *k, *out)``.

    Entry ``[n, c, kappa, o]`` is ``x_pad[n, c, o * stride + kappa * dilation]``: one step
    along a kernel axis moves ``dilation`` pixels, one step along an output axis moves
    ``stride`` pixels. ``Tensor.unfold`` cuts each spatial axis into its windows, and a
    strided slice keeps every ``dilation``-th tap of each.
    """
    d = len(k)
    x = pad(x, padding)  # (N, C, *padded)
    for j in range(d):  # (N, C, *out[:j], *padded[j:], *span[:j]) -> one more axis cut
        x = x.unfold(2 + j, dilation[j] * (k[j] - 1) + 1, stride[j])
    taps = (Ellipsis, *(slice(None, None, dl) for dl in dilation))
    x = x[taps]  # (N, C, *out, *k)
    return x.permute(0, 1, *range(2 + d, 2 + 2 * d), *range(2, 2 + d))  # (N, C, *k, *out)


def tap_slices(kappa: Sequence[int], dilation: Sequence[int], stride: Sequence[int],
               out: Sequence[int], size: Sequence[int], crop: Sequence[int]):
    """Where kernel offset ``kappa`` meets an array of ``size`` that starts ``crop``
    positions into the padded input: ``(windows, positions)``, per dimension a slice of the
    ``out`` windows whose tap lands inside the array, and the strided slice of the array
    positions they land on (the same number of each)."""
    windows, positions = [], []
    for a, dl, s, o, n, c in zip(kappa, dilation, stride, out, size, crop):
        start = a * dl - c  # window w lands on start + w * s
        lo = max(0, -(start // s))
        hi = max(lo, min(o, (n - 1 - start) // s + 1))
        windows.append(slice(lo, hi))
        positions.append(slice(start + lo * s, start + (hi - 1) * s + 1, s) if hi > lo else slice(0, 0))
    return windows, positions


def add_windows_(x: Tensor, cols: Tensor, stride: Sequence[int], dilation: Sequence[int],
                 crop: Sequence[int]) -> Tensor:
    """The transpose of :func:`windows`: add the windows ``cols`` ``(N, C, *k, *out)`` back
    into ``x`` ``(N, C, *size)`` in place, where ``x`` starts ``crop`` positions into the
    padded input; what falls outside ``x`` is padding and is dropped. One strided slice per
    kernel offset: ``prod(k)`` additions, each at most the size of the output."""
    d = x.dim() - 2
    k, out, size = cols.shape[2:2 + d], cols.shape[2 + d:], x.shape[2:]
    for kappa in itertools.product(*map(range, k)):
        src, dst = tap_slices(kappa, dilation, stride, out, size, crop)
        x[(Ellipsis, *dst)] += cols[(slice(None), slice(None), *kappa, *src)]
    return x


#: Columns are built this many bytes at a time (a few samples of the batch), so they
#: stay in cache between the copy that makes them and the product that uses them.
CHUNK_BYTES = 4 << 20


def column_chunks(x: Tensor, k: Sequence[int], geometry: Geometry,
                  out: Optional[Sequence[int]] = None) -> Iterator[tuple[slice, Tensor]]:
    """Yield ``(batch slice, columns)``: :math:`S x` for a few samples at a time, as
    ``(m, g, C/g * prod(k), L)`` columns copied into one reused buffer, so that they stay
    in cache for the product that follows. ``out`` keeps only the first windows in each
    dimension (a transposed convolution with ``output_padding`` can have fewer)."""
    n, c, *size = x.shape
    g = geometry.groups
    out = out or geometry.output_size(size, k)
    first = (Ellipsis, *(slice(0, o) for o in out))
    rows, L = c // g * math.prod(k), math.prod(out)
    m = per_chunk(n, g * rows * L * x.element_size(), CHUNK_BYTES)
    buffer = x.new_empty(m, g, rows, L)
    padded = None  # a reused zero-padded copy of the chunk: its border is zeroed once
    if geometry.padded:
        padded = x.new_zeros(m, c, *geometry.padded_size(size))
    interior = (Ellipsis, *geometry.interior(size))
    no_padding = ((0, 0),) * len(k)
    for i in range(0, n, m):
        chunk = x[i:i + m]  # (m, C, *n)
        if padded is not None:
            padded[:len(chunk)][interior] = chunk
            chunk = padded[:len(chunk)]  # (m, C, *padded)
        view = windows(chunk, k, geometry.stride, no_padding, geometry.dilation)[first]
        cols = buffer[:len(chunk)]  # (m, g, C/g*K, L)
        cols.view(view.shape).copy_(view)  # the im2col copy: (m, C, *k, *out)
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
    return windows(input, k, s, pads, dil).reshape(n, c * math.prod(k), -1)


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
    size = as_tuple(output_size, 1, "output_size") if isinstance(output_size, int) else \
        tuple(as_tuple(output_size, len(output_size), "output_size"))
    d = len(size)
    k = as_tuple(kernel_size, d, "kernel_size")
    s, dil, p = (as_tuple(v, d, name) for v, name in
                 ((stride, "stride"), (dilation, "dilation"), (padding, "padding")))
    out = conv_output_size(size, k, s, p, dil)
    n, ck, L = input.shape
    if ck % math.prod(k) or L != math.prod(out):
        raise RuntimeError(f"col2im: expected input of shape (N, C * {math.prod(k)}, "
                           f"{math.prod(out)}), got input of shape {tuple(input.shape)}")
    cols = input.reshape(n, ck // math.prod(k), *k, *out)  # (N, C, *k, *out)
    return add_windows_(input.new_zeros(n, ck // math.prod(k), *size), cols, s, dil, p)
