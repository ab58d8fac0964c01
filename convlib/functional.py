r"""The six ``torch.nn.functional`` convolutions, computed through the kernel matrix.

Each public function checks its arguments as torch does (:mod:`convlib.checks`), then
multiplies by ``W`` or ``W^T`` through one of their factorizations
(:mod:`convlib.backends`), registered as PyTorch operators (:mod:`convlib.ops`) so that
autograd, ``torch.func``, ``torch.compile``, ``torch.export`` and autocast work as they do
for torch's own convolutions. No torch convolution operator runs, forward or backward.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Optional

import torch
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function

from . import checks, ops, torchlike
from .selection import col2im, im2col
from .shapes import IntOrTuple, Padding

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "im2col",
    "col2im",
]


def _autocast(*tensors: Optional[Tensor]):
    """Under :func:`torch.autocast`, cast as torch casts a convolution's arguments: every
    floating tensor but float64 goes to the autocast dtype (``lower_precision_fp``)."""
    device = tensors[0].device.type if isinstance(tensors[0], Tensor) else "cpu"
    if device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point()
                 and t.dtype != torch.float64 else t for t in tensors)


def _parts(t: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts as views of one real tensor, so that their gradients meet
    in it (the same views torch takes)."""
    t = torch.view_as_real(t.resolve_conj())
    return t.select(-1, 0), t.select(-1, 1)


def _gauss(product, x: Tensor, weight: Tensor, bias: Optional[Tensor], p: ops.Product) -> Tensor:
    """A complex product from three real ones, as torch computes complex convolutions
    (Gauss's trick): with ``a = W(w_r) x_r``, ``b = W(w_i) x_i`` and
    ``c = W(w_r + w_i) (x_r + x_i)``, the result is ``a - b + i (c - a - b)``. Written the
    same way, its values, its NaNs and Infs and (through autograd) its gradients are
    torch's."""
    xr, xi = _parts(x)
    wr, wi = _parts(weight)
    br, bi = (None, None) if bias is None else _parts(bias)
    a = product(xr, wr, br, p)
    b = product(xi, wi, None, p)
    c = product(xr + xi, wr + wi, None if bias is None else br + bi, p)
    return a - b + 1j * (c - a - b)


@contextlib.contextmanager
def _concrete_shapes():
    """Under :func:`torch.jit.trace`, sizes are traced tensors; the checks and the geometry
    want plain ints (the trace records the operator with them, as it does for torch's
    own convolutions)."""
    state = torch._C._get_tracing_state() if torch.jit.is_tracing() else None
    if state is None:
        yield
        return
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def _empty_result(input: Tensor, weight: Tensor, out_channels: int, size,
                  geometry) -> Optional[Tensor]:
    """torch computes nothing for an empty input with dtypes or a dilation it would refuse
    otherwise (checks.conv_arguments lets them through): an empty result of the promoted
    dtype."""
    if input.numel() or (input.dtype == weight.dtype and all(geometry.dilation)
                         and all(weight.shape[2:])):
        return None
    dtype = torch.promote_types(input.dtype, weight.dtype) if weight.is_complex() else input.dtype
    return input.new_empty((*input.shape[:-len(size) - 1], out_channels, *size), dtype=dtype)


def _conv(d: int, input, weight, bias, stride, padding, dilation, groups) -> Tensor:
    checks.check_types(f"conv{d}d", input, weight, bias, stride, padding, dilation, groups)
    input, weight, bias = _autocast(input, weight, bias)
    unbatched = input.dim() == d + 1
    x = input.unsqueeze(0) if unbatched else input  # (N, C_in, *n)
    with _concrete_shapes():
        geometry = checks.conv_arguments(f"conv{d}d", d, input, weight, bias, stride, padding,
                                         dilation, groups)
        cl = torchlike.output_memory_format(x, weight, geometry) != torch.contiguous_format
        empty = _empty_result(input, weight, weight.shape[0] if x.shape[1] else 0,
                              geometry.output_size(x.shape[2:], weight.shape[2:]), geometry)
    if empty is not None:
        return empty
    if bias is not None and bias.dtype != x.dtype:  # torch adds it in the input's dtype
        bias = bias.to(x.dtype)
    product = functools.partial(_gauss, ops.conv) if x.is_complex() else ops.conv
    y = product(x, weight, bias, ops.Product(geometry, cl))  # (N, C_out, *out)
    return y.squeeze(0) if unbatched else y


