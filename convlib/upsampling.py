r"""Upsampling as a fixed transposed convolution.

Upsampling by an integer factor :math:`s` with ``F.interpolate`` is linear, and it is the
transpose of a strided convolution with a fixed kernel:

* ``mode='nearest'``: each input entry is copied onto an :math:`s \times s` block, the
  stamp of an all-ones kernel of size :math:`s` moved :math:`s` apart,
  :math:`U = W^\top` for the kernel matrix :math:`W` of ``ones(s, s)`` with stride :math:`s`;
* ``mode='linear'``, ``'bilinear'``, ``'trilinear'`` (``align_corners=False``): the
  stamp is the tent :math:`1 - |t - c| / s` of size :math:`2s - (s \bmod 2)` (the
  bilinear kernel FCN initializes its upsampling layers with), with padding
  :math:`\lfloor s / 2 \rfloor`; ``F.interpolate`` repeats the first and last entry
  instead of reading zeros beyond the border, so :math:`U = W^\top P` with the
  replicate-padding matrix :math:`P` of :func:`convlib.padding.padding_matrix`.

:func:`checkerboard_score` measures what an upsampler must not add: energy at the
frequency of a checkerboard.
"""

from __future__ import annotations

import math
from typing import Union

import torch

from .matrix import kernel_matrix
from .padding import padding_matrix
from .shapes import IntOrTuple, as_tuple

__all__ = ["upsampling_kernel", "upsample_matrix", "checkerboard_score"]

_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


def upsampling_kernel(
    scale_factor: int,
    mode: str = "bilinear",
    *,
    d: int = 2,
    dtype: torch.dtype = torch.float32,
    device: Union[torch.device, str, None] = None,
) -> tuple[torch.Tensor, int]:
    r"""The kernel and padding of the transposed convolution that upsamples by ``scale_factor``.

    ``F.conv_transpose{d}d(y, kernel[None, None], stride=scale_factor, padding=padding)``
    equals ``F.interpolate(y, scale_factor=scale_factor, mode=mode)`` for ``mode='nearest'``
    everywhere, and for the linear modes (``align_corners=False``) everywhere but the
    first and last :math:`\lfloor s/2 \rfloor` entries along each axis, where interpolation
    repeats the border entry and the transposed convolution reads a zero.

    In 1-d the linear kernel is the tent

    .. math::

        K[t] = 1 - \frac{|t - c|}{s}, \qquad t = 0, \dots, 2s - (s \bmod 2) - 1,
        \qquad c = \frac{2s - (s \bmod 2) - 1}{2},

    (for :math:`s = 2`: :math:`(1, 3, 3, 1) / 4`), and in :math:`d` dimensions the outer
    product of :math:`d` tents. It is the "bilinear kernel" Long, Shelhamer and Darrell
    initialize FCN's upsampling layers with.

    Args:
        scale_factor: the integer factor :math:`s \ge 1`.
        mode: ``'nearest'``, or ``'linear'``, ``'bilinear'``, ``'trilinear'`` (1-, 2- or
            3-d).
        d: the number of dimensions of the ``'nearest'`` kernel (the linear modes name
            theirs).

    Returns:
        ``(kernel, padding)``: a :math:`d`-dimensional tensor, and the padding (an int) to
        pass to ``conv_transpose{d}d`` with ``stride=scale_factor``.

    Raises:
        ValueError: for a non-integer or non-positive ``scale_factor`` or an unknown mode.
    """
    s = _check_scale(scale_factor)
    if mode == "nearest":
        return torch.ones((s,) * d, dtype=dtype, device=device), 0
    if mode not in _LINEAR_MODES:
        raise ValueError(f"mode must be 'nearest', 'linear', 'bilinear' or 'trilinear', got {mode!r}")
    k = 2 * s - s % 2
    t = torch.arange(k, dtype=torch.float64)
    tent = 1 - (t - (k - 1) / 2).abs() / s                           # (k,)
    kernel = torch.ones((), dtype=torch.float64)
    for _ in range(_LINEAR_MODES[mode]):
        kernel = kernel[..., None] * tent                            # outer product, one axis more
    return kernel.to(dtype=dtype, device=device), s // 2


