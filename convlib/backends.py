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
``"pointwise"``
    one-tap kernels, stride 1, no padding: the 1x1 convolution is one matrix product on
    views of the tensors, nothing copied (``convlib.pointwise``).
``"subpixel"``
    the transpose with any stride: one stride-1 transposed convolution per output phase,
    interleaved (``convlib.subpixel``).
``"winograd"``
    stride 1, undilated, 3 taps per dimension, 1-d and 2-d, real dtypes, finite values:
    ``W = A^T [(G g G^T) (.) (B^T d B)] A`` tile by tile (``convlib.winograd``), for the
    convolution and for its transpose (the convolution with the flipped, transposed kernel).
``"polyphase"``
    any stride: the sum over the input's phases of stride-1 convolutions, each a shifted
    slice of one flat buffer (``convlib.polyphase``); the convolution and the weight
    gradient.

The rule (``"auto"``), read off the layer zoo of ``make bench`` (:mod:`convlib.bench`):

1. ``"pointwise"`` wherever it applies (it makes exactly the definition's products);
2. ``"shifted"`` for stride 1 (for the transpose and the weight gradient only when the
   padding or run-on zeros they multiply meet finite values):
   the convolution and the transpose where at least :data:`SHIFTED_MIN_KEPT` of the
   positions its products compute are kept (the rest is run-on over the padding: small
   images with wide padding waste too much) or the kernel has more than
   :data:`SHIFTED_ALWAYS_TAPS` taps (its im2col copy would be larger still), unless a
   convolution without groups has only a few input channels (:data:`SHIFTED_FEW_CHANNELS`:
   then its products are too thin); the weight
   gradient always (its products are few and large and need no column copy: measured
   faster than im2col, product by product, on every stride-1 zoo layer, depthwise included);
   but not where the products go to oneDNN (:mod:`convlib.gemm`, ``fast_gemm``): float32 on
   the CPU with at least :data:`FAST_GEMM_MIN_CHANNELS` channels per group, where im2col's
   one large product is fast enough that its copy costs less;
3. ``"im2col"`` otherwise. Where its products go to oneDNN and the layer has no groups,
   its columns are laid out one window per row (``convlib.columns.conv_columns_last``,
   ``weight_grad_columns_last``, ``conv_transpose_columns_last``: oneDNN's product is
   fastest with the large operand on the left), and a stride-1 transpose whose values are
   finite is the im2col product of the equivalent convolution
   (:func:`convlib.shifted.as_convolution`) rather than col2im.

``"subpixel"``, ``"winograd"`` and ``"polyphase"`` are taken only when forced: measured on
this project's 2-core CPU (``make bench``), none of them was faster than the rule's choice
on the zoo layers they apply to by more than the noise of a run (about 10%); Winograd was
slower on all of them (see :data:`WINOGRAD_TILES` for the error rule that would admit
Winograd).

Two more things are settled here, the same for every factorization:

* **dtype**: ``float16`` and ``bfloat16`` are computed in ``float32`` and rounded once at
  the end, as torch accumulates them;
* **memory format**: the result is laid out as torch's would be
  (:func:`convlib.torchlike.output_memory_format`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import torch
from torch import Tensor

from . import columns, gemm, pointwise, winograd
from .columns import (conv_columns, conv_columns_last, conv_transpose_columns, conv_transpose_columns_last,
                      samples_per_chunk,
                      weight_grad_columns, weight_grad_columns_last, weight_grad_taps)
from .shapes import Geometry
from .polyphase import conv_polyphase, weight_grad_polyphase
from .shifted import as_convolution, conv_shifted, conv_transpose_shifted, weight_grad_shifted
from .subpixel import conv_transpose_subpixel
from .torchlike import laid_out

__all__ = ["ALGORITHMS", "FAST_GEMM_MIN_CHANNELS", "SHIFTED_MIN_KEPT", "SHIFTED_ALWAYS_TAPS",
           "SHIFTED_FEW_CHANNELS", "WINOGRAD_TILES", "finite", "kept_fraction", "use", "choose", "conv", "conv_transpose",
           "conv_weight_grad"]

#: The factorizations that :func:`use` can force.
ALGORITHMS = ("auto", "im2col", "shifted", "pointwise", "subpixel", "winograd", "polyphase")

#: ``"shifted"`` is chosen only where at least this fraction of the positions its products
#: compute are outputs (:func:`kept_fraction`); below it the run-on costs more than the
#: im2col copy saves (measured: DeepLab's dilated 3x3, 0.875 kept, about 13% faster as
#: im2col; ResNet 3x3 at 14x14, 0.875, within the noise either way; ResNet 3x3 at 56x56,
#: 0.97, faster shifted).
SHIFTED_MIN_KEPT = 0.9

#: Kernels with more taps than this get ``"shifted"`` whatever the run-on: their im2col copy,
#: that many times the input, costs more than it (measured: C3D's 3x3x3 layer, 0.87 kept, is about 1.5x
#: faster shifted).
SHIFTED_ALWAYS_TAPS = 9

#: A convolution without groups that has at most this many input channels (per number of
#: dimensions) does not get ``"shifted"`` for its taps (:data:`SHIFTED_ALWAYS_TAPS`), only
#: for its run-on (:data:`SHIFTED_MIN_KEPT`): each shifted
#: product then reduces over only those few channels, a thin product per tap, and im2col's
#: copy is small (measured forward on a 2-core AVX2 EPYC, im2col against shifted: LeNet's
#: 5x5 layers, 1 and 6 channels, 1.15 against 2.04 ms and 1.48 against 2.71 ms; 5x5 on
#: 28x28 with 4 and 8 channels, 2.25 against 2.93 and 5.25-5.42 against 6.02-6.73 ms; but
#: with 16 channels 18.6 against 15.9 ms, with groups im2col was 2.5x slower (a depthwise
#: 5x5 layer) and 1.4x (8 groups of 8 channels), and in 3-d with 8 channels 8.98 against 7.26 ms, with 4
#: 5.26 against 5.33, with 1 0.83 against 2.13).
SHIFTED_FEW_CHANNELS = {1: 8, 2: 8, 3: 4}

#: The output tile of Winograd's ``F(m, 3)`` per number of dimensions: the largest whose
#: float32 error against a float64 reference stays within twice torch's own (the larger of
#: its two float32 CPU kernels', oneDNN's and its im2col's), measured over random inputs
#: (``tests/test_winograd.py``): ``F(2, 3)`` and ``F(2x2, 3x3)``, at 0.4-1.9x
#: (measured: ``F(4, 3)`` 1.6-2.4x, ``F(6, 3)`` 2.7x, ``F(4x4, 3x3)`` 2.9-13.5x).
WINOGRAD_TILES = {1: (2,), 2: (2, 2)}

#: :func:`choose`'s ``fast_gemm`` needs at least this many channels per group on both sides of
#: the weight: with fewer, im2col makes many thin products, one per group (measured:
#: ResNeXt's 3x3 layer, 4 channels in each of 32 groups, forward 11.7 ms as im2col against
#: 4.7 ms shifted).
FAST_GEMM_MIN_CHANNELS = 16

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


def kept_fraction(padded_size, output_size) -> float:
    """The fraction of the flat positions a shifted product computes that are outputs:
    each output row runs on over the padded width, in every dimension but the first."""
    return math.prod(output_size[1:]) / max(1, math.prod(padded_size[1:]))


def _applies(algorithm: str, geometry: Geometry, kernel_size, product: str, dtype) -> bool:
    """Whether ``algorithm`` can compute ``product`` for this geometry at all."""
    if algorithm == "pointwise":  # one tap, stride 1, no padding: S is the identity
        return (all(k == 1 for k in kernel_size) and geometry.unit_stride and not geometry.padded
                and not any(geometry.output_padding or ()))
    if algorithm == "subpixel":
        return product == "transpose"
    if algorithm == "shifted":
        return geometry.unit_stride
    if algorithm == "winograd":
        return (product != "weight_grad" and geometry.unit_stride and geometry.d in WINOGRAD_TILES
                and all(k == 3 for k in kernel_size) and all(dl == 1 for dl in geometry.dilation)
                and not dtype.is_complex)
    if algorithm == "polyphase":
        return product != "transpose"
    return algorithm == "im2col"


def choose(geometry: Geometry, finite=lambda: True, *,
           kernel_size=(), product: str = "conv", dtype: torch.dtype = torch.float32,
           kept: float = 1.0, fast_gemm: bool = False, in_channels: int = 0) -> str:
    """The factorization a product gets: the forced one where it applies (and where the
    values it needs finite are), else the rule; a forced one that cannot serve gets im2col.

    ``finite`` says (lazily: it may read whole tensors) whether the values a form mixes
    beyond the definition's products are finite: for ``"shifted"``, ``"subpixel"`` (made of
    shifted pieces) and ``"polyphase"``, in the transpose and the weight gradient, the values
    that meet padding or run-on zeros (checked conservatively: both tensors of the product);
    for ``"winograd"`` the input and the weight, which its transforms add together.
    ``product`` is ``"conv"``, ``"transpose"`` or ``"weight_grad"``; ``kept`` the
    :func:`kept_fraction` of the shifted form's products; ``in_channels`` the convolution's
    input channels (for :data:`SHIFTED_FEW_CHANNELS`; 0: not known). ``fast_gemm``: the products are
    matrix products (:data:`FAST_GEMM_MIN_CHANNELS` channels per group or more on both
    sides) that go to oneDNN
    (:func:`convlib.gemm.uses_onednn`). Its im2col product is then fast enough that the
    column copy costs less than the shifted form's many thinner products, which oneDNN
    cannot take as they lie (measured: ResNet's 3x3 layer at 56x56, forward 7.6 ms as
    im2col against 11.5 ms shifted; a TCN's dilated conv1d 4.3 against 6.3 ms).
    """
    def ok(algorithm: str) -> bool:
        if not _applies(algorithm, geometry, kernel_size, product, dtype):
            return False
        exact = algorithm in ("im2col", "pointwise") or (product == "conv" and algorithm != "winograd")
        return exact or finite()

    if _forced is not None:
        return _forced if ok(_forced) else "im2col"
    if ok("pointwise"):
        return "pointwise"
    few_channels = (product == "conv" and geometry.groups == 1
                    and 0 < in_channels <= SHIFTED_FEW_CHANNELS.get(geometry.d, 0))
    worth_it = (product == "weight_grad"  # few large products, no column copy: always
                or kept >= SHIFTED_MIN_KEPT
                or (math.prod(kernel_size) > SHIFTED_ALWAYS_TAPS and not few_channels))
    if worth_it and not fast_gemm and ok("shifted"):
        return "shifted"
    return "im2col"


def _fast_gemm(a: Tensor, b: Tensor, groups: int, weight_shape=None) -> bool:
    """Whether this product's matrix products go to oneDNN (:func:`choose`): float32 on
    the CPU with oneDNN there and on, and at least :data:`FAST_GEMM_MIN_CHANNELS` channels
    per group on each side of the weight (``weight_shape``, else ``b`` is the weight)."""
    shape = weight_shape or b.shape
    return min(shape[0] // groups, shape[1]) >= FAST_GEMM_MIN_CHANNELS and gemm.route_is_onednn(a, b)


def _columns(x: Tensor, weight: Tensor, geometry: Geometry, fast_gemm: bool, last: bool) -> Tensor:
    """The im2col product ``W x``: with the columns one window per row
    (:func:`~convlib.columns.conv_columns_last`) where its products go to oneDNN, unless
    the result is wanted in the usual layout and a chunk of columns holds exactly one
    sample; else :func:`~convlib.columns.conv_columns`. Measured on the zoo: one window per
    row is faster where a chunk holds several samples (one product for all of them) and
    as fast where one sample's columns are larger than a chunk (which it splits, so their
    memory stays bounded); where a chunk is exactly one sample, transposing its result back
    costs more than the product gains (a TCN's conv1d: 6.1 ms against 3.8 ms)."""
    if fast_gemm and geometry.groups == 1 and (last or _not_one_sample_per_chunk(x, weight, geometry)):
        return conv_columns_last(x, weight, geometry, last)
    return conv_columns(x, weight, geometry)


def _not_one_sample_per_chunk(x: Tensor, weight: Tensor, geometry: Geometry) -> bool:
    """Whether a chunk of im2col's columns (:data:`~convlib.selection.CHUNK_BYTES`) holds
    several samples, or less than one."""
    per_sample = weight[0].numel() * math.prod(geometry.output_size(x.shape[2:], weight.shape[2:]))
    return samples_per_chunk(x, per_sample) > 1 or per_sample * x.element_size() > columns.CHUNK_BYTES


def finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite, in one pass where it is: a NaN or an infinity
    makes the sum NaN or infinite, so a finite sum settles it, and only a sum that is not
    finite (a non-finite entry, or an overflow) needs the entrywise check, which is about ten
    times slower."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _all_finite(*tensors: Tensor):
    return lambda: all(finite(t) for t in tensors)


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
    k, size = weight.shape[2:], x.shape[2:]
    padded = geometry.padded_size(size)
    fast_gemm, last = _fast_gemm(x, weight, geometry.groups), memory_format != torch.contiguous_format
    how = choose(geometry, _all_finite(x, weight), kernel_size=k, dtype=x.dtype,
                 kept=kept_fraction(padded, geometry.output_size(size, k)), fast_gemm=fast_gemm,
                 in_channels=x.shape[1])
    if how == "pointwise":
        y = pointwise.conv_pointwise(x, weight, geometry)
    elif how == "winograd":
        y = winograd.conv_winograd(x, weight, geometry, WINOGRAD_TILES[geometry.d])
    elif how == "polyphase":
        y = conv_polyphase(x, weight, geometry)
    elif how == "shifted":
        y = conv_shifted(x, weight, geometry)
    else:
        y = _columns(x, weight, geometry, fast_gemm, last)
    return _finished(_add_bias_(y, bias), dtype, memory_format)


def conv_transpose(y: Tensor, weight: Tensor, bias: Optional[Tensor], geometry: Geometry,
                   memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """``W^T y + b``: (N, C_in, *n) -> (N, C_out, *out), with ``geometry`` that of the
    convolution ``W`` (its padding is cropped off) plus ``output_padding``."""
    dtype = y.dtype
    y, weight, bias = _opmath(y.resolve_conj(), weight.resolve_conj(), bias)
    # The shifted form multiplies the weights by padding zeros: 0 * inf = nan.
    k, grid = weight.shape[2:], y.shape[2:]
    out = geometry.transpose_output_size(grid, k)  # a stride-1 convolution's, padded by k - 1
    padded = [o + dl * (kk - 1) for o, dl, kk in zip(out, geometry.dilation, k)]
    all_finite = _all_finite(y, weight)
    fast_gemm, last = _fast_gemm(y, weight, geometry.groups), memory_format != torch.contiguous_format
    how = choose(geometry, all_finite, kernel_size=k, product="transpose", dtype=y.dtype,
                 kept=kept_fraction(padded, out), fast_gemm=fast_gemm)
    if how == "pointwise":
        z = pointwise.conv_transpose_pointwise(y, weight, geometry)
    elif how == "subpixel":
        z = conv_transpose_subpixel(y, weight, geometry)
    elif how == "winograd":
        z = winograd.conv_transpose_winograd(y, weight, geometry, WINOGRAD_TILES[geometry.d])
    elif how == "shifted":
        z = conv_transpose_shifted(y, weight, geometry)
    elif fast_gemm and all(s == 1 for s in geometry.stride) and all_finite():
        # stride 1: W^T is the kernel matrix of a convolution (as_convolution), whose im2col
        # product is faster than col2im's scatter-add; it multiplies padding zeros by the weights
        z = _columns(*as_convolution(y, weight, geometry), fast_gemm, last)
    elif fast_gemm and geometry.groups == 1:  # col2im from rows, one per input position
        z = conv_transpose_columns_last(y, weight, geometry, last)
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
    if skip_padding and geometry.padded and not finite(gy):
        gw = weight_grad_taps(x, gy, weight_shape, geometry)
    # The shifted form multiplies the input by the zeros where rows of G run on.
    elif (how := choose(geometry, _all_finite(x), kernel_size=weight_shape[2:],
                        product="weight_grad", dtype=x.dtype,  # no run-on cost: no kept
                        fast_gemm=(fast_gemm := _fast_gemm(x, gy, geometry.groups,
                                                           weight_shape)))) == "pointwise":
        gw = pointwise.weight_grad_pointwise(x, gy, weight_shape, geometry)
    elif how == "shifted":
        gw = weight_grad_shifted(x, gy, weight_shape, geometry)
    elif how == "polyphase":
        gw = weight_grad_polyphase(x, gy, weight_shape, geometry)
    elif fast_gemm and geometry.groups == 1:
        # its columns never exceed a chunk (measured: 0.73-0.94x the time of
        # weight_grad_columns on ResNet's layers, 1.05-1.23x on a dilated, a 1-d, a 3-d one)
        gw = weight_grad_columns_last(x, gy, weight_shape, geometry)
    else:
        gw = weight_grad_columns(x, gy, weight_shape, geometry)
    return _finished(gw, dtype, memory_format)