def _conv_transpose(d: int, input, weight, bias, stride, padding, output_padding, groups,
                    dilation) -> Tensor:
    fn = f"conv_transpose{d}d"
    checks.check_types(fn, input, weight, bias, stride, padding, dilation, groups, output_padding)
    input, weight, bias = _autocast(input, weight, bias)
    unbatched = input.dim() == d + 1
    y = input.unsqueeze(0) if unbatched else input  # (N, C_in, *n)
    with _concrete_shapes():
        geometry = checks.conv_arguments(fn, d, input, weight, bias, stride, padding, dilation,
                                         groups, output_padding)
        cl = torchlike.output_memory_format(y, weight, geometry) != torch.contiguous_format
        empty = _empty_result(input, weight, weight.shape[1] * geometry.groups,
                              geometry.transpose_output_size(y.shape[2:], weight.shape[2:]),
                              geometry)
    if empty is not None:
        return empty
    if bias is not None and bias.dtype != y.dtype:  # torch adds it in the input's dtype
        bias = bias.to(y.dtype)
    product = functools.partial(_gauss, ops.conv_transpose) if y.is_complex() else ops.conv_transpose
    z = product(y, weight, bias, ops.Product(geometry, cl))  # (N, C_out, *out)
    return z.squeeze(0) if unbatched else z


_CONV_DOC = r"""Applies a {d}-d convolution over an input signal composed of several input planes.

    Drop-in for :func:`torch.nn.functional.conv{d}d`: the same arguments, defaults, results,
    gradients and errors, computed as a product with the kernel matrix; no torch
    convolution operator runs, forward or backward. For group :math:`t` of
    :math:`g` = ``groups``,

    .. math::

        \text{out}[n, c_\text{out}, o] = \text{bias}[c_\text{out}] +
        \sum_{c=0}^{C_\text{in}/g - 1} \sum_\kappa
        \text{weight}[c_\text{out}, c, \kappa]\;
        x_\text{pad}[n,\, t\,C_\text{in}/g + c,\, o \cdot s + \kappa \cdot \delta]

    (a cross-correlation, as in torch). In matrix form ``vec(out) = W vec(input) + b``
    with ``W = (M ⊗ I) S`` the kernel matrix (:func:`convlib.kernel_matrix`), ``M`` the
    weights and ``S`` the selection matrix of :func:`im2col`; the gradient with respect
    to ``input`` is ``W^T grad``, i.e. :func:`conv_transpose{d}d`.

    Args:
        input: :math:`(N, C_\text{in}, *n)` or unbatched :math:`(C_\text{in}, *n)`.
        weight: :math:`(C_\text{out}, C_\text{in}/g, *k)`.
        bias: optional :math:`(C_\text{out})`. Default: ``None``.
        stride: an int or {d} ints. Default: 1.
        padding: an int, {d} ints, ``'valid'`` (no padding) or ``'same'`` (output as large
            as the input; stride must be 1; an odd number of zeros puts the extra one
            after). Default: 0.
        dilation: spacing between kernel elements, an int or {d} ints. Default: 1.
        groups: split the channels into this many independent convolutions; both
            :math:`C_\text{in}` and :math:`C_\text{out}` must be divisible by it. Default: 1.

    Shape:
        - Output: :math:`(N, C_\text{out}, *n_\text{out})` with
          :math:`n_\text{out} = \lfloor (n + p_\text{before} + p_\text{after}
          - \delta (k - 1) - 1) / s \rfloor + 1` (:func:`convlib.conv_output_size`).
          Channels-last when the input or the weight is, as in torch.
    """

