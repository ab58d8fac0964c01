"""The rules of convlib.torchlike against torch, on the cases they were read from."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.torchlike import output_memory_format, torch_uses_onednn


def _geometry(d=2, **kw):
    return convlib.Geometry(kw.get("stride", (1,) * d), ((0, 0),) * d, kw.get("dilation", (1,) * d),
                            kw.get("groups", 1), (0,) * d)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("which", ["input", "weight"])
def test_output_memory_format_is_torchs(dtype, d, which):
    fmt = torch.channels_last if d == 2 else torch.channels_last_3d
    x, w = torch.randn(2, 4, *[5] * d, dtype=dtype), torch.randn(3, 4, *[3] * d, dtype=dtype)
    x, w = (x.contiguous(memory_format=fmt), w) if which == "input" else (x, w.contiguous(memory_format=fmt))
    y = getattr(F, f"conv{d}d")(x, w)
    predicted = output_memory_format(x, w, _geometry(d))
    assert y.is_contiguous(memory_format=predicted)
    assert (predicted == fmt) == (y.is_contiguous(memory_format=fmt) and not y.is_contiguous())


def test_torch_kernels_disagree_on_nan():
    """Why the differential test accepts either of two NaN patterns where torch's kernels
    differ: torch itself gives different ones in float32 (oneDNN) and float64 (its
    reference kernel) for the same transposed convolution's weight gradient."""
    y = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    y[0, 0, 0, 0] = float("inf")
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    nans = []
    for dtype in (torch.float32, torch.float64):
        yy, ww = y.to(dtype).requires_grad_(), w.to(dtype).requires_grad_()
        z = F.conv_transpose2d(yy, ww, padding=1)
        gw, = torch.autograd.grad(z, ww, torch.ones_like(z))
        nans.append(gw.isnan())
        # and convlib follows each kernel
        yy2, ww2 = y.to(dtype).requires_grad_(), w.to(dtype).requires_grad_()
        z2 = convlib.conv_transpose2d(yy2, ww2, padding=1)
        gw2, = torch.autograd.grad(z2, ww2, torch.ones_like(z2))
        assert torch.equal(gw2.isnan(), gw.isnan())
    assert torch_uses_onednn(y.float(), w.float(), _geometry())
    assert not torch.equal(*nans)
