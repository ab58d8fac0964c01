r"""The matrix products, by the fastest exact route torch offers on the machine.

Every factorization in convlib ends in matrix products, so their speed is the speed of the
library. On a CPU, ``torch.matmul`` on float32 goes to the BLAS torch was built with (MKL
on x86); oneDNN, the library behind torch's own CPU convolutions, has a matrix product too,
and on some CPUs it is much faster: on an AMD EPYC with AVX-512, MKL takes its AVX2 path
(about 200 GFLOP/s on two cores for a 2048-square product) while oneDNN uses AVX-512
(about 450 GFLOP/s). ``make bench`` measures both routes on the machine it runs on.

torch reaches oneDNN's float32 product only through an internal operator,
``torch.ops.mkldnn._linear_pointwise`` (the one ``torch.compile`` uses for linear layers on
CPU): :math:`X W^\top` for ``X`` of shape ``(..., M, K)`` and ``W`` of shape ``(N, K)``. So
:func:`matmul` uses it only where all of this holds, and is ``torch.matmul`` otherwise:

* the operator exists and gives the right answer on a small check (:func:`onednn_available`),
  and oneDNN is switched on (``torch.backends.mkldnn.enabled``, which also switches it off
  for torch's convolutions);
* the CPU has AVX-512, as torch's dispatch sees it, and is not one on which MKL runs its own
  AVX-512 code (:func:`onednn_preferred`). That is where oneDNN is faster. MKL picks its
  code by the CPU's vendor: on Intel it runs AVX-512 and beat oneDNN (measured on a 2-core
  Intel Xeon with AVX-512, 2 threads, both routes interleaved, forward and
  forward+backward in ms, oneDNN / torch.matmul: ResNet 3x3 18.4 / 12.1 and 61.6 / 44.4,
  its downsampling layer 9.0 / 8.2 and 40.0 / 35.3, ResNet-50's 1x1 8.7 / 5.7 and
  36.6 / 29.4, a TCN's conv1d 12.8 / 9.3 and 41.3 / 33.4, C3D's 3x3x3 11.1 / 8.3 and
  34.0 / 28.5, a transposed conv1d 9.7 / 6.1 and 27.5 / 21.8; ResNet 3x3 at 14x14 and
  DCGAN's transposed layer within noise of each other). Without AVX-512 both libraries
  run AVX2 code, and MKL's was the faster (measured on an AVX2-only AMD EPYC, same
  layers and order: 41.5 / 35.6 and 136 / 105, 20.8 / 19.9 and 67.5 / 64.4, 17.0 / 14.8
  and 65.4 / 54.8, 19.3 / 16.8 and 64.1 / 51.8, 19.7 / 17.0 and 61.3 / 52.4, 17.9 / 13.2
  and 45.2 / 40.7; ResNet 3x3 at 14x14 31.9 / 32.3 and 103 / 107, DCGAN's transposed
  layer 84.2 / 82.2 and 229 / 246). On an AMD EPYC with AVX-512 (the CPU above), oneDNN
  made the same layers up to 2x faster;
* both operands are float32 CPU tensors that autograd does not track (convlib's products
  run inside its own operators, whose derivatives are convlib's own);
* the product is large enough (:data:`MIN_FLOPS`) for its fixed cost not to matter, and
  its reduction long enough (:data:`MIN_REDUCTION`) for arithmetic, not memory, to bound it;
* the right operand, :math:`W^\top`, is dense in memory, as a matrix or as its transpose:
  oneDNN copies any other layout of it, slowly (measured: a row-padded operand made a
  product 2000x slower), so such a product stays with ``torch.matmul``.

Both routes compute the same exact float32 products and sums; only the order of the sums,
hence the rounding, may differ.
"""

from __future__ import annotations

import functools
import itertools
from typing import Optional

import torch
from torch import Tensor

from . import cpu

__all__ = ["MIN_FLOPS", "MIN_REDUCTION", "ONEDNN_CAPABILITIES", "MKL_AVX512_VENDORS",
           "onednn_available", "onednn_preferred",
           "route_is_onednn", "uses_onednn", "matmul"]

#: Products of fewer multiply-adds than this stay with ``torch.matmul``, whose fixed cost
#: per call is lower.
MIN_FLOPS = 1 << 16

#: Products with a shorter reduction than this stay with ``torch.matmul``: they are bound by
#: memory, not arithmetic, and oneDNN copies a thin strided operand slowly (measured: a
#: reduction of 3 over a column-major operand, 30-150 ms against 1 ms).
MIN_REDUCTION = 16


