r"""The kernel matrix: a convolution written as one sparse matrix.

A convolution is linear in its input, so for fixed weights it is a matrix ``W``:

.. math::

    \operatorname{vec}(\operatorname{conv}(x)) = W \operatorname{vec}(x),

with ``vec`` the row-major flattening of ``(C, *spatial)``. Row ``r`` of ``W`` belongs
to one output entry ``(c_out, o)``, column ``c`` to one input entry ``(c_in, i)``, and the
entry is the weight that multiplies ``x[c_in, i]`` in ``y[c_out, o]``:

.. math::

    W[(c_\text{out}, o),\; (g\,C_{\text{in}/g} + c,\; o \cdot s - p + \kappa \cdot \delta)]
        = \text{weight}[c_\text{out}, c, \kappa]

for every kernel offset :math:`\kappa` whose input position lands inside the input
(positions in the zero padding are simply left out), where
:math:`g = \lfloor c_\text{out} / C_{\text{out}/g} \rfloor` is the group of the output
channel. Multiplying by :math:`W^\top` is the transposed convolution.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Sequence, Union

import torch

from . import checks
from .shapes import Padding, conv_output_size

__all__ = ["kernel_matrix", "kernel_matrix_indices", "DEFAULT_MAX_DENSE_BYTES"]

#: Largest dense kernel matrix :func:`kernel_matrix` builds unless told otherwise (1 GiB).
DEFAULT_MAX_DENSE_BYTES = 1 << 30


def kernel_matrix_indices(
    weight_shape: Sequence[int],
    input_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    device: Union[torch.device, str, None] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Sparsity pattern of the kernel matrix, without its values.

    Args:
        weight_shape: ``(C_out, C_in/groups, *k)``.
        input_size: spatial size ``n`` of the input (``d`` ints).
        stride, dilation: ``d`` ints each; padding: ``d`` pairs ``(before, after)``.

    Returns:
        ``(crow, col, widx)``, int64 tensors on ``device``: the CSR row pointers
        (length ``rows + 1``), the column of each stored entry, and the flat index into
        ``weight`` of the value stored there, so that ``values = weight.flatten()[widx]``.
        Entries are sorted by row, then by column.
    """
    c_out, c_in_g, *k = weight_shape
    d = len(k)
    out = conv_output_size(tuple(input_size), k, stride, padding, dilation)
    n_out, n_in, n_k = math.prod(out), math.prod(input_size), math.prod(k)

    # The row-major input index of output position o and kernel offset kappa is linear in
    # the position o * s - p + kappa * dilation, so it splits into a part from o (`base`,
    # the window's corner) and a part from kappa (`offset`): flat = base + offset.
    base = torch.zeros((), dtype=torch.int64, device=device)
    offset = torch.zeros((), dtype=torch.int64, device=device)
    corners, kappas = [], []
    for j in range(d):
        corners.append(torch.arange(out[j], device=device) * stride[j] - padding[j][0])
        kappas.append(torch.arange(k[j], device=device) * dilation[j])
        base = base[..., None] * input_size[j] + corners[j]  # (*out[:j+1])
        offset = offset[..., None] * input_size[j] + kappas[j]  # (*k[:j+1])
    flat = base.reshape(n_out, 1) + offset.reshape(1, n_k)  # (n_out, n_k)

    # Channels: row (c_out, o), column (g * c_in_g + c, i), value weight[c_out, c, kappa].
    co = torch.arange(c_out, device=device).view(c_out, 1, 1, 1)
    ci = torch.arange(c_in_g, device=device).view(1, 1, c_in_g, 1)
    first_in_channel = (co // (c_out // groups)) * c_in_g  # (c_out, 1, 1, 1)
    col = (first_in_channel + ci) * n_in + flat[None, :, None, :]  # (c_out, n_out, c_in_g, n_k)
    widx = (co * c_in_g + ci) * n_k + torch.arange(n_k, device=device)  # (c_out, 1, c_in_g, n_k)
    full = (c_out, n_out, c_in_g, n_k)

    if all(p == (0, 0) for p in padding):
        # Every kernel offset lands inside the input: each row holds the whole kernel.
        per_row = c_in_g * n_k
        crow = torch.arange(0, c_out * n_out * per_row + 1, per_row, device=device)
        return crow, col.reshape(-1), widx.expand(full).reshape(-1)

    # With padding, some offsets land in the zeros: keep those inside in every dimension.
    inside = torch.ones((), dtype=torch.bool, device=device)
    for j in range(d):
        pos = corners[j][:, None] + kappas[j][None, :]  # (out_j, k_j)
        shape = [out[j] if i == j else 1 for i in range(d)] + [k[j] if i == j else 1 for i in range(d)]
        inside = inside & ((pos >= 0) & (pos < input_size[j])).view(shape)
    inside = inside.expand(*out, *k).reshape(n_out, n_k)  # (n_out, n_k)
    mask = inside[None, :, None, :].expand(full)
    per_row = (inside.sum(1) * c_in_g).repeat(c_out)  # (c_out * n_out,)
    crow = torch.zeros(c_out * n_out + 1, dtype=torch.int64, device=device)
    torch.cumsum(per_row, 0, out=crow[1:])
    return crow, col.expand(full)[mask], widx.expand(full)[mask]


def kernel_matrix(
    weight: torch.Tensor,
    input_size: Union[int, Sequence[int]],
    *,
    stride: Union[int, Sequence[int]] = 1,
    padding: Padding = 0,
    dilation: Union[int, Sequence[int]] = 1,
    groups: int = 1,
    sparse: bool = True,
    max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
) -> torch.Tensor:
    r"""The matrix ``W`` of a convolution: ``W @ x.flatten() == conv(x).flatten()``.

    For an input ``x`` of shape :math:`(C_\text{in}, *\mathbf i)` and the output ``y`` of
    shape :math:`(C_\text{out}, *\mathbf o)` that ``torch.nn.functional.conv{d}d``
    computes from it with the same ``weight`` and hyper-parameters,

    .. math::

        \operatorname{vec}(y) = W \operatorname{vec}(x), \qquad
        W[(c_\text{out}, \mathbf u),\, (c_\text{in}, \mathbf u \mathbf s - \mathbf p
            + \mathbf a \boldsymbol\delta)]
            = \text{weight}[c_\text{out}, c_\text{in} \bmod (C_\text{in}/g), \mathbf a]

    for every output position :math:`\mathbf u` and tap :math:`\mathbf a` (products taken
    per axis; zero unless ``c_in`` is in the group of ``c_out``), and ``W.mT`` computes the
    transposed convolution ``conv_transpose{d}d`` with the same weight: the gradient of
    the convolution with respect to its input.

    Args:
        weight: a single-channel kernel of shape :math:`(*k)` with ``d`` dimensions, or
            a weight of shape :math:`(C_\text{out}, C_\text{in}/\text{groups}, *k)` as in
            ``torch.nn.Conv{d}d``.
        input_size: the spatial size of the input, ``d`` ints (an int for 1-d).
        stride, dilation: an int or ``d`` ints. Default: 1.
        padding: an int, ``d`` ints, ``'valid'`` or ``'same'``. Zero padding adds no
            columns: the entries that would multiply padding zeros are dropped.
        groups: number of blocked connections from input to output channels.
        sparse: return a sparse CSR tensor (default) or a dense strided one.
        max_dense_bytes: refuse to build a dense matrix larger than this (1 GiB by
            default); the error says how many bytes it would need. A sparse matrix whose
            construction would not fit in the device's memory is refused the same way.

    .. note::
        ``W`` stores no entries for the zero padding: a weight that would multiply a padding
        zero has no column to live in. The numbers are the same as the convolution's, with
        one exception: a non-finite weight next to the padding. The convolution multiplies
        it by the padding zero (``0 * inf`` is NaN, and torch's convolutions do the same),
        ``W @ x`` never makes that product.

    Returns:
        ``W`` of shape :math:`(C_\text{out} \prod \mathbf o,\; C_\text{in} \prod \mathbf i)`
        on ``weight``'s device with ``weight``'s dtype. Sparse CSR tensors use int32
        indices when they fit.

    Shape:
        :math:`o = \lfloor (i + p_\text{before} + p_\text{after}
        - \delta (k - 1) - 1) / s \rfloor + 1` along each axis.

    Example::

        >>> K = torch.arange(8.).reshape(2, 4)
        >>> W = kernel_matrix(K, (5, 6))          # 12 x 30, sparse CSR
        >>> X = torch.arange(30.).reshape(5, 6)
        >>> (W @ X.flatten()).reshape(4, 3)[0]
        tensor([184., 212., 240.])
    """
    weight, size, geometry = checks.kernel_matrix_arguments(weight, input_size, stride, padding,
                                                            dilation, groups)
    s, pads, dil, groups = geometry.stride, geometry.padding, geometry.dilation, geometry.groups
    c_out, c_in_g, *k = weight.shape
    out = geometry.output_size(size, k)
    shape = (c_out * math.prod(out), c_in_g * groups * math.prod(size))
    if not sparse:
        need = shape[0] * shape[1] * weight.element_size()
        if need > max_dense_bytes:
            raise RuntimeError(
                f"a dense kernel matrix of shape {shape} and dtype {weight.dtype} would need "
                f"{need:,} bytes ({need / 2**30:.2f} GiB), more than max_dense_bytes="
                f"{max_dense_bytes:,}; use sparse=True or pass a larger max_dense_bytes"
            )
    # Building the sparse matrix holds, per stored entry at most, an int64 column, an int64
    # weight index and a value, plus the int64 broadcasts they come from: refuse a build that
    # could not fit in the device's memory before allocating any of it.
    entries = shape[0] * c_in_g * math.prod(k)
    need = entries * (4 * 8 + weight.element_size())
    if need > _device_memory_bytes(weight.device):
        raise RuntimeError(
            f"building the kernel matrix of shape {shape} ({entries:,} stored entries at most) "
            f"would need about {need:,} bytes ({need / 2**30:.1f} GiB), more than the "
            f"{weight.device} memory; use a smaller input_size"
        )

    crow, col, widx = kernel_matrix_indices(weight.shape, size, s, pads, dil, groups, weight.device)
    values = weight.reshape(-1)[widx]
    if not sparse:
        rows = torch.repeat_interleave(torch.arange(shape[0], device=weight.device), crow.diff())
        dense = weight.new_zeros(shape[0] * shape[1])
        return dense.index_put((rows * shape[1] + col,), values).view(shape)
    if max(shape[1], col.numel()) < 2**31:
        crow, col = crow.to(torch.int32), col.to(torch.int32)
    return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


def _device_memory_bytes(device: torch.device) -> int:
    """Total memory of ``device``: the GPU's, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# torch warns, once per process, that sparse CSR support is "beta". Take that warning here,
# at import, so that it never lands in a user's output (or in a notebook's stored outputs).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
    torch.sparse_csr_tensor(torch.zeros(2, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
                            torch.zeros(1), size=(1, 1), check_invariants=False)
