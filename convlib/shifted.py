r"""Stride-1 convolutions without the im2col copy: ``S`` split by kernel offset.

``S x`` stacks one block per kernel offset :math:`\kappa`, so

.. math::

    M\,S x = \sum_\kappa M_\kappa\, S_\kappa x,

with :math:`M_\kappa` the ``(C_out, C_in)`` weights of offset :math:`\kappa`. With stride 1,
:math:`S_\kappa x` is the padded input shifted by :math:`\kappa \cdot \delta`. Flatten the
padded input and let each output row run on over the padding to the full padded width:
then :math:`S_\kappa x` is one contiguous slice of it, a matrix operand as it stands, and
the convolution is ``prod(k)`` matrix products accumulated into one result. The extra
entries of each row (the run-on) are dropped at the end.

A one-channel reduction (depthwise: one input channel per group) makes each product an
outer product, done as an elementwise multiply-add.

With stride 1 the transpose is itself a convolution, of the flipped kernel
(:func:`as_convolution`), so it goes the same way. It and the weight gradient multiply
padding or run-on zeros that the definition leaves out, so a non-finite value there would
leak into entries torch computes as finite; :mod:`convlib.backends` uses them only when
those values are finite.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torch import Tensor

from . import gemm
from .shapes import Geometry, per_chunk

__all__ = ["as_convolution", "conv_shifted", "conv_transpose_shifted", "weight_grad_shifted"]

#: :func:`conv_shifted` pads about this many bytes of the batch at a time and multiplies
#: them together, so that each product has enough work for every core yet stays in cache.
CHUNK_BYTES = 2 << 20


def _add_product_(out: Tensor, a: Tensor, b: Tensor, first: bool = False) -> None:
    """``out += a @ b`` in place (``out = a @ b`` if ``first``), for matrices or batches of
    them; ``out`` may be a view.

    A product whose reduction has length one (one input channel per group, as in a
    depthwise layer) is an outer product, ``a * b`` by broadcasting: it is computed as an
    elementwise multiply-add (a depthwise 3x3 layer's forward measured 1.7-2.1x faster
    than with a batch of such thin products)."""
    if a.shape[-1] == 1:
        torch.mul(a, b, out=out) if first else out.addcmul_(a, b)
    elif a.dim() == 2 and gemm.uses_onednn(a, b):  # out is small here: the weight gradient's
        product = gemm.matmul(a, b)
        out.copy_(product) if first else out.add_(product)
    elif a.dim() == 2:
        torch.mm(a, b, out=out) if first else out.addmm_(a, b)
    else:
        torch.bmm(a, b, out=out) if first else out.baddbmm_(a, b)


def shifts(padded: Sequence[int], out: Sequence[int], k: Sequence[int], dilation):
    """Geometry of the trick on a flat ``padded`` grid: its strides, the flat extent
    ``span`` of the ``out`` grid on it, and the flat shift of every kernel offset."""
    step = [math.prod(padded[j + 1:]) for j in range(len(k))]
    span = sum((o - 1) * st for o, st in zip(out, step)) + 1
    offsets = [sum(a * dl * st for a, dl, st in zip(kappa, dilation, step))
               for kappa in itertools.product(*map(range, k))]
    return step, span, offsets


def conv_shifted(x: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``M S x`` for stride 1: ``(N, C_in, *n) -> (N, C_out, *out)``, no copy of the columns.

    A few samples (and all groups) go through each product together, as one batched
    matrix product."""
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight.shape
    g, dilation = geometry.groups, geometry.dilation
    padded = geometry.padded_size(size)
    out = [p - dl * (kk - 1) for p, dl, kk in zip(padded, dilation, k)]
    step, span, offsets = shifts(padded, out, k, dilation)
    m = per_chunk(n, c_in * math.prod(padded) * x.element_size(), CHUNK_BYTES)
    # one contiguous matrix per kernel offset and group, the same for every sample
    w = weight.flatten(2).permute(2, 0, 1).reshape(-1, 1, g, c_out // g, c_in_g)
    w = w.contiguous().expand(-1, m, -1, -1, -1).flatten(1, 2)  # (K, m*g, C_out/g, C_in/g)
    buffer = x.new_zeros(m, c_in, math.prod(padded))  # m zero-padded samples, flat
    # (m, C_in, *n): where the samples go
    interior = buffer.view(m, c_in, *padded)[(slice(None), slice(None), *geometry.interior(size))]
    batched = buffer.view(m * g, c_in_g, -1)  # (m*g, C_in/g, P)
    acc = x.new_empty(m * g, c_out // g, span)  # (m*g, C_out/g, span)
    y = x.new_empty(n, c_out, *out)
    for i in range(0, n, m):
        chunk = x[i:i + m]
        b = len(chunk) * g  # the last chunk may be short
        interior[:len(chunk)].copy_(chunk)
        for j, (w_kappa, shift) in enumerate(zip(w, offsets)):
            _add_product_(acc[:b], w_kappa[:b], batched[:b, :, shift:shift + span], j == 0)
        y[i:i + m] = acc[:b].view(len(chunk), c_out, span).as_strided(
            (len(chunk), c_out, *out), (c_out * span, span, *step))  # drop the run-on
    return y


def as_convolution(y: Tensor, weight: Tensor, geometry: Geometry):
    r"""A stride-1 transposed convolution as a convolution: ``(y, weight, geometry)`` of the
    convolution that computes ``W^T y``.

    With stride 1, :math:`W^\top` is the kernel matrix of the flipped kernel with input and
    output channels swapped (within each group), on ``y`` padded by
    :math:`\delta (k - 1) - p_\text{before}` before and
    :math:`\delta (k - 1) - p_\text{after} + \text{output padding}` after, per dimension,
    with :math:`p` the convolution's padding (``geometry.padding``); a negative padding crops
    ``y`` instead (a view)."""
    c_in, c_out_g, *k = weight.shape
    g = geometry.groups
    flipped = weight.reshape(g, c_in // g, c_out_g, *k).transpose(1, 2)
    flipped = flipped.reshape(g * c_out_g, c_in // g, *k).flip(list(range(2, 2 + len(k))))
    op = geometry.output_padding or (0,) * len(k)
    pads = [(dl * (kk - 1) - a, dl * (kk - 1) - b + o)
            for kk, dl, (a, b), o in zip(k, geometry.dilation, geometry.padding, op)]
    crop = tuple(slice(max(0, -before), n - max(0, -after))
                 for n, (before, after) in zip(y.shape[2:], pads))
    pads = tuple((max(0, before), max(0, after)) for before, after in pads)
    return y[(slice(None), slice(None), *crop)], flipped, Geometry(geometry.stride, pads, geometry.dilation, g)


def conv_transpose_shifted(y: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``S^T M^T y`` for stride 1: the convolution of :func:`as_convolution`, computed by
    :func:`conv_shifted` (a few samples per product). ``(N, C_in, *n) -> (N, C_out, *out)``.

    Its products multiply the padding zeros by the weights, which the transpose's
    definition does not: the result differs only where a weight is not finite."""
    return conv_shifted(*as_convolution(y, weight, geometry))


def weight_grad_shifted(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry) -> Tensor:
    """``G (S x)^T`` for stride 1, one block per kernel offset: ``G (S_kappa x)^T``, with
    ``S_kappa x`` a shifted slice of the flat padded input (:func:`conv_shifted`) and
    ``G`` spread onto the padded grid, zeros where the rows run on.

    A few samples go through each product together: their padded grids lie one after the
    other in one flat buffer, and ``G`` is zero between them, so one product's reduction
    also sums over those samples (a LeNet layer of 64 samples: 25 products instead of
    1600)."""
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight_shape
    g = geometry.groups
    padded = geometry.padded_size(size)
    P = math.prod(padded)
    step, span, offsets = shifts(padded, gy.shape[2:], k, geometry.dilation)
    m = per_chunk(n, max(c_in, c_out) * P * x.element_size(), CHUNK_BYTES)
    L = (m - 1) * P + span  # the flat extent of m samples' output grids
    buffer = x.new_zeros(g, c_in_g, m * P)  # m zero-padded samples, flat, one after another
    interior = buffer.view(c_in, m, *padded)[(slice(None), slice(None), *geometry.interior(size))]
    spread = gy.new_zeros(g, c_out // g, L)  # G of m samples on their grids, zeros between
    grid_view = spread.view(c_out, L).as_strided((c_out, m, *gy.shape[2:]), (L, P, *step))
    gw = x.new_zeros(len(offsets), g, c_out // g, c_in_g)  # (K, g, C_out/g, C_in/g)
    blocks = gw
    if g == 1:  # plain 2-d products
        blocks, spread, buffer = gw[:, 0], spread[0], buffer[0]
    for i in range(0, n, m):
        r = min(m, n - i)  # the last chunk may be short
        interior[:, :r].copy_(x[i:i + r].transpose(0, 1))
        grid_view[:, :r].copy_(gy[i:i + r].transpose(0, 1))
        extent = (r - 1) * P + span
        for block, shift in zip(blocks, offsets):  # (g, C_out/g, L) @ (g, L, C_in/g)
            _add_product_(block, spread[..., :extent], buffer[..., shift:shift + extent].mT)
    # (K, g, C_out/g, C_in/g) -> (g, C_out/g, C_in/g, K): the weight's own layout
    return gw.permute(1, 2, 3, 0).reshape(weight_shape).contiguous()
