r"""Strided convolutions as sums of stride-1 ones: the polyphase decomposition of ``W``.

A stride-``s`` convolution reads the padded input only at ``o s + \kappa \delta``. Split
the input into its :math:`\prod s` *phases*, :math:`x_\rho[q] = x_\text{pad}[\rho + s q]`
(one per residue :math:`\rho` modulo the stride), and write each tap's offset as
:math:`\kappa \delta = \rho_\kappa + s\, q_\kappa`. Then

.. math::

    y[o] = \sum_\kappa M_\kappa\, x_\text{pad}[o s + \kappa \delta]
         = \sum_\rho \sum_{\kappa:\ \rho_\kappa = \rho} M_\kappa\, x_\rho[o + q_\kappa],

a sum of stride-1 convolutions, one per phase, each with the taps that land on it (its
*sub-kernel*). As matrices: :math:`W = \sum_\rho W_\rho P_\rho`, with :math:`P_\rho` the
0/1 matrix that picks phase :math:`\rho` out of the padded input and :math:`W_\rho` the
kernel matrix of a stride-1 convolution. Each stride-1 piece is computed as in
``convlib.shifted``: the phases are laid side by side in one flat buffer (one copy of
the input, as padding it would be), every tap is one contiguous slice of it, a matrix
operand as it stands, and the convolution is ``prod(k)`` matrix products accumulated into
one result. Samples are laid one after another along the flat axis too, so each product
covers a few samples at once.

It makes the same products as the definition, padding zeros included, and no others that
reach the kept outputs: NaN and Inf land where torch's do. The weight gradient uses the
same slices (:func:`weight_grad_polyphase`); the products of its run-on entries multiply
the input by zeros, so ``convlib.backends`` uses it only when the input is finite.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

from torch import Tensor

from .shapes import Geometry, per_chunk
from .shifted import _add_product_

__all__ = ["Phases", "phases", "conv_polyphase", "weight_grad_polyphase"]

#: A few samples go through each product together, about this many bytes of input.
CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class Phases:
    """How a strided convolution reads its padded input, phase by phase.

    Attributes:
        residues: the phases :math:`\\rho` that some tap reads (``d`` ints each), in the
            order they are laid out in the flat buffer.
        grid: the size ``Q`` of every phase's grid (the same for all).
        taps: for every kernel offset :math:`\\kappa` (row-major), the index of its phase
            in ``residues`` and its shift :math:`q_\\kappa` on that phase's grid.
    """

    residues: tuple[tuple[int, ...], ...]
    grid: tuple[int, ...]
    taps: tuple[tuple[int, tuple[int, ...]], ...]

    @property
    def step(self) -> list[int]:
        """Flat strides of the phase grid."""
        return [math.prod(self.grid[j + 1:]) for j in range(len(self.grid))]

    @property
    def sample(self) -> int:
        """Flat length of one sample's phases."""
        return len(self.residues) * math.prod(self.grid)

    def offsets(self) -> list[int]:
        """Flat offset of every tap into one sample's phases."""
        size, step = math.prod(self.grid), self.step
        return [r * size + sum(q * st for q, st in zip(shift, step)) for r, shift in self.taps]

    def span(self, out: Sequence[int]) -> int:
        """Flat extent of an ``out`` grid of outputs on the phase grid."""
        return sum((o - 1) * st for o, st in zip(out, self.step)) + 1


