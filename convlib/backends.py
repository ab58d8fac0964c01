r"""Which factorization of ``W`` computes each product, and in which dtype and layout.

Every convolution in :mod:`convlib` is one of three products with the kernel matrix:
``W x`` (:func:`conv`), ``W^T y`` (:func:`conv_transpose`) and the weight gradient
``G (S x)^T`` (:func:`conv_weight_grad`). Each has more than one factorization; this module
picks one per call by a small rule, and :func:`use` forces one, for the book and the tests:

``"im2col"``
    the columns ``S x`` a few samples at a time, then one matrix product
    (:mod:`convlib.columns`). Any geometry.
``"shifted"``
    stride 1 only: ``S`` split by kernel offset, each block a shifted slice of the flat
    padded input, so nothing is copied (:mod:`convlib.shifted`).

The rule (``"auto"``): ``"shifted"`` for stride 1 with at least :data:`SHIFTED_MIN_CHANNELS`
channels per group (with fewer, its products are too thin to be fast), when the
values its run-on entries multiply are finite; ``"im2col"`` otherwise.

Two more things are settled here, the same for every factorization:

* **dtype**: ``float16`` and ``bfloat16`` are computed in ``float32`` and rounded once at
  the end, as torch accumulates them;
* **memory format**: the result is channels-last when torch's would be
  (:func:`output_memory_format`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import torch
from torch import Tensor

from .columns import conv_columns, conv_transpose_columns, weight_grad_columns, weight_grad_taps
from .shapes import Geometry
from .shifted import conv_shifted, conv_transpose_shifted, weight_grad_shifted

__all__ = ["ALGORITHMS", "SHIFTED_MIN_CHANNELS", "use", "choose", "output_memory_format",
           "torch_uses_onednn", "laid_out",
           "conv", "conv_transpose", "conv_weight_grad"]

#: The factorizations that :func:`use` can force.
ALGORITHMS = ("auto", "im2col", "shifted")

#: Stride-1 convolutions with at least this many input channels per group skip the
#: im2col copy (``"shifted"``); with fewer, the products would be too thin.
SHIFTED_MIN_CHANNELS = 64

_forced: Optional[str] = None


@contextlib.contextmanager
def use(algorithm: str) -> Iterator[None]:
    """Force one factorization inside a ``with`` block, where it applies.

    ``"auto"`` restores the rule. A forced algorithm that does not apply to a call (for
    example ``"shifted"`` with stride 2) falls back to ``"im2col"``; :func:`choose` says
    which one a call gets.

    Example::

        >>> with convlib.backends.use("im2col"):
        ...     y = convlib.conv2d(x, w)
    """
    global _forced
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    previous, _forced = _forced, None if algorithm == "auto" else algorithm
    try:
        yield
    finally:
        _forced = previous


def choose(geometry: Geometry, channels_per_group: int, finite=lambda: True) -> str:
    """The factorization a product gets: the forced one where it applies, else the rule.

    ``channels_per_group`` is the reduction the products run over; ``finite`` says
    (lazily: it may read a whole tensor) whether the values the ``"shifted"`` run-on
    entries multiply are finite.
    """
    shifted_applies = geometry.unit_stride
    if _forced == "shifted" and shifted_applies and finite():
        return "shifted"
    if _forced is not None:
        return "im2col"
    if shifted_applies and channels_per_group >= SHIFTED_MIN_CHANNELS and finite():
        return "shifted"
    return "im2col"


try:  # torch's own Python mirror of Tensor.suggest_memory_format()
    from torch._prims_common import suggest_memory_format as _suggest
except ImportError:  # pragma: no cover - older or newer torch
    def _suggest(t: Tensor) -> torch.memory_format:
        cl = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return cl if t.is_contiguous(memory_format=cl) and not t.is_contiguous() \
            else torch.contiguous_format

def torch_uses_onednn(x: Tensor, weight: Tensor, geometry: Geometry) -> bool:
    """Whether torch would compute this convolution with its oneDNN kernel on the CPU.

    Two things here follow it: torch's other CPU kernels (``slow_conv3d``,
    ``slow_conv_transpose``) ignore channels-last in 3-d, and multiply the padding zeros in
    a transposed convolution's weight gradient; oneDNN does neither. The rule is torch's
    (``ConvParams::use_mkldnn``): float32 except for tiny problems, bfloat16 and float16
    only where the CPU has instructions for them.
    """
    if x.device.type != "cpu" or not (torch.backends.mkldnn.is_available()
                                      and torch.backends.mkldnn.enabled):
        return False
    if any(op >= s for op, s in zip(geometry.output_padding, geometry.stride)):
        return False  # oneDNN has no output_padding of a stride or more
    dtype = x.real.dtype if x.is_complex() else x.dtype
    if dtype == torch.bfloat16:
        return torch.cpu._is_avx512_supported() or torch.cpu._is_amx_tile_supported()
    if dtype == torch.float16:
        return torch.cpu._is_amx_fp16_supported()
    if dtype != torch.float32:
        return False
    n, c, *size = x.shape  # torch looks at the first four sizes (a 1-d input gets height 1)
    kh, kw = ([1] + list(weight.shape[2:]))[-2:]
    first_four = n * c * math.prod(([1] + size)[:2] if len(size) == 1 else size[:2])
    return ((not geometry.unit_stride or any(dl != 1 for dl in geometry.dilation) or n >= 16
             or kh != 1 or kw != 1 or torch.get_num_threads() > 1)
            and (geometry.groups > 1 or (kh > 3 and kw > 3) or n > 1 or first_four > 20480))


def output_memory_format(x: Tensor, weight: Tensor, geometry: Geometry, *,
                         gradient: bool = False) -> torch.memory_format:
    """The memory format of torch's result for a convolution of the batched ``x`` with
    ``weight``.

    Channels-last (``channels_last`` in 2-d, ``channels_last_3d`` in 3-d) when the input
    or the weight is channels-last, as torch's convolutions choose, except where torch's
    kernels return contiguous results: 3-d convolutions that oneDNN does not compute
    (:func:`torch_uses_onednn`), and the gradients of complex convolutions (torch computes
    those from three real ones). A 1-d convolution is computed by torch as a 2-d one of
    height 1 on a contiguous input, so its result is "channels-last" (``channels_last``,
    applied with the height axis inserted) when the weight with that axis inserted is.
    ``gradient`` asks for the layout of the gradients rather than of the output.
    """
    d = x.dim() - 2
    if weight.dim() != x.dim() or d not in (1, 2, 3):
        return torch.contiguous_format
    cl = torch.channels_last_3d if d == 3 else torch.channels_last
    if d == 1:  # torch: a 2-d convolution of the contiguous input, height axis inserted
        like_cl = _suggest(weight.unsqueeze(2)) == cl
    else:
        like_cl = _suggest(x) == cl or _suggest(weight) == cl
    if not like_cl or (d == 3 and x.device.type == "cpu"
                       and not torch_uses_onednn(x, weight, geometry)):
        return torch.contiguous_format
    if gradient and x.dtype.is_complex:
        return torch.contiguous_format
    return cl


def laid_out(t: Tensor, memory_format: torch.memory_format) -> Tensor:
    """``t`` in ``memory_format``; a 3-d ``t`` with ``channels_last`` gets the layout of a
    channels-last 4-d tensor of height 1, squeezed (what torch's 1-d convolutions return)."""
    if t.dim() == 3 and memory_format == torch.channels_last:
        return t.unsqueeze(2).contiguous(memory_format=memory_format).squeeze(2)
    return t.contiguous(memory_format=memory_format)


def _opmath(*tensors: Optional[Tensor]):
    """Half types are computed in float32, as torch accumulates them."""
    return [t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t
            for t in tensors]


def _finished(result: Tensor, dtype: torch.dtype, memory_format: torch.memory_format) -> Tensor:
    return laid_out(result.to(dtype), memory_format)


def _add_bias_(y: Tensor, bias: Optional[Tensor]) -> Tensor:
    if bias is not None:
        y += bias.view(-1, *[1] * (y.dim() - 2))
    return y


def conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], geometry: Geometry,
         memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """``W x + b``: (N, C_in, *n) -> (N, C_out, *out)."""
    if x.shape[1] == 0:  # no input channels: torch returns no output channels either
        return x.new_zeros(x.shape[0], 0, *geometry.output_size(x.shape[2:], weight.shape[2:]))
    dtype = x.dtype
    x, weight, bias = _opmath(x.resolve_conj(), weight.resolve_conj(), bias)
    if choose(geometry, weight.shape[1]) == "shifted":
        y = conv_shifted(x, weight, geometry)
    else:
        y = conv_columns(x, weight, geometry)
    return _finished(_add_bias_(y, bias), dtype, memory_format)


