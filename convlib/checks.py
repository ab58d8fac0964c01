"""Argument checking: torch's exception classes, the argument named, before any allocation.

:func:`conv_arguments` turns the arguments of a public convolution into a
:class:`~convlib.shapes.Geometry`, or raises what :mod:`torch.nn.functional` raises for
the same call: :class:`TypeError` for an argument of the wrong type (checked first, as
torch's argument parser does), :class:`NotImplementedError` for a dtype torch does not
compute in, :class:`RuntimeError` for a value torch refuses. Nothing is allocated until
every check has passed.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from .shapes import (Geometry, as_int, as_tuple, check_int_or_ints, conv_output_size,
                     resolve_padding, sizes)
from .torchlike import bias_dtype_checked, torch_uses_onednn

__all__ = ["check_types", "conv_arguments", "kernel_matrix_arguments", "positive", "check_groups"]


def positive(values: tuple[int, ...], name: str, fn: str = "") -> tuple[int, ...]:
    """Refuse a non-positive stride, dilation or kernel size, as torch does."""
    if any(v <= 0 for v in values):
        raise RuntimeError(f"{fn}{': ' if fn else ''}non-positive {name} is not supported, "
                           f"got {name}={list(values)}")
    return values


def check_groups(groups, fn: str = "") -> int:
    g = as_int(groups, "groups")
    if g <= 0:
        raise RuntimeError(f"{fn}{': ' if fn else ''}non-positive groups is not supported, "
                           f"got groups={g}")
    return g


def check_types(fn: str, input, weight, bias, stride, padding, dilation, groups,
                output_padding=None) -> None:
    """Every argument's type, before any value (torch's argument parser comes first)."""
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type(t).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{fn}(): argument 'bias' must be Tensor or None, not {type(bias).__name__}")
    check_int_or_ints(stride, "stride")
    check_int_or_ints(dilation, "dilation")
    as_int(groups, "groups")
    if output_padding is not None:
        if isinstance(padding, str):
            raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
        check_int_or_ints(output_padding, "output_padding")
    if not isinstance(padding, str):
        check_int_or_ints(padding, "padding")


#: integer dtypes torch's CPU convolutions compute in (its transposed ones: int64 only)
_INTEGER = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def _check_dtypes(fn: str, input: Tensor, weight: Tensor, bias, transposed: bool,
                  check_bias: bool) -> None:
    """Same dtype and device for input, weight and bias, and a dtype torch computes in.

    torch skips the dtype checks for an empty input (no kernel runs), except that a
    complex input needs a complex weight; some of its kernels never look at the bias's
    dtype (``check_bias`` False: convlib then adds the bias in the input's dtype, as they
    do)."""
    if input.is_complex() and not weight.is_complex():
        raise RuntimeError(f"{fn}: input type ({input.dtype}) and weight type ({weight.dtype}) "
                           "should be the same")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != input.device:
            raise RuntimeError(f"{fn}: input and {name} should be on the same device, but got "
                               f"input on {input.device} and {name} on {t.device}")
    for name, t in (("weight", weight if input.numel() else None),
                    ("bias", bias if check_bias else None)):
        if t is not None and t.dtype != input.dtype:
            raise RuntimeError(f"{fn}: input type ({input.dtype}) and {name} type ({t.dtype}) "
                               "should be the same")


def conv_arguments(fn: str, d: int, input: Tensor, weight: Tensor, bias: Optional[Tensor],
                   stride, padding, dilation, groups, output_padding=None) -> Geometry:
    """Check the arguments of ``conv{d}d`` (``output_padding is None``) or
    ``conv_transpose{d}d`` and return their :class:`~convlib.shapes.Geometry`.

    Raises:
        TypeError: an argument of the wrong type (a float stride, a string padding for a
            transposed convolution, a non-tensor input). These come first, as in torch.
        NotImplementedError: a dtype torch does not compute in (bool; integers other than
            int64 for a transposed convolution).
        RuntimeError: every value torch refuses: wrong dimensions, dtypes or devices that
            differ, non-positive stride, dilation, groups or kernel size, negative padding,
            ``padding='same'`` with a stride, an ``output_padding`` not smaller than the
            stride or the dilation, channels that do not match the weight and groups, a
            bias of the wrong size, a kernel larger than the padded input, an empty
            spatial input.
        IndexError: a kernel with a zero size on an empty input (torch's own quirk).
    """
    transposed = output_padding is not None
    check_types(fn, input, weight, bias, stride, padding, dilation, groups, output_padding)
    if input.dim() not in (d + 1, d + 2):
        raise RuntimeError(f"{fn}: expected {d + 1}D (unbatched) or {d + 2}D (batched) input, "
                           f"but got input of size: {list(input.shape)}")
    if weight.dim() != d + 2:
        raise RuntimeError(f"{fn}: expected weight to be {d + 2}-dimensional, but got weight of "
                           f"size {list(weight.shape)}")
    s = positive(as_tuple(stride, d, "stride"), "stride", fn)
    dil = as_tuple(dilation, d, "dilation")
    g = as_int(groups, "groups")
    op = as_tuple(output_padding, d, "output_padding") if transposed else (0,) * d
    k = tuple(weight.shape[2:])

    def onednn() -> bool:
        x = input if input.dim() == d + 2 else input.unsqueeze(0)
        return torch_uses_onednn(x, weight, Geometry(s, ((0, 0),) * d, dil, max(g, 1), op))

    # torch's quirks: an empty input skips this check, and so does oneDNN's 1-d or 2-d
    # transposed convolution where the kernel has one tap (the dilation does not matter)
    if any(v < 0 for v in dil) or (input.numel() and any(v == 0 for v in dil) and not (
            transposed and d <= 2 and all(kk == 1 for v, kk in zip(dil, k) if v == 0)
            and onednn())):
        raise RuntimeError(f"{fn}: dilation should be greater than zero, got dilation={list(dil)}")
    g = check_groups(groups, fn)
    empty_kernel = f"{fn}: kernel size should be greater than zero, but got kernel size " \
                   f"{list(k)} (weight of size {list(weight.shape)})"
    if any(v <= 0 for v in k) and input.numel():
        raise RuntimeError(empty_kernel)
    if transposed:
        p = as_tuple(padding, d, "padding")
        if any(v < 0 for v in p):
            raise RuntimeError(f"{fn}: negative padding is not supported, got padding={list(p)}")
        pads = tuple((v, v) for v in p)
        if any(v < 0 for v in op):
            raise RuntimeError(f"{fn}: negative output_padding is not supported, got "
                               f"output_padding={list(op)}")
        if input.numel() and any(o >= a and o >= b for o, a, b in zip(op, s, dil)):
            raise RuntimeError(f"{fn}: output padding must be smaller than either stride or "
                               f"dilation, but got output_padding={list(op)}, stride={list(s)}, "
                               f"dilation={list(dil)}")
    else:
        pads = resolve_padding(padding, k, s, dil)
    geometry = Geometry(s, pads, dil, g, op)
    _check_dtypes(fn, input, weight, bias, transposed, bias_dtype_checked(
        transposed, isinstance(padding, str), input, weight, geometry))

    c_in = input.shape[-d - 1]
    if transposed:
        if weight.shape[0] < 1 or weight.shape[0] % g:
            raise RuntimeError(f"{fn}: given groups={g}, expected weight to be at least {g} at "
                               f"dimension 0 and divisible by {g}, but got weight of size "
                               f"{list(weight.shape)}")
        if weight.shape[1] == 0 and input.numel():
            raise RuntimeError(f"{fn}: non-empty weight tensor expected, but got weight of size "
                               f"{list(weight.shape)}")
        if c_in != weight.shape[0]:
            raise RuntimeError(f"{fn}: given transposed=1, weight of size {list(weight.shape)}, "
                               f"expected input of size {list(input.shape)} to have "
                               f"{weight.shape[0]} channels, but got {c_in} channels instead")
        c_out = weight.shape[1] * g
    else:
        if weight.shape[0] < 1 or weight.shape[0] % g:
            raise RuntimeError(f"{fn}: given groups={g}, expected weight to be at least {g} at "
                               f"dimension 0 and divisible by {g}, but got weight of size "
                               f"{list(weight.shape)}")
        if c_in != weight.shape[1] * g:
            raise RuntimeError(f"{fn}: given groups={g}, weight of size {list(weight.shape)}, "
                               f"expected input of size {list(input.shape)} to have "
                               f"{weight.shape[1] * g} channels, but got {c_in} channels instead")
        c_out = weight.shape[0]
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != c_out):
        raise RuntimeError(f"{fn}: given weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {c_out} elements, but got bias of size "
                           f"{list(bias.shape)} instead")

    size = tuple(input.shape[-d:])
    batch = input.shape[0] if input.dim() == d + 2 else 1
    if math.prod(size) == 0 and batch and c_in:
        raise RuntimeError(f"{fn}: only zero batch or zero channel inputs are supported, but got "
                           f"input of size {list(input.shape)}")
    if (any(v <= 0 for v in k) or (transposed and weight.shape[1] == 0)) and c_in:
        # an empty input: torch fails later, and differently (and not at all without channels)
        raise IndexError(empty_kernel if any(v <= 0 for v in k) else
                         f"{fn}: non-empty weight tensor expected, but got weight of size "
                         f"{list(weight.shape)}")
    if not transposed:
        padded = tuple(n + a + b for n, (a, b) in zip(size, pads))
        span = tuple(dl * (kk - 1) + 1 for kk, dl in zip(k, dil))
        if any(pn < sp for pn, sp in zip(padded, span)):
            raise RuntimeError(f"{fn}: calculated padded input size per channel: {padded}. Kernel "
                               f"size (dilated): {span}. Kernel size can't be greater than actual "
                               f"input size: the kernel (weight) does not fit in the padded input "
                               f"(input, padding)")
    elif input.numel() and any(o < 1 for o in geometry.transpose_output_size(size, k)):
        raise RuntimeError(f"{fn}: the output size {geometry.transpose_output_size(size, k)} is "
                           f"too small (input of size {list(input.shape)}, weight of size "
                           f"{list(weight.shape)}, padding={[a for a, _ in pads]}, "
                           f"stride={list(s)}, dilation={list(dil)})")
    dtype = input.dtype
    if input.numel() and not (dtype.is_floating_point or dtype.is_complex or dtype == torch.int64
                              or (dtype in _INTEGER and not transposed)):
        raise NotImplementedError(f"{fn}: not implemented for input of dtype {dtype}")
    return geometry


def kernel_matrix_arguments(weight, input_size, stride, padding, dilation, groups):
    """Check the arguments of :func:`convlib.kernel_matrix`; return the weight as
    ``(C_out, C_in/groups, *k)``, the input size and the :class:`~convlib.shapes.Geometry`.

    Raises:
        TypeError: a weight that is not a tensor, or an argument of the wrong type.
        ValueError: a weight whose dimensions do not fit ``input_size``, or an empty input.
        RuntimeError: what torch's convolutions refuse (non-positive stride, dilation or
            groups, channels not divisible by the groups, a kernel larger than the padded
            input), with their wording.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    size = sizes(input_size, "input_size")
    d = len(size)
    if weight.dim() == d:
        weight = weight.reshape(1, 1, *weight.shape)
    elif weight.dim() != d + 2:
        raise ValueError(
            f"weight must have {d} dims (one kernel) or {d + 2} dims (C_out, C_in/groups, *k) "
            f"for input_size={size}, got shape {tuple(weight.shape)}"
        )
    if any(n < 1 for n in size):
        raise ValueError(f"input_size must be positive, got {size}")
    groups = as_int(groups, "groups")
    if groups < 1:
        raise RuntimeError(f"non-positive groups is not supported, got groups={groups!r}")
    c_out, c_in_g, *k = weight.shape
    if c_out % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of shape {tuple(weight.shape)}")
    s = as_tuple(stride, d, "stride")
    dil = as_tuple(dilation, d, "dilation")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"non-positive stride is not supported, got stride={stride!r}")
    if any(v <= 0 for v in dil):
        raise RuntimeError(f"dilation should be greater than zero, got dilation={dilation!r}")
    pads = resolve_padding(padding, k, s, dil)
    out = conv_output_size(size, k, s, pads, dil)
    if any(o < 1 for o in out):
        padded = tuple(n + a + b for n, (a, b) in zip(size, pads))
        span = tuple(dl * (kk - 1) + 1 for kk, dl in zip(k, dil))
        raise RuntimeError(f"Calculated padded input size per channel: {padded}. Kernel size "
                           f"(dilated): {span}. Kernel size can't be greater than actual input size")
    return weight, size, Geometry(s, pads, dil, groups)
