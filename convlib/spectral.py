r"""Circular convolution through the discrete Fourier transform.

With circular padding, the kernel matrix of a stride-1 convolution is circulant (in 2-d:
block circulant with circulant blocks), and the DFT diagonalizes every such matrix. Its
eigenvalues are the DFT of the kernel, wrapped around onto the input grid and conjugated:

.. math::

    W = F^{-1} \operatorname{diag}(\lambda) F, \qquad
    \lambda = \overline{\operatorname{DFT}(c)}, \qquad
    c[(a - p_h) \bmod H,\, (b - p_w) \bmod W] \mathrel{+}= \text{weight}[a, b],

so ``W x = ifft2(lambda * fft2(x))``: the convolution theorem, for cross-correlation.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from .shapes import as_tuple

__all__ = ["wrap_kernel", "circulant_eigenvalues", "fft_conv2d"]


def wrap_kernel(weight: torch.Tensor, size: Sequence[int],
                padding: Union[int, Sequence[int]] = 0) -> torch.Tensor:
    r"""The kernel wrapped onto an ``H x W`` torus: the first row of the circulant ``W``.

    .. math::

        c[\ldots, (a - p_h) \bmod H,\; (b - p_w) \bmod W] \mathrel{+}= \text{weight}[\ldots, a, b]

    Offsets that land on the same cell (a kernel wider than the input) add up, as they
    do in the circular convolution.

    Shape:
        - weight: :math:`(*, k_h, k_w)`
        - Output: :math:`(*, H, W)`, same dtype and device.
    """
    H, W = size
    p_h, p_w = as_tuple(padding, 2, "padding")
    k_h, k_w = weight.shape[-2:]
    rows = (torch.arange(k_h, device=weight.device) - p_h) % H  # (k_h,)
    cols = (torch.arange(k_w, device=weight.device) - p_w) % W  # (k_w,)
    flat = (rows[:, None] * W + cols[None, :]).flatten()  # (k_h * k_w,)
    c = weight.new_zeros(*weight.shape[:-2], H * W)
    c.index_add_(-1, flat, weight.reshape(*weight.shape[:-2], k_h * k_w))
    return c.reshape(*weight.shape[:-2], H, W)


def circulant_eigenvalues(weight: torch.Tensor, size: Sequence[int],
                          padding: Union[int, Sequence[int]] = 0) -> torch.Tensor:
    r"""Eigenvalues of the circulant kernel matrix of a circular cross-correlation.

    For a single kernel ``weight`` of shape ``(k_h, k_w)``, an ``H x W`` input and circular
    padding with ``k = 2p + 1`` (so the output has the input's size), the kernel matrix ``W``
    is block circulant with circulant blocks and

    .. math::

        W f_{m, l} = \lambda[m, l]\, f_{m, l}, \qquad
        f_{m, l}[i, j] = e^{2\pi\mathrm{i}\,(m i / H + l j / W)}, \qquad
        \lambda = \overline{\operatorname{fft2}(c)}

    with ``c = wrap_kernel(weight, size, padding)``. Leading dimensions are batched.

    Shape:
        - weight: :math:`(*, k_h, k_w)`, real
        - Output: :math:`(*, H, W)`, complex
    """
    return torch.fft.fft2(wrap_kernel(weight, size, padding)).conj()


def fft_conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
               padding: Union[int, Sequence[int]] = 0) -> torch.Tensor:
    r"""2-d cross-correlation with circular padding, computed in the Fourier domain.

    Computes what ``nn.Conv2d(..., padding=padding, padding_mode='circular')`` computes
    (stride 1, dilation 1, groups 1):

    .. math::

        \text{out}[n, o, i, j] = \text{bias}[o] + \sum_{c} \sum_{a, b}
            \text{weight}[o, c, a, b]\; \text{input}[n, c, (i + a - p_h) \bmod H,\, (j + b - p_w) \bmod W]

    Every channel pair is a circulant matrix, diagonalized by the 2-d DFT, so each
    frequency is handled on its own: ``out_hat[n, o] = sum_c conj(c_hat[o, c]) * x_hat[n, c]``
    with ``c = wrap_kernel(weight, (H, W), padding)``. The cost is
    :math:`O(N C_\text{in} H W \log(HW) + C_\text{out} C_\text{in} H W \log(HW) + N C_\text{out} C_\text{in} H W)`,
    independent of the kernel size. In float64 it agrees with ``torch.nn.functional.conv2d``
    of the circularly padded input to about ``1e-12``.

    Args:
        input: :math:`(N, C_\text{in}, H, W)` or unbatched :math:`(C_\text{in}, H, W)`, real.
        weight: :math:`(C_\text{out}, C_\text{in}, k_h, k_w)`.
        bias: optional :math:`(C_\text{out})`.
        padding: an int or 2 ints, at most the input size (as torch requires for circular
            padding).

    Shape:
        - Output: :math:`(N, C_\text{out}, H_\text{out}, W_\text{out})` with
          :math:`H_\text{out} = H + 2 p_h - k_h + 1` (likewise :math:`W_\text{out}`). When
          this exceeds ``H``, the output repeats with period ``H``, as the padded input does.
    """
    unbatched = input.dim() == 3
    if unbatched:
        input = input[None]
    if input.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"expected a 4-d input and weight, got {tuple(input.shape)} "
                         f"and {tuple(weight.shape)}")
    N, C_in, H, W = input.shape
    C_out, C_in_w, k_h, k_w = weight.shape
    if C_in_w != C_in:
        raise RuntimeError(f"weight of shape {tuple(weight.shape)} expects {C_in_w} input "
                           f"channels, got input of shape {tuple(input.shape)}")
    p_h, p_w = as_tuple(padding, 2, "padding")
    if p_h > H or p_w > W:
        raise ValueError(f"circular padding {(p_h, p_w)} must be at most the input size {(H, W)}")
    H_out, W_out = H + 2 * p_h - k_h + 1, W + 2 * p_w - k_w + 1
    if H_out < 1 or W_out < 1:
        raise RuntimeError(f"kernel {(k_h, k_w)} is larger than the padded input "
                           f"{(H + 2 * p_h, W + 2 * p_w)}")

    x_hat = torch.fft.rfft2(input)  # (N, C_in, H, W // 2 + 1)
    k_hat = torch.fft.rfft2(wrap_kernel(weight, (H, W), (p_h, p_w)))  # (C_out, C_in, H, W // 2 + 1)
    y_hat = torch.einsum("nchw,ochw->nohw", x_hat, k_hat.conj())  # (N, C_out, H, W // 2 + 1)
    y = torch.fft.irfft2(y_hat, s=(H, W))  # (N, C_out, H, W): one period of the output
    rows = torch.arange(H_out, device=y.device) % H
    cols = torch.arange(W_out, device=y.device) % W
    y = y[:, :, rows[:, None], cols[None, :]]  # (N, C_out, H_out, W_out)
    if bias is not None:
        y = y + bias[:, None, None]
    return y[0] if unbatched else y