@functools.cache
def onednn_available() -> bool:
    """Whether torch's oneDNN matrix product exists here and multiplies correctly."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        a = torch.arange(6.0).view(2, 3)
        w = torch.arange(12.0).view(4, 3)
        return bool(torch.equal(op(a, w, None, "none", [None], ""), a @ w.T))
    except Exception:  # an operator that does not run here: the BLAS route
        return False


#: The CPU capabilities (:func:`torch.backends.cpu.get_cpu_capability`) on which the
#: products go to oneDNN.
ONEDNN_CAPABILITIES = ("AVX512",)


#: CPU vendors (:func:`convlib.cpu.vendor`) on which MKL, torch's BLAS on x86, runs its AVX-512
#: code: there ``torch.matmul`` was the faster route, and the products stay with it.
MKL_AVX512_VENDORS = ("GenuineIntel",)


@functools.cache
def onednn_preferred() -> bool:
    """Whether the products go to oneDNN here: it is available (:func:`onednn_available`),
    torch's CPU dispatch runs AVX-512 code (:data:`ONEDNN_CAPABILITIES`), and torch's BLAS is
    not MKL on a CPU where MKL runs AVX-512 code too (:data:`MKL_AVX512_VENDORS`)."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    if capability not in ONEDNN_CAPABILITIES:
        return False
    if torch.backends.mkl.is_available() and cpu.vendor() in MKL_AVX512_VENDORS:
        return False
    return onednn_available()


def _linear(a: Tensor, w: Tensor) -> Tensor:
    """``a @ w.mT`` by oneDNN: ``a`` is ``(..., M, K)``, ``w`` is ``(N, K)``."""
    return torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [None], "")


def _dense(m: Tensor) -> bool:
    return m.is_contiguous() or m.mT.is_contiguous()


def _item(t: Tensor) -> Tensor:
    """The first matrix of a batch (every one has the same strides)."""
    return t[(0,) * (t.dim() - 2)] if t.dim() > 2 else t


def route_is_onednn(a: Tensor, b: Tensor) -> bool:
    """Whether products of tensors like ``a`` and ``b`` go to oneDNN, whatever their shapes:
    float32 CPU tensors that autograd does not track, with oneDNN preferred
    (:func:`onednn_preferred`) and on."""
    if a.dtype != torch.float32 or b.dtype != torch.float32:
        return False
    if a.device.type != "cpu" or b.device.type != "cpu":
        return False
    if a.layout != torch.strided or b.layout != torch.strided:
        return False
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return False
    return torch._C._get_mkldnn_enabled() and onednn_preferred()


def uses_onednn(a: Tensor, b: Tensor) -> bool:
    """Whether :func:`matmul` computes ``a @ b`` with oneDNN (see the module's conditions;
    where ``b`` is not dense but ``a`` is, the product is made as :math:`(b^\top a^\top)^\top`)."""
    if a.dim() < 2 or b.dim() < 2 or not route_is_onednn(a, b):
        return False
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if m * k * n < MIN_FLOPS or k < MIN_REDUCTION or b.shape[-2] != k:
        return False
    return _dense(_item(b)) or _dense(_item(a))


def _product(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` by oneDNN for matrices (or ``a`` a batch of them and ``b`` one matrix),
    with whichever operand is dense in the place of oneDNN's weight."""
    if _dense(b):
        return _linear(a, b.mT)
    return _linear(b.mT, a).mT  # (b^T a^T)^T: a (one matrix) is dense


def matmul(a: Tensor, b: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``torch.matmul(a, b, out=out)`` for ``a`` of shape ``(..., M, K)`` and ``b`` of shape
    ``(..., K, N)`` (batch dimensions broadcast), by oneDNN where :func:`uses_onednn` says
    so. A batch of right operands is multiplied one matrix at a time (oneDNN's operator
    takes one)."""
    if not uses_onednn(a, b):
        return torch.matmul(a, b) if out is None else torch.matmul(a, b, out=out)
    if b.dim() == 2 and (a.dim() == 2 or _dense(b)):
        result = _product(a, b)
        return result if out is None else out.copy_(result)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if out is None:
        out = a.new_empty(*batch, a.shape[-2], b.shape[-1])
    a = a.reshape(*[1] * (len(batch) + 2 - a.dim()), *a.shape)
    b = b.reshape(*[1] * (len(batch) + 2 - b.dim()), *b.shape)
    for index in itertools.product(*map(range, batch)):
        ia = tuple(i if s > 1 else 0 for i, s in zip(index, a.shape))
        ib = tuple(i if s > 1 else 0 for i, s in zip(index, b.shape))
        out[index].copy_(_product(a[ia], b[ib]))
    return out
