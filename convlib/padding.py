r"""Padding as a matrix: every padding mode copies input entries, so it is a 0/1 matrix.

Padding an input of spatial size ``n`` by ``p`` on each side gives an array of size
``n + 2p`` whose every entry is either zero or a copy of one input entry, so

.. math::

    \operatorname{vec}(\operatorname{pad}(x)) = P \operatorname{vec}(x)

with a matrix ``P`` of zeros and ones, at most one 1 per row. A convolution with any
``padding_mode`` is then the unpadded ("valid") kernel matrix of the padded size times
``P``: ``W_mode = W_valid @ P``.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch

from .shapes import as_tuple

__all__ = ["PADDING_MODES", "padding_source_index", "padding_matrix"]

#: The ``padding_mode`` values of ``torch.nn.Conv2d``, in the order the book shows them.
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def padding_source_index(n: int, before: int, after: int, mode: str,
                         device: Union[torch.device, str, None] = None) -> torch.Tensor:
    r"""For each position of a padded 1-d signal, the input position it copies (or -1).

    Position ``r`` of the padded signal is input position ``j = r - before`` when
    ``0 <= j < n``; outside, each mode picks another input position:

    * ``'zeros'``: none (returned as -1, the entry is zero);
    * ``'circular'``: :math:`j \bmod n` (the signal repeats with period ``n``);
    * ``'reflect'``: the mirror image about the first or last entry, which is not
      repeated (``x[1], x[0], x[1], ...``; period :math:`2(n - 1)`);
    * ``'replicate'``: the nearest end, :math:`\min(\max(j, 0), n - 1)`.

    Returns:
        An int64 tensor of length ``before + n + after``.

    Raises:
        ValueError: for an unknown mode, or a padding torch refuses (``'reflect'`` needs
            ``before, after < n``; ``'circular'`` needs ``before, after <= n``).
    """
    if mode not in PADDING_MODES:
        raise ValueError(f"padding mode must be one of {PADDING_MODES}, got {mode!r}")
    if before < 0 or after < 0:
        raise ValueError(f"padding must be non-negative, got ({before}, {after})")
    if mode == "reflect" and max(before, after) >= n:
        raise ValueError(f"reflect padding ({before}, {after}) must be smaller than the size {n}")
    if mode == "circular" and max(before, after) > n:
        raise ValueError(f"circular padding ({before}, {after}) must be at most the size {n}")
    j = torch.arange(-before, n + after, device=device)  # input position, before wrapping
    if mode == "zeros":
        return torch.where((j >= 0) & (j < n), j, -1)
    if mode == "circular":
        return j % n
    if mode == "replicate":
        return j.clamp(0, n - 1)
    period = max(2 * (n - 1), 1)  # reflect: x[0], ..., x[n-1], x[n-2], ..., x[1], then again
    m = j % period
    return torch.where(m < n, m, period - m)


def padding_matrix(
    size: Union[int, Sequence[int]],
    padding: Union[int, Sequence[int], Sequence[tuple[int, int]]],
    mode: str = "zeros",
    *,
    dtype: torch.dtype = torch.float32,
    device: Union[torch.device, str, None] = None,
) -> torch.Tensor:
    r"""The 0/1 matrix ``P`` with ``P @ x.flatten() == pad(x).flatten()``.

    In one dimension, ``P[r, padding_source_index(...)[r]] = 1`` (a row of zeros for a
    padding zero). In ``d`` dimensions padding acts on each axis separately, so with the
    row-major flattening ``P`` is the Kronecker product of the 1-d matrices:

    .. math::

        P = P_1 \otimes P_2 \otimes \cdots \otimes P_d .

    Args:
        size: spatial size of the input, ``d`` ints (an int for 1-d).
        padding: an int or ``d`` ints (the same on both sides, as in ``nn.Conv2d``), or
            ``d`` pairs ``(before, after)``.
        mode: ``'zeros'``, ``'circular'``, ``'reflect'`` or ``'replicate'``: the
            ``padding_mode`` of ``torch.nn.Conv2d`` (``F.pad`` calls zeros ``'constant'``).

    Returns:
        torch.Tensor: the dense matrix ``P``, of shape :math:`(\prod_i (n_i + p_i^\text{before} + p_i^\text{after}),
        \prod_i n_i)`.

    Shape:
        For ``x`` of shape :math:`(*n)`, ``(P @ x.flatten()).reshape(*n_padded)`` equals
        ``F.pad(x, pad, mode)`` with torch's ``pad`` tuple (last dimension first).

    Example::

        >>> padding_matrix(3, 1, "circular")
        tensor([[0., 0., 1.],
                [1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.],
                [1., 0., 0.]])
    """
    n = as_tuple(size, 1 if isinstance(size, int) else len(size), "size")
    d = len(n)
    if isinstance(padding, int) or all(isinstance(p, int) for p in padding):
        pads = tuple((p, p) for p in as_tuple(padding, d, "padding"))
    else:
        pads = tuple((int(a), int(b)) for a, b in padding)
        if len(pads) != d:
            raise ValueError(f"padding must have {d} pairs for a {d}-d input, got {padding!r}")
    P = torch.ones(1, 1, dtype=dtype, device=device)
    for n_j, (before, after) in zip(n, pads):
        src = padding_source_index(n_j, before, after, mode, device)  # (n_j + before + after,)
        rows = torch.arange(src.numel(), device=device)[src >= 0]
        P_j = torch.zeros(src.numel(), n_j, dtype=dtype, device=device)
        P_j[rows, src[src >= 0]] = 1
        P = torch.kron(P, P_j)  # rows and columns: row-major over the dimensions so far
    assert P.shape == (math.prod(n_j + a + b for n_j, (a, b) in zip(n, pads)), math.prod(n))
    return P
