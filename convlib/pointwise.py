r"""The 1x1 convolution is one matrix product, with nothing copied.

With a kernel of one tap, stride 1 and no padding, :math:`S` is the identity: every output
position reads only its own input position, and the kernel matrix is
:math:`W = M \otimes I_L` (``M`` the ``(C_out, C_in)`` weights, ``L`` the number of
positions). In the ``(C, L)`` layout a sample already has, the three products are plain
GEMMs on views of the tensors as they are:

* the convolution :math:`Y = M X` per sample (per group),
* its transpose :math:`Z = M^\top Y`,
* the weight gradient :math:`\sum_n G_n X_n^\top`.

No run-on, no padding, no windows: the products are exactly the definition's, so NaN and
Inf land where torch's do, and ``convlib.backends`` takes this form whenever it applies
(one tap, stride 1, no padding, no output padding).
"""

from __future__ import annotations

import math

from torch import Tensor

from .gemm import matmul
from .shapes import Geometry

__all__ = ["conv_pointwise", "conv_transpose_pointwise", "weight_grad_pointwise"]


def _grouped(t: Tensor, g: int) -> Tensor:
    """(N, C, *n) -> (N, g, C/g, L): a view where the layout allows one, else a copy."""
    return t.reshape(t.shape[0], g, t.shape[1] // g, math.prod(t.shape[2:]))


def conv_pointwise(x: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``M X`` for every sample and group: ``(N, C_in, *n) -> (N, C_out, *n)``."""
    c_out, g = weight.shape[0], geometry.groups
    w = weight.reshape(g, c_out // g, -1)  # (g, C_out/g, C_in/g)
    return matmul(w, _grouped(x, g)).view(x.shape[0], c_out, *x.shape[2:])


def conv_transpose_pointwise(y: Tensor, weight: Tensor, geometry: Geometry) -> Tensor:
    """``M^T Y``: ``(N, C_in, *n) -> (N, C_out, *n)``; ``weight`` is ``(C_in, C_out/g, 1...)``."""
    c_in, c_out_g = weight.shape[:2]
    g = geometry.groups
    w_t = weight.reshape(g, c_in // g, c_out_g).mT  # (g, C_out/g, C_in/g)
    return matmul(w_t, _grouped(y, g)).view(y.shape[0], g * c_out_g, *y.shape[2:])


def weight_grad_pointwise(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry) -> Tensor:
    """``sum_n G_n X_n^T``, weight-shaped. ``gy`` may cover fewer positions than ``x``
    (a transposed convolution's output crop): then only those are used."""
    g = geometry.groups
    if x.shape[2:] != gy.shape[2:]:
        x = x[(Ellipsis, *(slice(0, o) for o in gy.shape[2:]))]
    part = matmul(_grouped(gy, g), _grouped(x, g).mT)  # (N, g, C_out/g, C_in/g)
    return part.sum(0).reshape(weight_shape)
