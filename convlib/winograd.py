r"""Winograd's minimal filtering: stride-1 ``3``-tap convolutions with fewer products.

Cut the output into tiles of ``m`` positions per dimension. A tile needs
:math:`\alpha = m + 2` input positions (its window ``d``), and for a kernel ``g`` of 3 taps

.. math::

    y = A^\top \big[ (G g) \odot (B^\top d) \big]  \quad\text{(1-d)},\qquad
    Y = A^\top \big[ (G g G^\top) \odot (B^\top d B) \big] A  \quad\text{(2-d)},

with :math:`A^\top` of size :math:`m \times \alpha`, :math:`G` of size :math:`\alpha \times 3`
and :math:`B^\top` of size :math:`\alpha \times \alpha` (:func:`winograd_matrices`). A tile
of :math:`m^d` outputs then costs :math:`\alpha^d` products per channel pair instead of
:math:`3^d m^d`: :math:`F(2 \times 2, 3 \times 3)` makes 16 instead of 36,
:math:`F(4 \times 4, 3 \times 3)` 36 instead of 144.

As a factorization of the kernel matrix: restricted to one tile, ``W`` is the
:math:`m^d \times \alpha^d` block :math:`A^\top \operatorname{diag}(G g) B^\top` (its
Kronecker square in 2-d), and over channels the diagonal becomes a matrix per transform
position: with :math:`U_\xi = (G g G^\top)_\xi` the ``(C_out, C_in)`` matrix of position
:math:`\xi` and :math:`V_\xi` the ``(C_in, tiles)`` matrix of transformed inputs,
:math:`M_\xi = U_\xi V_\xi` is one matrix product per position (a batched GEMM over the
:math:`\alpha^d` positions), and ``Y`` is :math:`A^\top M A` tile by tile.

The matrices come from polynomial interpolation at :math:`\alpha - 1` points and the point
at infinity (Toom-Cook; Lavin and Gray's derivation): the correlation of ``g`` with ``d``
is the transpose of the product of two polynomials, evaluated at the points, multiplied
pointwise and interpolated back. It is exact in exact arithmetic, but it adds and
subtracts values scaled by the points' powers, so its rounding error in floating point is
larger than the direct sum's; ``POINTS`` lists the points measured to keep it
smallest, and ``convlib.backends`` uses a tile size only where the measured error stays
within twice torch's own (``tests/test_winograd.py``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Sequence

import torch
from torch import Tensor

from .shapes import Geometry
from .shifted import as_convolution

__all__ = ["POINTS", "winograd_matrices", "conv_winograd", "conv_transpose_winograd"]

#: The interpolation points (besides infinity) of :math:`F(m, 3)` for each output tile
#: size ``m``: the usual small integers and halves, chosen by measured float32 error.
POINTS = {
    2: (0, 1, -1),
    4: (0, 1, -1, Fraction(1, 2), -2),
    6: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}


def _poly_mul(p: list, q: list) -> list:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


@functools.lru_cache(maxsize=None)
def winograd_matrices(m: int, r: int = 3, points: tuple = ()) -> tuple[list, list, list]:
    r"""``(A^T, G, B^T)`` of :math:`F(m, r)`, exactly (as ``fractions.Fraction``).

    With :math:`\alpha = m + r - 1` and points :math:`p_0, \dots, p_{\alpha-2}` (and
    infinity), the correlation :math:`y_i = \sum_k g_k d_{i+k}` of ``m`` outputs is
    :math:`y = A^\top [(G g) \odot (B^\top d)]`, where

    * :math:`A^\top_{ij} = p_j^i` (evaluation of the output polynomial; the last column,
      infinity, is 1 in the last row only),
    * :math:`G_{jk} = p_j^k / f_j`, :math:`f_j = \prod_{l \ne j} (p_j - p_l)`
      (evaluation of the kernel; the last row is :math:`(0, \dots, 0, 1)`),
    * row ``j`` of :math:`B^\top` holds the coefficients of
      :math:`\prod_{l \ne j} (x - p_l)`, the last row those of :math:`\prod_l (x - p_l)`
      (Lagrange interpolation, transposed).

    Returns lists of rows; ``points`` defaults to ``POINTS`` ``[m]``.
    """
    alpha = m + r - 1
    pts = [Fraction(p) for p in (points or POINTS[m])]
    if len(pts) != alpha - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} distinct points, got {points!r}")
    a_t = [[p ** i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    g_rows, b_t = [], []
    for j, p in enumerate(pts):
        others = [q for i, q in enumerate(pts) if i != j]
        f = math.prod((p - q for q in others), start=Fraction(1))
        sign = 1 if f > 0 else -1  # keep the input transform's leading entries positive
        g_rows.append([sign * p ** k / f for k in range(r)])
        poly = functools.reduce(_poly_mul, ([-q, Fraction(1)] for q in others), [Fraction(1)])
        b_t.append([sign * c for c in poly] + [Fraction(0)])
    g_rows.append([Fraction(int(k == r - 1)) for k in range(r)])
    b_t.append(functools.reduce(_poly_mul, ([-q, Fraction(1)] for q in pts), [Fraction(1)]))
    return a_t, g_rows, b_t


def _combine_(out: Tensor, row: Sequence[Fraction], parts: Sequence[Tensor]) -> None:
    """``out = sum_j row[j] * parts[j]``, skipping the zeros: a few fused passes."""
    terms = [(float(c), p) for c, p in zip(row, parts) if c != 0]
    (c0, p0), rest = terms[0], terms[1:]
    if rest and c0 == 1:
        c1, p1 = rest.pop(0)
        torch.add(p0, p1, alpha=c1, out=out)
    elif rest and c0 == -1 and rest[0][0] == 1:
        torch.sub(rest.pop(0)[1], p0, out=out)
    else:
        torch.mul(p0, c0, out=out)
    for c, p in rest:
        out.add_(p, alpha=c)


def _apply_(out: Tensor, matrix: Sequence[Sequence[Fraction]], parts: Sequence[Tensor]) -> None:
    """``out[i] = sum_j matrix[i][j] * parts[j]`` (``out`` indexed along its first axis)."""
    for i, row in enumerate(matrix):
        _combine_(out[i], row, parts)


def _windows(t: Tensor, axis: int, alpha: int, m: int, tiles: int) -> list[Tensor]:
    """Entry ``j`` of every tile's window along ``axis``: tile ``s`` reads position
    ``s * m + j``. Strided views, no copy: ``alpha`` of them, each with ``tiles`` entries
    along ``axis``."""
    index = (slice(None),) * axis
    return [t[(*index, slice(j, j + (tiles - 1) * m + 1, m))] for j in range(alpha)]


def _scratch(flat: Tensor, *shape: int) -> Tensor:
    """A contiguous tensor of ``shape`` at the start of the reused buffer ``flat``."""
    return flat[:math.prod(shape)].view(shape)


def _kernel_transform(weight: Tensor, mats_g) -> Tensor:
    """``G g G^T`` for every channel pair, rounded once:
    (C_out, C_in, 3[, 3]) -> (alpha^d, C_out, C_in), one small matrix product."""
    c_out, c_in, *k = weight.shape
    kron = torch.ones(1, 1, dtype=torch.float64)
    for g_mat in mats_g:  # (alpha^d, 3^d): G, or G (x) G in 2-d
        g_t = torch.tensor([[float(v) for v in row] for row in g_mat], dtype=torch.float64)
        kron = torch.kron(kron, g_t)
    kron = kron.to(weight.device, weight.dtype)
    return (kron @ weight.reshape(c_out * c_in, -1).T).view(-1, c_out, c_in)


#: The transforms and products run over this many bytes of tiles at a time (a few samples,
#: or a band of tile rows of one), so that they stay in cache from one step to the next.
CHUNK_BYTES = 4 << 20


#: ... but at least this many tiles, so that each product is wide enough to be fast.
MIN_TILES = 256


def _units(n: int, tile_rows: int, tile_bytes: int, row_tiles: int):
    """Work units ``(samples, tile rows)``: whole samples when one fits the chunk, else
    bands of tile rows of one sample."""
    tiles = max(MIN_TILES, CHUNK_BYTES // max(1, tile_bytes))
    per_sample = tile_rows * row_tiles
    if per_sample <= tiles:
        step = max(1, min(n, tiles // per_sample))
        for i in range(0, n, step):
            yield slice(i, min(n, i + step)), slice(0, tile_rows)
        return
    band = max(1, tiles // row_tiles)
    for i in range(n):
        for r in range(0, tile_rows, band):
            yield slice(i, i + 1), slice(r, min(tile_rows, r + band))


def _matrix(rows: Sequence[Sequence[Fraction]], like: Tensor) -> Tensor:
    return torch.tensor([[float(v) for v in row] for row in rows], dtype=like.dtype,
                        device=like.device)


def conv_winograd(x: Tensor, weight: Tensor, geometry: Geometry, m: Sequence[int]) -> Tensor:
    r"""The stride-1, undilated convolution with a 3-tap kernel, Winograd's way:
    ``(N, C_in, *n) -> (N, C_out, *out)``, in 1-d or 2-d, with tiles of ``m`` outputs per
    dimension (:math:`F(m, 3)`, :math:`F(m_1 \times m_2, 3 \times 3)`).

    A few tiles at a time (a few samples, or a band of tile rows of one), so that they stay
    in cache: the windows ``d`` of the tiles, gathered by one copy from a zero-padded band
    of the input; the input transform :math:`V = B^\top d B`, one small matrix product
    per dimension; one matrix product :math:`M_\xi = U_\xi V_\xi` per transform position
    :math:`\xi` and group (a batched GEMM); the output transform :math:`A^\top M A`,
    again one product per dimension, copied into the output's tiles.
    """
    n, c_in, *size = x.shape
    c_out, c_in_g, *k = weight.shape
    d, g = len(k), geometry.groups
    c_out_g = c_out // g
    out = geometry.output_size(size, k)
    if n == 0 or c_out == 0:
        return x.new_zeros(n, c_out, *out)
    mats = [winograd_matrices(mm) for mm in m]  # (A^T, G, B^T) per dimension
    a_t = [_matrix(mt[0], x) for mt in mats]
    b_t = [_matrix(mt[2], x) for mt in mats]
    alpha = [mm + 2 for mm in m]
    tiles = [-(-o // mm) for o, mm in zip(out, m)]
    A = math.prod(alpha)
    u = _kernel_transform(weight, [mt[1] for mt in mats]).view(A, g, c_out_g, c_in_g)
    (p0, _), *rest_pad = geometry.padding
    y = x.new_empty(n, c_out, *(t * mm for t, mm in zip(tiles, m)))  # whole tiles
    row_tiles = math.prod(tiles[1:])
    units = list(_units(n, tiles[0], A * (c_in + c_out) * x.element_size(), row_tiles))
    most_b = max(s.stop - s.start for s, _ in units)
    most_r = max(r.stop - r.start for _, r in units)
    region = A * max(c_in, c_out) * most_b * most_r * row_tiles
    flat = x.new_empty(2 * region)  # two regions: each step reads one and writes the other
    # a zero-padded band of the input: the rows that most_r tile rows read
    band = x.new_zeros(most_b, c_in, most_r * m[0] + 2,
                       *(t * mm + 2 for t, mm in zip(tiles[1:], m[1:])))
    cols = tuple(slice(a, a + s) for s, (a, _) in zip(size[1:], rest_pad))
    for batch, rows in units:
        b, tr = batch.stop - batch.start, rows.stop - rows.start
        grid = (tr, *tiles[1:])
        L = b * tr * row_tiles
        # the band: input rows first - p0 ... first - p0 + height, zeros outside the input
        first, height = rows.start * m[0] - p0, tr * m[0] + 2
        lo, hi = max(0, first), min(size[0], first + height)
        part = band[:b, :, :height]
        part[:, :, :lo - first].zero_()  # rows in the padding (or past the input)
        part[:, :, hi - first:].zero_()
        part[(slice(None), slice(None), slice(lo - first, hi - first), *cols)] = x[batch, :, lo:hi]
        windows = part
        for j in range(d):  # (b, C_in, *grid, *alpha)
            windows = windows.unfold(2 + j, alpha[j], m[j])
        v_buf, m_buf = flat[:region], flat[region:]
        dtile = v_buf[:A * c_in * L].view(*alpha, c_in, b, *grid)
        dtile.copy_(windows.permute(*range(2 + d, 2 + 2 * d), 1, 0, *range(2, 2 + d)))
        # V = B^T d B: one small product per dimension
        work = m_buf[:A * c_in * L].view(alpha[0], -1)
        torch.mm(b_t[0], dtile.view(alpha[0], -1), out=work)
        if d == 2:
            v = dtile.view(alpha[0], alpha[1], -1)
            torch.matmul(b_t[1], work.view(alpha[0], alpha[1], -1), out=v)
        else:
            v = work
        prods = (m_buf if d == 2 else v_buf)[:A * c_out * L].view(A, g, c_out_g, L)
        # torch.matmul, not convlib.gemm's oneDNN route: measured, oneDNN's order of summation
        # took F(2x2, 3x3)'s error above twice torch's (WINOGRAD_TILES) on 256-channel layers
        torch.matmul(u, v.view(A, g, c_in_g, L), out=prods)  # (A, g, C_out/g, L)
        # Y = A^T M A
        ys = y[batch, :, rows.start * m[0]:rows.stop * m[0]]  # (b, C_out, tr*m0, ...)
        tmp = (v_buf if d == 2 else m_buf)[:m[0] * (A // alpha[0]) * c_out * L]
        tmp = tmp.view(m[0], -1)
        torch.mm(a_t[0], prods.view(alpha[0], -1), out=tmp)  # (m0, alpha1*C_out*L)
        if d == 2:
            res = (m_buf[:m[0] * m[1] * c_out * L]).view(m[0], m[1], -1)
            torch.matmul(a_t[1], tmp.view(m[0], alpha[1], -1), out=res)
            view = ys.unflatten(3, (tiles[1], m[1])).unflatten(2, (tr, m[0]))
            view = view.permute(3, 5, 1, 0, 2, 4)  # (m0, m1, C_out, b, t0, t1)
            view.copy_(res.view(m[0], m[1], c_out, b, *grid))
        else:
            view = ys.unflatten(2, (tr, m[0])).permute(3, 1, 0, 2)  # (m, C_out, b, t)
            view.copy_(tmp.view(m[0], c_out, b, tr))
    if list(y.shape[2:]) != list(out):  # the last tiles run over the output: crop
        y = y[(Ellipsis, *(slice(0, o) for o in out))]
    return y


def conv_transpose_winograd(y: Tensor, weight: Tensor, geometry: Geometry,
                            m: Sequence[int]) -> Tensor:
    r"""The transpose of a stride-1 3-tap convolution, Winograd's way: ``W^T y`` is the
    convolution of ``y`` with the flipped kernel, input and output channels swapped, padded
    by :math:`k - 1 - p` before and :math:`k - 1 - p + \text{output padding}` after
    (:math:`W(g)^\top = W(\operatorname{flip} g^\top)` on the padded grid;
    :func:`~convlib.shifted.as_convolution`). ``(N, C_in, *n) -> (N, C_out, *out)``."""
    return conv_winograd(*as_convolution(y, weight, geometry), m)