_CONV_TRANSPOSE_DOC = r"""Applies a {d}-d transposed convolution, sometimes called "deconvolution".

    Drop-in for :func:`torch.nn.functional.conv_transpose{d}d`: the gradient of
    :func:`conv{d}d` with respect to its input, i.e. multiplication by ``W^T`` where ``W``
    is the kernel matrix of the convolution with the same weight, stride, padding and
    dilation. It is ``S^T (M^T input)``: every input position stamps a weighted copy of
    the kernel into the output, overlapping stamps add up, then ``padding`` is cropped off
    each side. For group :math:`t` of :math:`g` = ``groups``,

    .. math::

        \text{out}[n, t\,C_\text{out}/g + c, o \cdot s + \kappa \cdot \delta - p]
        \mathrel{+}= \text{weight}[t\,C_\text{in}/g + c_\text{in}, c, \kappa]\;
        \text{input}[n, t\,C_\text{in}/g + c_\text{in}, o]

    Args:
        input: :math:`(N, C_\text{in}, *n)` or unbatched :math:`(C_\text{in}, *n)`.
        weight: :math:`(C_\text{in}, C_\text{out}/g, *k)`.
        bias: optional :math:`(C_\text{out})`. Default: ``None``.
        stride: an int or {d} ints. Default: 1.
        padding: positions cropped off each side of the output: the padding of the
            convolution this is the transpose of. (The equivalent direct convolution
            pads ``dilation * (k - 1) - padding`` zeros.) An int or {d} ints. Default: 0.
        output_padding: extra positions added to one side of the output, to pick among
            the ``stride`` input sizes a strided convolution maps to the same size
            (:func:`convlib.transpose_output_padding`). Must be smaller than either
            ``stride`` or ``dilation``. Default: 0.
        groups: as in :func:`conv{d}d`. Default: 1.
        dilation: spacing between kernel elements. Default: 1.

    Shape:
        - Output: :math:`(N, C_\text{out}, *n_\text{out})` with
          :math:`n_\text{out} = (n - 1) s - 2p + \delta (k - 1) + \text{output padding} + 1`
          (:func:`convlib.conv_transpose_output_size`).
    """


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    if has_torch_function((input, weight, bias)):
        return handle_torch_function(conv1d, (input, weight, bias), input, weight, bias, stride,
                                     padding, dilation, groups)
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    if has_torch_function((input, weight, bias)):
        return handle_torch_function(conv2d, (input, weight, bias), input, weight, bias, stride,
                                     padding, dilation, groups)
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    if has_torch_function((input, weight, bias)):
        return handle_torch_function(conv3d, (input, weight, bias), input, weight, bias, stride,
                                     padding, dilation, groups)
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    if has_torch_function((input, weight, bias)):
        return handle_torch_function(conv_transpose1d, (input, weight, bias), input, weight, bias,
                                     stride, padding, output_padding, groups, dilation)
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    if has_torch_function((input, weight, bias)):
        return handle_torch_function(conv_transpose2d, (input, weight, bias), input, weight, bias,
                                     stride, padding, output_padding, groups, dilation)
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    if has_torch_function((input, weight, bias)):
        return handle_torch_function(conv_transpose3d, (input, weight, bias), input, weight, bias,
                                     stride, padding, output_padding, groups, dilation)
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


for _d, _f in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _f.__doc__ = _CONV_DOC.replace("{d}", str(_d))
for _d, _f in ((1, conv_transpose1d), (2, conv_transpose2d), (3, conv_transpose3d)):
    _f.__doc__ = _CONV_TRANSPOSE_DOC.replace("{d}", str(_d))
del _d, _f
