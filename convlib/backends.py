r"""Which factorization of ``W`` computes each product, and in which dtype and layout.

Every convolution in convlib is one of three products with the kernel matrix:
``W x`` (``conv``), ``W^T y`` (``conv_transpose``) and the weight gradient
``G (S x)^T`` (``conv_weight_grad``). Each has more than one factorization; this module
picks one per call by a small rule, and :func:`use` forces one, for the book and the tests:

``"im2col"``
    the columns ``S x`` a few samples at a time, then one matrix product
    (``convlib.columns``). Any geometry.
``"shifted"``
    stride 1 only: ``S`` split by kernel offset, each block a shifted slice of the flat
    padded input, so nothing is copied (``convlib.shifted``).

The rule (``"auto"``): ``"shifted"`` for stride 1 with at least :data:`SHIFTED_MIN_CHANNELS`
channels per group (with fewer, its products are too thin to be fast), when the
values its run-on entries multiply are finite; ``"im2col"`` otherwise.

Two more things are settled here, the same for every factorization:

* **dtype**: ``float16`` and ``bfloat16`` are computed in ``float32`` and rounded once at
  the end, as torch accumulates them;
* **memory format**: the result is laid out as torch's would be
  (:func:`convlib.torchlike.output_memory_format`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import Tensor

from .columns import conv_columns, conv_transpose_columns, weight_grad_columns, weight_grad_taps
from .shapes import Geometry
from .shifted import conv_shifted, conv_transpose_shifted, weight_grad_shifted
from .torchlike import laid_out

__all__ = ["ALGORITHMS", "SHIFTED_MIN_CHANNELS", "use", "choose", "conv", "conv_transpose",
           "conv_weight_grad"]

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
    would use (:func:`~convlib.torchlike.torch_uses_onednn`,
    :func:`~convlib.columns.weight_grad_taps`)."""
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