def phases(k: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
           out: Sequence[int]) -> Phases:
    """The ``Phases`` of a convolution with kernel ``k`` and ``out`` outputs: tap
    :math:`\\kappa` reads phase :math:`\\kappa \\delta \\bmod s` at shift
    :math:`\\lfloor \\kappa \\delta / s \\rfloor`; each phase grid is just large enough for
    the kept outputs' reads."""
    residues: dict[tuple[int, ...], int] = {}
    taps = []
    for kappa in itertools.product(*map(range, k)):
        e = [a * dl for a, dl in zip(kappa, dilation)]
        rho = tuple(v % s for v, s in zip(e, stride))
        taps.append((residues.setdefault(rho, len(residues)), tuple(v // s for v, s in zip(e, stride))))
    grid = tuple(o + max(shift[j] for _, shift in taps) for j, o in enumerate(out))
    return Phases(tuple(residues), grid, tuple(taps))


def _phase_copies(layout: Phases, size: Sequence[int], padding, stride):
    """For every phase: the slices of ``x`` it holds and where they go on its grid (the
    other entries of the grid are padding: zeros)."""
    copies = []
    for rho in layout.residues:
        src, dst = [], []
        for r, n, (pb, _), s, q_len in zip(rho, size, padding, stride, layout.grid):
            q_lo = max(0, -((r - pb) // s))  # first q with r + s q >= pb
            start = r + s * q_lo - pb  # its position in x
            count = max(0, min(q_len - q_lo, -(-(n - start) // s)))
            src.append(slice(start, start + s * (count - 1) + 1, s) if count else slice(0, 0))
            dst.append(slice(q_lo, q_lo + count))
        copies.append((tuple(src), tuple(dst)))
    return copies


def _chunk(n: int, sample_bytes: int) -> int:
    return per_chunk(n, sample_bytes, CHUNK_BYTES)


class _PhaseBuffer:
    """``m`` samples' phases, flat, one after another, per group:
    ``(g, C/g, m * layout.sample)``; the entries no sample fills stay zero."""

    def __init__(self, x: Tensor, layout: Phases, padding, stride, groups: int, m: int):
        n, c, *size = x.shape
        self.flat = x.new_zeros(groups, c // groups, m * layout.sample)
        view = self.flat.view(c, m, len(layout.residues), *layout.grid)
        self.targets = [(view[(slice(None), slice(None), i, *dst)], src) for i, (src, dst)
                        in enumerate(_phase_copies(layout, size, padding, stride))]

    def fill(self, chunk: Tensor) -> Tensor:
        """Copy ``chunk`` ``(b, C, *n)`` into its phases; the buffer, ``(g, C/g, flat)``."""
        b = len(chunk)
        for target, src in self.targets:
            target[:, :b].copy_(chunk[(slice(None), slice(None), *src)].transpose(0, 1))
        return self.flat


def conv_polyphase(x: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``M S x`` as a sum over phases: ``(N, C_in, *n) -> (N, C_out, *out)``, any stride
    (stride 1 is one phase: the shifted form), dilation and groups.

    A few samples at a time: their phases are copied into one flat buffer, and every tap
    adds one matrix product of its ``(C_out/g, C_in/g)`` weights with a shifted slice of
    it (all groups in one batched product); the run-on entries are dropped at the end."""
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight.shape
    g = geometry.groups
    out = geometry.output_size(size, k)
    layout = phases(k, geometry.stride, geometry.dilation, out)
    offsets, span1, sample = layout.offsets(), layout.span(out), layout.sample
    m = _chunk(n, c_in * sample * x.element_size())
    w = weight.flatten(2).permute(2, 0, 1).reshape(-1, g, c_out // g, c_in_g).contiguous()
    buffer = _PhaseBuffer(x, layout, geometry.padding, geometry.stride, g, m)
    acc = x.new_empty(g, c_out // g, (m - 1) * sample + span1)
    y = x.new_empty(n, c_out, *out)
    if g == 1:
        w, acc_g = w[:, 0], acc[0]
    else:
        acc_g = acc
    for i in range(0, n, m):
        chunk = x[i:i + m]
        b = len(chunk)
        flat = buffer.fill(chunk)
        flat = flat[0] if g == 1 else flat
        span = (b - 1) * sample + span1
        target = acc_g[..., :span]
        for j, (w_kappa, shift) in enumerate(zip(w, offsets)):
            _add_product_(target, w_kappa, flat[..., shift:shift + span], j == 0)
        y[i:i + b] = acc.view(c_out, -1).as_strided(  # drop the run-on
            (b, c_out, *out), (sample, acc.shape[-1], *layout.step))
    return y


def weight_grad_polyphase(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry) -> Tensor:
    """``G (S x)^T`` summed over the batch, phase by phase: for every tap, ``G`` spread
    onto the phase grid (zeros where its rows run on) times the transposed slice of the
    input's phases that :func:`conv_polyphase` multiplies. ``gy`` may cover fewer positions
    than the convolution of ``x`` makes: only its windows are used."""
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight_shape
    g = geometry.groups
    out = gy.shape[2:]
    if n == 0 or math.prod(out) == 0:
        return x.new_zeros(weight_shape)
    layout = phases(k, geometry.stride, geometry.dilation, out)
    offsets, span1, sample = layout.offsets(), layout.span(out), layout.sample
    m = _chunk(n, (c_in + c_out) * sample * x.element_size())
    buffer = _PhaseBuffer(x, layout, geometry.padding, geometry.stride, g, m)
    spread = gy.new_zeros(g, c_out // g, m * sample)  # G on the phase grid, run-on zeros
    grid_view = spread.view(c_out, m, sample).as_strided(
        (c_out, m, *out), (m * sample, sample, *layout.step))
    gw = x.new_empty(len(offsets), g, c_out // g, c_in_g)  # (K, g, C_out/g, C_in/g)
    blocks, sp = (gw[:, 0], spread[0]) if g == 1 else (gw, spread)
    for i in range(0, n, m):
        chunk = x[i:i + m]
        b = len(chunk)
        flat = buffer.fill(chunk)
        flat = flat[0] if g == 1 else flat
        grid_view[:, :b].copy_(gy[i:i + b].transpose(0, 1))
        span = (b - 1) * sample + span1
        for block, shift in zip(blocks, offsets):  # (g, C_out/g, span) @ (g, span, C_in/g)
            _add_product_(block, sp[..., :span], flat[..., shift:shift + span].mT, i == 0)
    # (K, g, C_out/g, C_in/g) -> (g, C_out/g, C_in/g, K): the weight's own layout
    return gw.permute(1, 2, 3, 0).reshape(weight_shape).contiguous()
