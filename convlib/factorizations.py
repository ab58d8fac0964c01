r"""The factors of the fast convolution algorithms, as small explicit matrices.

Every fast way of computing a convolution writes its kernel matrix ``W`` as a product of
simpler matrices. The chapter "Fast convolutions are factorizations of W" builds each
product for a small case and compares it with :func:`convlib.kernel_matrix`; this module
holds the pieces it needs more than once. They are dense and small, made for reading and
checking, not for computing layers (:mod:`convlib.backends` does that).

* :func:`toom_cook`: Winograd's minimal filtering algorithm :math:`F(\mu, k)`, the three
  matrices of :math:`y = \mathcal A^\top [(\mathcal G K) \odot (\mathcal B^\top x)]`,
  from Toom and Cook's polynomial evaluation and interpolation.
* :func:`phase_matrix`: the 0/1 matrix that keeps one phase :math:`x[\varphi + s q]` of a
  signal, the building block of the polyphase and sub-pixel decompositions.
* :func:`tile_matrix`: the 0/1 matrix that cuts a signal into overlapping tiles, the
  im2col selection with a window of the tile size and a stride of the step.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Sequence

import torch

__all__ = ["winograd_points", "toom_cook", "phase_matrix", "tile_matrix"]


def winograd_points(count: int) -> list[Fraction]:
    """The first ``count`` finite interpolation points ``0, 1, -1, 2, -2, 1/2, -1/2, 3, ...``:
    small numbers and their reciprocals, which keep the transforms' entries small (the
    choice of Lavin and Gray for :math:`F(2, 3)`, :math:`F(4, 3)` and :math:`F(6, 3)`)."""
    points, size = [Fraction(0)], 1
    while len(points) < count:
        for p in (Fraction(size), Fraction(-size), Fraction(1, size), Fraction(-1, size)):
            if p not in points:
                points.append(p)
        size += 1
    return points[:count]


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact Gauss-Jordan inverse of a small invertible matrix of fractions."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(r == c)) for c in range(n)] for r, row in enumerate(matrix)]
    for c in range(n):
        pivot = next(r for r in range(c, n) if rows[r][c] != 0)
        rows[c], rows[pivot] = rows[pivot], rows[c]
        rows[c] = [v / rows[c][c] for v in rows[c]]
        for r in range(n):
            if r != c and rows[r][c] != 0:
                rows[r] = [a - rows[r][c] * b for a, b in zip(rows[r], rows[c])]
    return [row[n:] for row in rows]


def toom_cook(mu: int, k: int, points: Optional[Sequence] = None, exact: bool = False):
    r"""Winograd's minimal filtering algorithm :math:`F(\mu, k)` as three matrices.

    For a tile :math:`x` of :math:`\nu = \mu + k - 1` inputs and a kernel :math:`K` of
    :math:`k` taps, the :math:`\mu` outputs of their cross-correlation are

    .. math::

        y = \mathcal A^\top \big[(\mathcal G K) \odot (\mathcal B^\top x)\big],
        \qquad y[u] = \sum_a K[a]\, x[u + a],

    with :math:`\nu` multiplications instead of :math:`\mu k`. The rows of the matrices
    belong to :math:`\nu` points :math:`p`: the given finite points (by default
    :func:`winograd_points`) and the point at infinity, which stands for the leading
    coefficient. With the Vandermonde matrices :math:`V_j` (row :math:`[1, p, \dots,
    p^{j-1}]` for a finite :math:`p`, :math:`[0, \dots, 0, 1]` for infinity),

    .. math::

        \mathcal A^\top = V_\mu^\top, \qquad \mathcal G = D^{-1} V_k, \qquad
        \mathcal B^\top = D\, V_\nu^{-\top},

    where the diagonal :math:`D` clears the denominators of :math:`\mathcal B^\top` (it
    cancels in the product). :math:`V_\nu^{-1} \operatorname{diag}(V_k K) V_\mu` is Toom
    and Cook's linear convolution (evaluate both polynomials, multiply pointwise,
    interpolate); its transpose is the cross-correlation.

    Args:
        mu: outputs per tile, :math:`\mu \ge 1`.
        k: kernel taps, :math:`k \ge 1`.
        points: :math:`\nu - 1` distinct finite points (numbers or fractions).
        exact: return lists of ``fractions.Fraction`` instead of float64 tensors.

    Returns:
        ``(AT, G, BT)`` of shapes :math:`(\mu, \nu)`, :math:`(\nu, k)`, :math:`(\nu, \nu)`.
    """
    if mu < 1 or k < 1:
        raise ValueError(f"mu and k must be at least 1, got mu={mu}, k={k}")
    nu = mu + k - 1
    finite = [Fraction(p) for p in (winograd_points(nu - 1) if points is None else points)]
    if len(finite) != nu - 1 or len(set(finite)) != nu - 1:
        raise ValueError(f"points must be {nu - 1} distinct numbers for F({mu}, {k}), got {points}")

    def vandermonde(j):  # (nu, j): one row per point, the last for infinity
        return [[p ** e for e in range(j)] for p in finite] + [[Fraction(int(e == j - 1)) for e in range(j)]]

    AT = [list(col) for col in zip(*vandermonde(mu))]
    G = vandermonde(k)
    BT = [list(col) for col in zip(*_inverse(vandermonde(nu)))]
    for r in range(nu):  # the diagonal D: integers in B^T, the fractions in G
        scale = math.lcm(*(v.denominator for v in BT[r]))
        BT[r] = [v * scale for v in BT[r]]
        G[r] = [v / scale for v in G[r]]
    if exact:
        return AT, G, BT
    return tuple(torch.tensor([[float(v) for v in row] for row in m], dtype=torch.float64)
                 for m in (AT, G, BT))


def phase_matrix(n: int, s: int, phase: int, dtype=torch.float64) -> torch.Tensor:
    r"""The 0/1 matrix :math:`\Pi_\varphi` that keeps phase :math:`\varphi` of a signal of
    length :math:`n` for stride :math:`s`: :math:`(\Pi_\varphi x)[q] = x[\varphi + s q]`,
    of shape :math:`(\lceil (n - \varphi) / s \rceil, n)`. Its transpose puts a short signal
    back on those positions, with zeros between them."""
    rows = max(0, -(-(n - phase) // s))
    P = torch.zeros(rows, n, dtype=dtype)
    P[torch.arange(rows), phase + s * torch.arange(rows)] = 1
    return P


def tile_matrix(n: int, tile: int, step: int, dtype=torch.float64) -> torch.Tensor:
    r"""The 0/1 matrix that cuts a signal of length :math:`n` into tiles of ``tile``
    entries starting every ``step`` entries: row :math:`(q, j)` picks :math:`x[q\,
    \text{step} + j]`. It is the im2col selection :math:`S` of a window of ``tile`` taps
    with stride ``step``; for ``step < tile`` the tiles overlap."""
    count = (n - tile) // step + 1
    S = torch.zeros(count * tile, n, dtype=dtype)
    q, j = torch.meshgrid(torch.arange(count), torch.arange(tile), indexing="ij")
    S[(q * tile + j).flatten(), (q * step + j).flatten()] = 1
    return S
