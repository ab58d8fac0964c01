r"""Strided transposed convolutions as interleaved stride-1 ones: the sub-pixel
decomposition of ``W^T``.

A transposed convolution with stride ``s`` spreads input position ``i`` to the outputs
:math:`o' = i s + \kappa \delta` (before the padding is cropped). Sort the outputs by
their *phase*, the residue :math:`\rho = o' \bmod s` (per dimension, :math:`\prod s`
phases in all): output :math:`o' = \rho + s q` of phase :math:`\rho` receives only the
taps with :math:`\kappa \delta \equiv \rho \pmod s`, from input :math:`i = q - (\kappa\delta
- \rho)/s`. Those taps are every :math:`s' = s / \gcd(s, \delta)`-th one, starting at the
first that qualifies, and their shifts are :math:`\delta' = \delta s' / s` apart, so

.. math::

    z_\rho = W_\rho^\top\, y, \qquad
    W^\top = \sum_\rho P_\rho^\top\, W_\rho^\top,

with :math:`W_\rho` the kernel matrix of a *stride-1* convolution whose kernel is the
phase's sub-kernel (dilation :math:`\delta'`), and :math:`P_\rho^\top` the 0/1 matrix that
puts phase :math:`\rho` back among the others (an interleave: each output belongs to
exactly one phase). Each stride-1 piece is the convolution of ``y``, padded by the sub-kernel's span, with the
flipped sub-kernel (:func:`convlib.shifted.conv_transpose_shifted`), or one matrix product when the
sub-kernel has a single tap: no products with inserted zeros (the "zero-stuffed" input),
no scatter-add of columns.
With kernel ``k = s`` (the UNet and sub-pixel-convolution layers) every phase has one tap
per dimension and the layer is :math:`\prod s` plain matrix products.

Like the shifted form it multiplies the weights by the zeros where rows run on, so
``convlib.backends`` uses it only when the values are finite.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

from torch import Tensor

from .shapes import Geometry
from .pointwise import conv_transpose_pointwise
from .shifted import conv_transpose_shifted

__all__ = ["phase_taps", "conv_transpose_subpixel"]


def phase_taps(k: int, stride: int, dilation: int, rho: int) -> Optional[tuple[slice, int, int]]:
    r"""The taps of one dimension that write to outputs of phase ``rho``.

    Returns ``(taps, shift, dilation')``: the taps as a slice of the kernel (every
    :math:`s'`-th from the first with :math:`\kappa \delta \equiv \rho`), the input shift
    :math:`(\kappa_0 \delta - \rho)/s` of the first one, and the spacing :math:`\delta'`
    of their shifts; ``None`` when no tap reaches the phase (``k < s``)."""
    first = next((a for a in range(k) if (a * dilation - rho) % stride == 0), None)
    if first is None:
        return None
    every = stride // math.gcd(stride, dilation)
    return slice(first, k, every), (first * dilation - rho) // stride, dilation * every // stride


def _stride_one_transpose(y: Tensor, sub: Tensor, dilation, g: int) -> Tensor:
    """The full (uncropped) stride-1 transposed convolution of ``y`` with ``sub``: one
    matrix product per sample and group when ``sub`` has one tap, else the shifted form
    (the convolution of ``y`` padded by the kernel's span with the flipped, transposed
    kernel: :func:`convlib.shifted.as_convolution`)."""
    d = len(dilation)
    full = Geometry((1,) * d, ((0, 0),) * d, tuple(dilation), g)
    if all(kk == 1 for kk in sub.shape[2:]):
        return conv_transpose_pointwise(y, sub, full)
    return conv_transpose_shifted(y, sub, full)


def conv_transpose_subpixel(y: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``W^T y`` for any stride, one stride-1 transposed convolution per output phase,
    written into its interleaved positions: ``(N, C_in, *n) -> (N, C_out, *out)``.

    ``geometry.padding`` is cropped off and ``geometry.output_padding`` kept, as in
    ``convlib.columns.conv_transpose_columns``."""
    n, c_in, *grid = y.shape
    _, c_out_g, *k = weight.shape
    g = geometry.groups
    out = geometry.transpose_output_size(grid, k)
    z = y.new_zeros(n, g * c_out_g, *out)
    per_dim = [[phase_taps(kk, s, dl, r) for r in range(s)]
               for kk, s, dl in zip(k, geometry.stride, geometry.dilation)]
    for rho in itertools.product(*(range(s) for s in geometry.stride)):
        taps = [per_dim[j][r] for j, r in enumerate(rho)]
        if any(t is None for t in taps):
            continue  # no tap reaches this phase: its outputs stay zero
        sub = weight[(slice(None), slice(None), *(t for t, _, _ in taps))]
        zr = _stride_one_transpose(y, sub, tuple(dl for _, _, dl in taps), g)
        dst, src = [], []
        for r, (_, shift, _), s, (p, _), o, length in zip(
                rho, taps, geometry.stride, geometry.padding, out, zr.shape[2:]):
            t_lo = max(0, -((r + s * shift - p) // s))  # first entry at or after the crop
            start = r + s * (shift + t_lo) - p  # its output position
            count = max(0, min(length - t_lo, -(-(o - start) // s)))
            if count == 0:
                break
            dst.append(slice(start, start + s * (count - 1) + 1, s))
            src.append(slice(t_lo, t_lo + count))
        else:
            z[(Ellipsis, *dst)] = zr[(Ellipsis, *src)]
    return z