def conv_transpose(y: Tensor, weight: Tensor, bias: Optional[Tensor], geometry: Geometry,
                   memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """``W^T y + b``: (N, C_in, *n) -> (N, C_out, *out), with ``geometry`` that of the
    convolution ``W`` (its padding is cropped off) plus ``output_padding``."""
    dtype = y.dtype
    y, weight, bias = _opmath(y.resolve_conj(), weight.resolve_conj(), bias)
    # The shifted form multiplies weights by the zeros where rows run on: 0 * inf = nan.
    if choose(geometry, weight.shape[0] // geometry.groups,
              lambda: bool(torch.isfinite(weight).all())) == "shifted":
        z = conv_transpose_shifted(y, weight, geometry)
    else:
        z = conv_transpose_columns(y, weight, geometry)
    return _finished(_add_bias_(z, bias), dtype, memory_format)


def conv_weight_grad(x: Tensor, gy: Tensor, weight_shape, geometry: Geometry,
                     memory_format: torch.memory_format = torch.contiguous_format,
                     skip_padding: bool = False) -> Tensor:
    """``G (S x)^T`` summed over the batch, weight-shaped; ``gy`` may cover fewer positions
    than the convolution of ``x`` has (only those windows are used).

    ``skip_padding``: make no products with the padding zeros. The weight gradient of a
    transposed convolution is this product, with its cropped output as the padding; torch's
    oneDNN kernel makes no products with it, its other kernels multiply the zeros. Where
    ``G`` is not finite this decides where NaN appears, so convlib follows the kernel torch
    would use (:func:`torch_uses_onednn`, :func:`~convlib.columns.weight_grad_taps`)."""
    dtype = gy.dtype
    x, gy = _opmath(x.resolve_conj(), gy.resolve_conj())
    if skip_padding and geometry.padded and not bool(torch.isfinite(gy).all()):
        gw = weight_grad_taps(x, gy, weight_shape, geometry)
    # The shifted form multiplies the input by the zeros where rows of G run on.
    elif choose(geometry, weight_shape[1], lambda: bool(torch.isfinite(x).all())) == "shifted":
        gw = weight_grad_shifted(x, gy, weight_shape, geometry)
    else:
        gw = weight_grad_columns(x, gy, weight_shape, geometry)
    return _finished(gw, dtype, memory_format)
