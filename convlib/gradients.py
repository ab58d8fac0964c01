r"""The three gradients of a convolution layer, through kernel matrices.

For ``y = conv(x, weight) + bias`` and a loss ``L`` with output gradient
``G = dL/dy``:

.. math::

    \frac{\partial L}{\partial \operatorname{vec}(x)} = W^\top \operatorname{vec}(G), \qquad
    \frac{\partial L}{\partial \text{weight}[c_\text{out}, c, \kappa]}
        = \sum_{n, o} G[n, c_\text{out}, o]\;
          x[n,\, g\,C_{\text{in}/g} + c,\, o \cdot s - p + \kappa \cdot \delta], \qquad
    \frac{\partial L}{\partial \text{bias}[c_\text{out}]} = \sum_{n, o} G[n, c_\text{out}, o].

The first is the transposed convolution; the second is a cross-correlation of the input
with the output gradient (stride and dilation trade places), so it is a kernel-matrix
product too; the third is a sum. ``torch.nn.grad.conv{d}d_input`` and
``conv{d}d_weight`` compute the same things.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .matrix import kernel_matrix
from .shapes import IntOrTuple, Padding, as_tuple, conv_output_size, resolve_padding

__all__ = ["conv_input_grad", "conv_weight_grad", "conv_bias_grad"]



def conv_input_grad(
    grad_output: torch.Tensor,
    weight: torch.Tensor,
    input_size: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""Gradient of a convolution with respect to its input: ``W.T @ vec(G)``, per sample.

    Each sample is its own column: the batch multiplies :math:`W^\top` from the right,
    it is never flattened into the vector.

    .. math::

        \frac{\partial L}{\partial x_n} = \operatorname{unvec}\big(W^\top
            \operatorname{vec}(G_n)\big), \qquad
        \operatorname{vec} = \text{row-major flattening of } (C, *\text{spatial})

    Args:
        grad_output: :math:`G = \partial L / \partial y`, shape
            :math:`(N, C_\text{out}, *n_\text{out})`.
        weight: :math:`(C_\text{out}, C_\text{in}/\text{groups}, *k)`, as in ``nn.Conv{d}d``.
        input_size: spatial size ``n`` of the input (``d`` ints).
        stride, padding, dilation, groups: those of the forward convolution.

    Shape:
        Output: :math:`(N, C_\text{in}, *n)` with
        :math:`C_\text{in} = \text{groups} \cdot \text{weight.shape[1]}`.
    """
    n = grad_output.shape[0]
    W = kernel_matrix(weight, tuple(input_size), stride=stride, padding=padding,
                      dilation=dilation, groups=groups)  # (C_out * n_out, C_in * n_in)
    if grad_output[0].numel() != W.shape[0]:
        raise ValueError(f"grad_output of shape {tuple(grad_output.shape)} does not fit the "
                         f"{tuple(W.shape)} kernel matrix of this convolution")
    G = grad_output.reshape(n, -1).T  # (C_out * n_out, N): one column per sample
    return (W.mT @ G).T.reshape(n, weight.shape[1] * groups, *input_size)  # (N, C_in, *n)


def conv_weight_grad(
    input: torch.Tensor,
    grad_output: torch.Tensor,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""Gradient of a convolution with respect to its weight: a correlation of ``x`` with ``G``.

    .. math::

        \frac{\partial L}{\partial \text{weight}[c_\text{out}, c, \kappa]}
        = \sum_{n} \sum_{o} G[n, c_\text{out}, o]\;
          x_\text{pad}[n,\, g\,C_{\text{in}/g} + c,\, o \cdot s + \kappa \cdot \delta]

    Read with :math:`\kappa` as the output position, this is a convolution of the padded
    input with ``G`` as its kernel, where the forward stride :math:`s` becomes the
    kernel's dilation and the forward dilation :math:`\delta` becomes the stride; the
    batch is summed over like input channels. It is computed here as that convolution's
    kernel-matrix product, one group at a time, and cut to ``kernel_size`` (the floor in
    the forward output size can leave a few extra positions).

    Args:
        input: :math:`x`, shape :math:`(N, C_\text{in}, *n)`.
        grad_output: :math:`G`, shape :math:`(N, C_\text{out}, *n_\text{out})`.
        kernel_size: ``k`` (an int or ``d`` ints).
        stride, padding, dilation, groups: those of the forward convolution.

    Shape:
        Output: :math:`(C_\text{out}, C_\text{in}/\text{groups}, *k)`, the weight's shape.
    """
    d = input.dim() - 2
    k = as_tuple(kernel_size, d, "kernel_size")
    s = as_tuple(stride, d, "stride")
    dil = as_tuple(dilation, d, "dilation")
    pads = resolve_padding(padding, k, s, dil)
    x = F.pad(input, [p for pair in reversed(pads) for p in pair])  # (N, C_in, *padded)
    n, c_in, *padded = x.shape
    c_out = grad_output.shape[1]
    c_in_g, c_out_g = c_in // groups, c_out // groups
    parts = []
    for g in range(groups):
        xg = x[:, g * c_in_g:(g + 1) * c_in_g]  # (N, C_in/g, *padded)
        Gg = grad_output[:, g * c_out_g:(g + 1) * c_out_g].transpose(0, 1)  # (C_out/g, N, *n_out)
        # G is the kernel: its "output channels" are C_out/g, its "input channels" the batch.
        size = conv_output_size(tuple(padded), tuple(Gg.shape[2:]), dil, 0, s)  # >= k
        Wg = kernel_matrix(Gg, padded, stride=dil, dilation=s)  # (C_out/g * prod(size), N * prod(padded))
        corr = Wg @ xg.transpose(0, 1).reshape(c_in_g, -1).T  # (C_out/g * prod(size), C_in/g)
        corr = corr.T.reshape(c_in_g, c_out_g, *size).transpose(0, 1)  # (C_out/g, C_in/g, *size)
        parts.append(corr[(slice(None), slice(None)) + tuple(slice(0, kk) for kk in k)])
    return torch.cat(parts)  # (C_out, C_in/g, *k)


def conv_bias_grad(grad_output: torch.Tensor) -> torch.Tensor:
    r"""Gradient with respect to the bias: :math:`\sum_{n, o} G[n, c_\text{out}, o]`.

    Shape:
        grad_output :math:`(N, C_\text{out}, *n_\text{out})`; output :math:`(C_\text{out},)`.
    """
    return grad_output.sum(dim=[0] + list(range(2, grad_output.dim())))
