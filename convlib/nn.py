r"""Convolution layers backed by :mod:`convlib.functional`.

``convlib.nn.Conv2d`` is a drop-in for :class:`torch.nn.Conv2d`: same constructor,
same parameters (``weight``, ``bias``), same initialization, so a ``state_dict`` moves
between the two and gives the same outputs. Only ``forward`` differs: it calls
:func:`convlib.conv2d` (``weight @ im2col(x)``) instead of torch's convolution operator.

The constructors, parameter initialization (Kaiming-uniform with ``a = sqrt(5)``,
bias uniform in :math:`\pm 1/\sqrt{\text{fan\_in}}`) and ``padding_mode`` bookkeeping
are inherited from torch's private base classes ``_ConvNd`` / ``_ConvTransposeNd``,
which never call a convolution operator themselves; the ``forward`` of each class is
ours.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from . import functional as CF
from .shapes import IntOrTuple, as_tuple

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]



class _Conv(_ConvNd):
    """``d``-dimensional convolution layer; subclasses set ``_d`` and ``_conv``."""

    _d: int
    _conv = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Union[str, IntOrTuple] = 0,
                 dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        d = self._d
        super().__init__(
            in_channels, out_channels, as_tuple(kernel_size, d, "kernel_size"),
            as_tuple(stride, d, "stride"),
            padding if isinstance(padding, str) else as_tuple(padding, d, "padding"),
            as_tuple(dilation, d, "dilation"), False, (0,) * d, groups, bias, padding_mode,
            device=device, dtype=dtype,
        )

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        conv = type(self)._conv
        if self.padding_mode != "zeros":
            # pad with reflect/replicate/circular first, then convolve without padding
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


class _ConvTranspose(_ConvTransposeNd):
    """``d``-dimensional transposed convolution layer; subclasses set ``_d`` and ``_conv``."""

    _d: int
    _conv = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                 output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        d = self._d
        super().__init__(
            in_channels, out_channels, as_tuple(kernel_size, d, "kernel_size"),
            as_tuple(stride, d, "stride"), as_tuple(padding, d, "padding"),
            as_tuple(dilation, d, "dilation"), True, as_tuple(output_padding, d, "output_padding"),
            groups, bias, padding_mode, device=device, dtype=dtype,
        )

    def forward(self, input: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        """``output_size`` (optional) picks the output size among the ``stride`` sizes that a
        strided convolution maps to the input's size, instead of ``output_padding``."""
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, self._d, self.dilation)
        return type(self)._conv(input, self.weight, self.bias, self.stride, self.padding,
                                output_padding, self.groups, self.dilation)


_CONV_DOC = r"""Applies a {d}-d convolution over an input signal composed of several input planes.

    Drop-in for :class:`torch.nn.Conv{d}d` computed by :func:`convlib.conv{d}d`: in the
    simplest case, with input :math:`(N, C_\text{{in}}, *n)` and output
    :math:`(N, C_\text{{out}}, *n_\text{{out}})`,

    .. math::

        \text{{out}}(N_i, C_{{\text{{out}}_j}}) = \text{{bias}}(C_{{\text{{out}}_j}}) +
        \sum_{{k = 0}}^{{C_\text{{in}} - 1}} \text{{weight}}(C_{{\text{{out}}_j}}, k) \star \text{{input}}(N_i, k)

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
        - Input: :math:`(N, C_\text{{in}}, *n)` or :math:`(C_\text{{in}}, *n)`
        - Output: :math:`(N, C_\text{{out}}, *n_\text{{out}})` or :math:`(C_\text{{out}}, *n_\text{{out}})`, where
          :math:`n_\text{{out}} = \lfloor (n + 2p - \text{{dilation}} (k - 1) - 1) / \text{{stride}} \rfloor + 1`.

    Attributes:
        weight: :math:`(C_\text{{out}}, C_\text{{in}}/\text{{groups}}, *k)`, initialized from
            :math:`\mathcal{{U}}(-\sqrt{{u}}, \sqrt{{u}})` with
            :math:`u = \text{{groups}} / (C_\text{{in}} \prod k)`.
        bias: :math:`(C_\text{{out}})`, initialized the same way.
    """

_CONV_TRANSPOSE_DOC = r"""Applies a {d}-d transposed convolution over an input of several planes.

    Drop-in for :class:`torch.nn.ConvTranspose{d}d` computed by
    :func:`convlib.conv_transpose{d}d`. This module is the gradient of
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
        - Input: :math:`(N, C_\text{{in}}, *n)` or :math:`(C_\text{{in}}, *n)`
        - Output: :math:`(N, C_\text{{out}}, *n_\text{{out}})` or :math:`(C_\text{{out}}, *n_\text{{out}})`, where
          :math:`n_\text{{out}} = (n - 1)\,\text{{stride}} - 2\,\text{{padding}}
          + \text{{dilation}}\,(k - 1) + \text{{output padding}} + 1`.
          ``forward(input, output_size)`` may ask for a size instead of ``output_padding``.

    Attributes:
        weight: :math:`(C_\text{{in}}, C_\text{{out}}/\text{{groups}}, *k)`, initialized from
            :math:`\mathcal{{U}}(-\sqrt{{u}}, \sqrt{{u}})` with
            :math:`u = \text{{groups}} / (C_\text{{out}} \prod k)`.
        bias: :math:`(C_\text{{out}})`, initialized the same way.
    """


class Conv1d(_Conv):
    __doc__ = _CONV_DOC.format(d=1)
    _d, _conv = 1, staticmethod(CF.conv1d)


class Conv2d(_Conv):
    __doc__ = _CONV_DOC.format(d=2)
    _d, _conv = 2, staticmethod(CF.conv2d)


class Conv3d(_Conv):
    __doc__ = _CONV_DOC.format(d=3)
    _d, _conv = 3, staticmethod(CF.conv3d)


class ConvTranspose1d(_ConvTranspose):
    __doc__ = _CONV_TRANSPOSE_DOC.format(d=1)
    _d, _conv = 1, staticmethod(CF.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    __doc__ = _CONV_TRANSPOSE_DOC.format(d=2)
    _d, _conv = 2, staticmethod(CF.conv_transpose2d)


class ConvTranspose3d(_ConvTranspose):
    __doc__ = _CONV_TRANSPOSE_DOC.format(d=3)
    _d, _conv = 3, staticmethod(CF.conv_transpose3d)
