r"""Convolution layers backed by :mod:`convlib.functional`.

Each layer subclasses the matching :mod:`torch.nn` layer and replaces only the
computation: ``convlib.nn.Conv2d`` *is* a :class:`torch.nn.Conv2d` (``isinstance`` holds,
so ``fuse_conv_bn_eval``, init loops and anything else that checks the type see it), with
torch's constructor, parameters, initialization, ``padding_mode``, ``repr``, ``state_dict``
and hooks. Its ``forward`` calls :func:`convlib.conv2d` instead of torch's convolution
operator.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from . import functional as CF

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


def _conv_forward(layer: torch.nn.modules.conv._ConvNd, conv, input: Tensor, weight: Tensor,
                  bias: Optional[Tensor]) -> Tensor:
    """torch's ``_conv_forward``, with convlib's convolution."""
    if layer.padding_mode != "zeros":  # pad with reflect/replicate/circular, then no padding
        input = F.pad(input, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
        return conv(input, weight, bias, layer.stride, 0, layer.dilation, layer.groups)
    return conv(input, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def _conv_transpose_forward(layer: torch.nn.modules.conv._ConvTransposeNd, conv, d: int,
                            input: Tensor, output_size) -> Tensor:
    """torch's ``ConvTranspose{d}d.forward``, with convlib's transposed convolution."""
    if layer.padding_mode != "zeros":
        raise ValueError(f"Only `zeros` padding mode is supported for {type(layer).__name__}")
    output_padding = layer._output_padding(input, output_size, layer.stride, layer.padding,
                                           layer.kernel_size, d, layer.dilation)
    return conv(input, layer.weight, layer.bias, layer.stride, layer.padding, output_padding,
                layer.groups, layer.dilation)


_CONV_DOC = r"""Applies a {d}-d convolution over an input signal composed of several input planes.

    A :class:`torch.nn.Conv{d}d` (a subclass: every ``isinstance`` check holds) whose forward is
    :func:`convlib.conv{d}d` instead of torch's convolution operator. In the simplest case, with input
    :math:`(N, C_\text{in}, *n)` and output
    :math:`(N, C_\text{out}, *n_\text{out})`,

    .. math::

        \text{out}(N_i, C_{\text{out}_j}) = \text{bias}(C_{\text{out}_j}) +
        \sum_{k = 0}^{C_\text{in} - 1} \text{weight}(C_{\text{out}_j}, k) \star \text{input}(N_i, k)

    with :math:`\star` the {d}-d cross-correlation; as a matrix,
    ``vec(out) = W vec(input) + bias`` with ``W`` the kernel matrix
    (:func:`convlib.kernel_matrix`).

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: an int or {d} ints.
        stride: an int or {d} ints. Default: 1.
        padding: an int, {d} ints, ``'valid'`` or ``'same'``. Default: 0.
        dilation: spacing between kernel elements. Default: 1.
        groups: number of blocked connections from input to output channels. Default: 1.
        bias: add a learnable bias. Default: ``True``.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
            Default: ``'zeros'``. Other modes pad with :func:`torch.nn.functional.pad`
            first and convolve without padding.

    Shape:
        - Input: :math:`(N, C_\text{in}, *n)` or :math:`(C_\text{in}, *n)`
        - Output: :math:`(N, C_\text{out}, *n_\text{out})` or :math:`(C_\text{out}, *n_\text{out})`, where
          :math:`n_\text{out} = \lfloor (n + 2p - \text{dilation} (k - 1) - 1) / \text{stride} \rfloor + 1`.

    Attributes:
        weight: :math:`(C_\text{out}, C_\text{in}/\text{groups}, *k)`, initialized from
            :math:`\mathcal{U}(-\sqrt{u}, \sqrt{u})` with
            :math:`u = \text{groups} / (C_\text{in} \prod k)`.
        bias: :math:`(C_\text{out})`, initialized the same way.
    """

_CONV_TRANSPOSE_DOC = r"""Applies a {d}-d transposed convolution over an input of several planes.

    A :class:`torch.nn.ConvTranspose{d}d` (a subclass) whose forward is
    :func:`convlib.conv_transpose{d}d` instead of torch's transposed convolution. This module is the gradient of
    :class:`Conv{d}d` with respect to its input: multiplication by :math:`W^\top`, the
    transpose of the kernel matrix of the convolution with the same weight and
    hyper-parameters (it is not a deconvolution: it does not invert the convolution).

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: an int or {d} ints.
        stride: an int or {d} ints. Default: 1.
        padding: ``dilation * (kernel_size - 1) - padding`` zeros are added to both sides
            of the input of the equivalent direct convolution; equivalently, ``padding``
            positions are cropped off each side of the output. Default: 0.
        output_padding: extra size added to one side of each output dimension, to pick
            which of the ``stride`` input sizes of the forward convolution is produced.
            Default: 0.
        groups: number of blocked connections from input to output channels. Default: 1.
        bias: add a learnable bias. Default: ``True``.
        dilation: spacing between kernel elements. Default: 1.
        padding_mode: only ``'zeros'`` is supported, as in torch.

    Shape:
        - Input: :math:`(N, C_\text{in}, *n)` or :math:`(C_\text{in}, *n)`
        - Output: :math:`(N, C_\text{out}, *n_\text{out})` or :math:`(C_\text{out}, *n_\text{out})`, where
          :math:`n_\text{out} = (n - 1)\,\text{stride} - 2\,\text{padding}
          + \text{dilation}\,(k - 1) + \text{output padding} + 1`.
          ``forward(input, output_size)`` may ask for a size instead of ``output_padding``.

    Attributes:
        weight: :math:`(C_\text{in}, C_\text{out}/\text{groups}, *k)`, initialized from
            :math:`\mathcal{U}(-\sqrt{u}, \sqrt{u})` with
            :math:`u = \text{groups} / (C_\text{out} \prod k)`.
        bias: :math:`(C_\text{out})`, initialized the same way.
    """



class Conv1d(torch.nn.Conv1d):
    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _conv_forward(self, CF.conv1d, input, weight, bias)


class Conv2d(torch.nn.Conv2d):
    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _conv_forward(self, CF.conv2d, input, weight, bias)


class Conv3d(torch.nn.Conv3d):
    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _conv_forward(self, CF.conv3d, input, weight, bias)


class ConvTranspose1d(torch.nn.ConvTranspose1d):
    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return _conv_transpose_forward(self, CF.conv_transpose1d, 1, input, output_size)


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return _conv_transpose_forward(self, CF.conv_transpose2d, 2, input, output_size)


class ConvTranspose3d(torch.nn.ConvTranspose3d):
    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return _conv_transpose_forward(self, CF.conv_transpose3d, 3, input, output_size)


for _d, _cls in ((1, Conv1d), (2, Conv2d), (3, Conv3d)):
    _cls.__doc__ = _CONV_DOC.replace("{d}", str(_d))
for _d, _cls in ((1, ConvTranspose1d), (2, ConvTranspose2d), (3, ConvTranspose3d)):
    _cls.__doc__ = _CONV_TRANSPOSE_DOC.replace("{d}", str(_d))
del _d, _cls
