"""What torch's own kernels decide, that a drop-in must decide the same way.

torch computes a convolution with one of several kernels (oneDNN's, its reference
``slow_conv*`` kernels, a depthwise one), chosen by dtype, size and hardware. The numbers
do not depend on the choice, but three visible things do, and convlib mirrors them:

* the **memory format** of the result and of the gradients (:func:`output_memory_format`);
* whether a **bias of another dtype** is refused (:func:`bias_dtype_checked`);
* whether the products with **padding zeros** are made, which decides where a non-finite
  value turns into NaN (:func:`torch_uses_onednn`, used by
  ``convlib.backends.conv_weight_grad``).

Each rule was read off torch 2.13 on the CPU and is checked against it by the
differential tests (``tests/test_differential.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import cpu
from .shapes import Geometry

__all__ = ["torch_uses_onednn", "output_memory_format", "laid_out", "bias_dtype_checked"]


try:  # torch's own Python mirror of Tensor.suggest_memory_format()
    from torch._prims_common import suggest_memory_format as _suggest
except ImportError:  # pragma: no cover - older or newer torch
    def _suggest(t: Tensor) -> torch.memory_format:
        cl = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return cl if t.is_contiguous(memory_format=cl) and not t.is_contiguous() \
            else torch.contiguous_format


# What the machine offers oneDNN does not change while a program runs: read it once (and
# outside torch.compile, which refuses to trace these queries).
_ONEDNN = torch.backends.mkldnn.is_available()
_ONEDNN_BF16 = torch.cpu._is_avx512_supported() or torch.cpu._is_amx_tile_supported()
# torch's rule for half precision is oneDNN's own test, AVX-512 FP16 or AMX FP16, which torch
# has no query for: the AVX-512 FP16 flag is read from the processor (convlib.cpu.flags)
_ONEDNN_FP16 = torch.cpu._is_amx_fp16_supported() or "avx512_fp16" in cpu.flags()


@torch.compiler.assume_constant_result
def _onednn_enabled() -> bool:
    """``torch.backends.mkldnn.enabled`` (read when a compiled function is traced)."""
    return torch._C._get_mkldnn_enabled()


def torch_uses_onednn(x: Tensor, weight: Tensor, geometry: Geometry) -> bool:
    """Whether torch would compute this convolution with its oneDNN kernel on the CPU.

    Two things here follow it: torch's other CPU kernels (``slow_conv3d``,
    ``slow_conv_transpose``) ignore channels-last in 3-d, and multiply the padding zeros in
    a transposed convolution's weight gradient; oneDNN does neither. The rule is torch's
    (``ConvParams::use_mkldnn``): float32 except for tiny problems, bfloat16 and float16
    only where the CPU has instructions for them (AVX-512 for bfloat16; AVX-512 FP16 or AMX
    FP16 for float16).
    """
    if x.device.type != "cpu" or not (_ONEDNN and _onednn_enabled()):
        return False
    if any(op >= s for op, s in zip(geometry.output_padding, geometry.stride)):
        return False  # oneDNN has no output_padding of a stride or more
    dtype = x.real.dtype if x.is_complex() else x.dtype
    if dtype == torch.bfloat16:
        return _ONEDNN_BF16
    if dtype == torch.float16:
        return _ONEDNN_FP16
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



def bias_dtype_checked(transposed: bool, string_padding: bool, input: Tensor, weight: Tensor,
                       geometry: Geometry) -> bool:
    """Whether torch refuses a bias whose dtype is not the input's: always in a 3-d
    transposed convolution and with an int padding; with ``padding='same'`` or ``'valid'``
    and in 1-d and 2-d transposed convolutions only when oneDNN computes it (torch's other
    kernels add the bias in the input's dtype)."""
    if (transposed or string_padding) and input.numel() == 0:
        return False  # nothing is computed
    if (transposed and weight.dim() == 5) or (not transposed and not string_padding):
        return True
    x = input if input.dim() == weight.dim() else input.unsqueeze(0)
    return torch_uses_onednn(x, weight, geometry)