def upsample_matrix(
    input_size: IntOrTuple,
    scale_factor: int,
    mode: str = "nearest",
    *,
    dtype: torch.dtype = torch.float32,
    device: Union[torch.device, str, None] = None,
) -> torch.Tensor:
    r"""The matrix ``U`` of ``F.interpolate``: ``U @ y.flatten() == interpolate(y).flatten()``.

    For one channel of spatial size ``input_size`` and an integer ``scale_factor``
    :math:`s` (``align_corners=False`` for the linear modes):

    .. math::

        U_\text{nearest} = W^\top, \qquad U_\text{linear} = W^\top P ,

    where :math:`W` is :func:`~convlib.kernel_matrix` of the kernel of
    :func:`upsampling_kernel` on the upsampled size :math:`s n`, with stride :math:`s`
    (and, for the linear modes, padding :math:`\lfloor s/2 \rfloor + s`, so that its
    output has :math:`n + 2` entries per axis), and :math:`P` copies each border entry
    once more, the replicate padding by one of :func:`~convlib.padding.padding_matrix`.

    Args:
        input_size: ``n``, ``d`` ints (an int for 1-d).
        scale_factor: the integer factor :math:`s \ge 1`, the same along every axis.
        mode: ``'nearest'``, ``'linear'`` (``d = 1``), ``'bilinear'`` (``d = 2``) or
            ``'trilinear'`` (``d = 3``).

    Returns:
        torch.Tensor: dense, of shape :math:`(\prod s\,n,\; \prod n)`.

    Raises:
        ValueError: for a bad ``scale_factor`` or mode.
        NotImplementedError: for a linear mode that does not match the number of
            dimensions (as ``F.interpolate`` raises).
    """
    s = _check_scale(scale_factor)
    d = 1 if isinstance(input_size, int) else len(input_size)
    n = as_tuple(input_size, d, "input_size")
    big = tuple(s * nj for nj in n)
    if mode == "nearest":
        ones = torch.ones((s,) * d, dtype=torch.float64)
        W = kernel_matrix(ones, big, stride=s, sparse=False)        # (prod n, prod s n): sum pooling
        return W.mT.to(dtype=dtype, device=device)
    if mode not in _LINEAR_MODES:
        raise ValueError(f"mode must be 'nearest', 'linear', 'bilinear' or 'trilinear', got {mode!r}")
    if _LINEAR_MODES[mode] != d:
        raise NotImplementedError(f"Got {d}-d input_size {n}, but {mode!r} mode needs "
                                  f"{_LINEAR_MODES[mode]}-d")
    kernel, padding = upsampling_kernel(s, mode, dtype=torch.float64)
    W = kernel_matrix(kernel, big, stride=s, padding=padding + s, sparse=False)  # (prod (n + 2), prod s n)
    P = padding_matrix(n, 1, "replicate", dtype=torch.float64)                  # (prod (n + 2), prod n)
    assert W.shape[0] == P.shape[0] == math.prod(nj + 2 for nj in n)
    return (W.mT @ P).to(dtype=dtype, device=device)


def _check_scale(scale_factor) -> int:
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
        raise ValueError(f"scale_factor must be a positive int, got {scale_factor!r}")
    return scale_factor


def checkerboard_score(input: torch.Tensor) -> torch.Tensor:
    r"""The fraction of an image's energy at the Nyquist frequency :math:`(\pi, \pi)`.

    A checkerboard :math:`(-1)^{i + j}` is the Fourier mode of the highest frequency along
    both axes. For an :math:`h \times w` image :math:`Z` with DFT :math:`\hat Z` (for even
    :math:`h` and :math:`w`, :math:`(\pi, \pi)` is the bin :math:`(h/2, w/2)`), by
    Parseval's identity,

    .. math::

        \operatorname{score}(Z) = \frac{|\hat Z(\pi, \pi)|^2}{\sum_f |\hat Z(f)|^2}
             = \frac{\big(\sum_{i, j} (-1)^{i + j} Z[i, j]\big)^2}{h\, w \sum_{i, j} Z[i, j]^2} ,

    between 0 (no checkerboard component, e.g. a constant image) and 1 (a pure
    checkerboard). For even :math:`h` and :math:`w` the numerator is
    :math:`(h w / 4)^2 (m_{00} - m_{01} - m_{10} + m_{11})^2`, with :math:`m_{ab}` the mean of
    :math:`Z` over the pixels of phase :math:`(i \bmod 2, j \bmod 2) = (a, b)`: the score
    compares the "black" and the "white" squares of a checkerboard laid over the image.

    Shape:
        - Input: :math:`(*, h, w)`
        - Output: :math:`(*)`, one score per image (NaN for an all-zero image).
    """
    h, w = input.shape[-2:]
    i = torch.arange(h, device=input.device)[:, None]
    j = torch.arange(w, device=input.device)[None, :]
    sign = 1 - 2 * ((i + j) % 2).to(input.dtype)                   # (h, w): +1 and -1 alternating
    return (input * sign).sum((-2, -1)).square() / (h * w * input.square().sum((-2, -1)))
