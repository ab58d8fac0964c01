r"""Stacks of convolutions: the product of kernel matrices, and the receptive field.

Two convolutions applied one after the other are the product of their kernel matrices,
``W = W_2 @ W_1``. Without padding between them that product is the kernel matrix of one
convolution, whose hyper-parameters have a closed form along each axis:

.. math::

    s = s_1 s_2, \qquad \delta = \gcd(\delta_1,\, s_1 \delta_2), \qquad
    k = \frac{\delta_1 (k_1 - 1) + s_1 \delta_2 (k_2 - 1)}{\delta} + 1 ,

and whose kernel is the (true, flipped) convolution of the two kernels, each spread out by
zeros onto the grid of taps :math:`\delta` apart. The receptive field of an output is the
support of its row of the product: :func:`receptive_field` gives its size.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Sequence

import torch

from .shapes import IntOrTuple, as_tuple

__all__ = ["ComposedConv", "compose_conv", "receptive_field"]


class ComposedConv(NamedTuple):
    """The one convolution that two stacked convolutions make (see :func:`compose_conv`)."""

    weight: torch.Tensor
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]


def compose_conv(
    weight1: torch.Tensor,
    weight2: torch.Tensor,
    *,
    stride1: IntOrTuple = 1,
    padding1: IntOrTuple = 0,
    dilation1: IntOrTuple = 1,
    stride2: IntOrTuple = 1,
    dilation2: IntOrTuple = 1,
) -> ComposedConv:
    r"""The single convolution equal to ``conv(conv(x, weight1, ...), weight2, ...)``.

    The first convolution has ``stride1``, ``padding1`` and ``dilation1``; the second
    ``stride2`` and ``dilation2`` and **no padding**: zeros padded between the layers are
    not the image of any input, so with them the stack is one convolution only away from
    the borders. Output :math:`u` of the second layer reads, through tap :math:`a_2` of
    ``weight2`` and tap :math:`a_1` of ``weight1``, the (padded) input position

    .. math::

        u\, s_1 s_2 - p_1 + a_2\, s_1 \delta_2 + a_1\, \delta_1 ,

    so along each axis the stack has stride :math:`s = s_1 s_2`, padding :math:`p_1`, taps
    on a grid :math:`\delta = \gcd(\delta_1, s_1\delta_2)` apart, and the composed weight

    .. math::

        \text{weight}[c_\text{out}, c_\text{in}, a] = \sum_m \sum_{a_1 e_1 + a_2 e_2 = a}
            \text{weight2}[c_\text{out}, m, a_2]\; \text{weight1}[m, c_\text{in}, a_1],
        \qquad e_1 = \delta_1 / \delta,\; e_2 = s_1 \delta_2 / \delta ,

    a true convolution of the two kernels (spread out by :math:`e_1` and :math:`e_2`),
    summed over the channels :math:`m` between the layers. In matrix form,
    ``kernel_matrix(weight, n, stride=s, padding=p1, dilation=delta)`` equals
    ``W_2 @ W_1``.

    Args:
        weight1: :math:`(C_\text{mid}, C_\text{in}, *k_1)`, the first layer (``groups=1``).
        weight2: :math:`(C_\text{out}, C_\text{mid}, *k_2)`, the second layer.
        stride1, padding1, dilation1: the first layer's, an int or ``d`` ints.
        stride2, dilation2: the second layer's, an int or ``d`` ints.

    Returns:
        ComposedConv: ``(weight, stride, padding, dilation)``, with ``weight`` of shape
        :math:`(C_\text{out}, C_\text{in}, *k)` and the others ``d``-tuples of ints.

    Raises:
        RuntimeError: if the channels between the layers do not match (as ``F.conv2d``
            would, applied to the first layer's output).

    Example::

        >>> K = torch.ones(1, 1, 3)
        >>> compose_conv(K, K, stride1=2)          # two k=3 layers, the first with stride 2
        ComposedConv(weight=tensor([[[1., 1., 2., 1., 2., 1., 1.]]]), stride=(2,), padding=(0,), dilation=(1,))
    """
    d = weight1.dim() - 2
    if d < 1 or weight2.dim() != d + 2:
        raise ValueError(f"weight1 and weight2 must be (C_out, C_in, *k) with the same number of "
                         f"spatial dims, got shapes {tuple(weight1.shape)} and {tuple(weight2.shape)}")
    if weight2.shape[1] != weight1.shape[0]:
        raise RuntimeError(f"weight2 expects {weight2.shape[1]} input channels, but weight1 "
                           f"produces {weight1.shape[0]} (weight1 {tuple(weight1.shape)}, "
                           f"weight2 {tuple(weight2.shape)})")
    s1, p1, d1 = (as_tuple(v, d, n) for v, n in ((stride1, "stride1"), (padding1, "padding1"),
                                                  (dilation1, "dilation1")))
    s2, d2 = as_tuple(stride2, d, "stride2"), as_tuple(dilation2, d, "dilation2")
    k1, k2 = weight1.shape[2:], weight2.shape[2:]
    delta = tuple(math.gcd(a, s * b) for a, s, b in zip(d1, s1, d2))
    e1 = tuple(a // g for a, g in zip(d1, delta))                # tap spacing of weight1 ...
    e2 = tuple(s * b // g for s, b, g in zip(s1, d2, delta))     # ... and weight2, in steps of delta
    k = tuple(a * (m - 1) + b * (n - 1) + 1 for a, m, b, n in zip(e1, k1, e2, k2))

    out = weight1.new_zeros(weight2.shape[0], weight1.shape[1], *k)   # (C_out, C_in, *k)
    for b in itertools.product(*(range(n) for n in k2)):        # one tap of weight2 at a time
        # weight2[:, :, b] mixes channels; it lands on weight1's taps shifted by b * e2
        block = torch.einsum("om,mc...->oc...", weight2[(slice(None), slice(None), *b)], weight1)
        where = tuple(slice(bj * ej, bj * ej + aj * (mj - 1) + 1, aj)
                      for bj, ej, aj, mj in zip(b, e2, e1, k1))
        out[(slice(None), slice(None), *where)] += block
    return ComposedConv(out, tuple(a * b for a, b in zip(s1, s2)), p1, delta)


def receptive_field(
    kernel_sizes: Sequence[int],
    strides: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
) -> int:
    r"""Receptive field size, along one axis, of an output of a stack of convolutions.

    Layer :math:`l` (counted from the input, :math:`l = 1, \dots, L`) has kernel size
    :math:`k_l`, stride :math:`s_l` and dilation :math:`\delta_l`. One step of layer
    :math:`l` moves :math:`\prod_{j<l} s_j` input positions, so its
    :math:`\delta_l (k_l - 1)` extra span adds that many times as much:

    .. math::

        r_L = 1 + \sum_{l=1}^{L} \delta_l (k_l - 1) \prod_{j=1}^{l-1} s_j .

    It is the span (last minus first column, plus one) of the non-zeros in one row of
    :math:`W_L \cdots W_2 W_1`, away from the borders; padding does not change it.
    Pooling layers count as layers with their kernel size and stride.

    Args:
        kernel_sizes: :math:`k_1, \dots, k_L`.
        strides: :math:`s_1, \dots, s_L` (default: all 1).
        dilations: :math:`\delta_1, \dots, \delta_L` (default: all 1).

    Returns:
        int: :math:`r_L` (1 for an empty stack).

    Example::

        >>> receptive_field([3, 3, 3])                          # three 3 x 3 layers: 7
        7
        >>> receptive_field([2] * 4, dilations=[1, 2, 4, 8])    # WaveNet's doubling dilations
        16
    """
    L = len(kernel_sizes)
    strides = [1] * L if strides is None else list(strides)
    dilations = [1] * L if dilations is None else list(dilations)
    if len(strides) != L or len(dilations) != L:
        raise ValueError(f"kernel_sizes, strides and dilations must have the same length, got "
                         f"{L}, {len(strides)} and {len(dilations)}")
    size, jump = 1, 1
    for k, s, dl in zip(kernel_sizes, strides, dilations):
        if k < 1 or s < 1 or dl < 1:
            raise ValueError(f"kernel sizes, strides and dilations must be positive, got k={k}, "
                             f"s={s}, dilation={dl}")
        size += dl * (k - 1) * jump
        jump *= s
    return size
