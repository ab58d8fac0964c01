"""No torch convolution operator runs inside convlib: forward, backward, double backward.

convlib's own operators (``convlib::conv`` and its two partners) are opaque to the
dispatcher: a dispatch mode sees one call. The recorder looks inside them: it runs their
Python implementation (``convlib.ops.IMPLEMENTATIONS``) with itself still recording, so
every aten operator they call is seen too."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import convlib
import convlib.nn


class OpRecorder(TorchDispatchMode):
    """Records the name of every aten operator that reaches the dispatcher."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.name())
        inside = convlib.ops.IMPLEMENTATIONS.get(func)
        if inside is not None:  # look inside convlib's operator, still recording
            with self:
                return inside(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))

    def products(self) -> list[str]:
        """The matrix products seen."""
        return [op for op in self.ops if op.split("::")[-1].split(".")[0] in
                ("mm", "bmm", "addmm", "baddbmm", "matmul", "addmm_", "baddbmm_",
                 "_linear_pointwise")]  # oneDNN's matrix product (convlib.gemm)

    def conv_ops(self) -> list[str]:
        """Every torch operator seen whose name says convolution (convlib's own excluded)."""
        return sorted({op for op in self.ops if "conv" in op.lower()
                       and not op.startswith("convlib::")})


def _exercise(fn, *tensors):
    """Forward, backward and double backward of ``fn`` under the recorder."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    with OpRecorder() as rec:
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, torch.randn_like(out), create_graph=True)
        sum(g.square().sum() for g in grads).backward()
    return rec


CASES = {
    "conv1d": (lambda x, w, b: convlib.conv1d(x, w, b, 2, 1, 1, 2), (2, 4, 7), (6, 2, 3), 6),
    "conv2d": (lambda x, w, b: convlib.conv2d(x, w, b, 1, "same", 2, 2), (2, 4, 6, 5), (6, 2, 3, 2), 6),
    "conv3d": (lambda x, w, b: convlib.conv3d(x, w, b, 2, 1), (1, 2, 4, 4, 4), (3, 2, 2, 2, 2), 3),
    "conv_transpose1d": (lambda x, w, b: convlib.conv_transpose1d(x, w, b, 2, 1, 1, 2),
                         (2, 4, 5), (4, 3, 3), 6),
    "conv_transpose2d": (lambda x, w, b: convlib.conv_transpose2d(x, w, b, 2, 0, 1, 1, 2),
                         (2, 4, 4, 3), (4, 3, 2, 3), 3),
    "conv_transpose3d": (lambda x, w, b: convlib.conv_transpose3d(x, w, b, 1, 1, 0, 2),
                         (1, 4, 3, 3, 3), (4, 1, 3, 3, 3), 2),
    # stride 1 with many channels: the paths without an im2col copy
    "conv2d_shifted": (lambda x, w, b: convlib.conv2d(x, w, b, 1, 1), (1, 64, 3, 3), (2, 64, 3, 3), 2),
    "conv_transpose2d_shifted": (lambda x, w, b: convlib.conv_transpose2d(x, w, b, 1, 1),
                                 (1, 64, 3, 3), (64, 2, 3, 3), 2),
}


@pytest.mark.parametrize("name", CASES)
def test_functional_runs_no_conv_op(name, device):
    fn, x_shape, w_shape, c_out = CASES[name]
    x, w, b = (torch.randn(s, dtype=torch.float64, device=device) for s in (x_shape, w_shape, (c_out,)))
    rec = _exercise(fn, x, w, b)
    assert len(rec.ops) > 20  # the recorder saw the work ...
    assert rec.products()  # ... including the matrix products inside ...
    assert {"convlib::conv", "convlib::conv_transpose", "convlib::conv_weight_grad"} <= set(rec.ops)
    assert rec.conv_ops() == []  # ... and no torch convolution


MODULES = [
    lambda dev: convlib.nn.Conv1d(4, 6, 3, padding=1, padding_mode="circular", device=dev),
    lambda dev: convlib.nn.Conv2d(4, 6, 3, stride=2, groups=2, padding_mode="reflect", device=dev),
    lambda dev: convlib.nn.Conv3d(4, 2, 2, padding="same", padding_mode="replicate", device=dev),
    lambda dev: convlib.nn.ConvTranspose1d(4, 6, 3, stride=2, output_padding=1, device=dev),
    lambda dev: convlib.nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, device=dev),
    lambda dev: convlib.nn.ConvTranspose3d(4, 2, 2, dilation=2, device=dev),
]


@pytest.mark.parametrize("make", MODULES, ids=["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
                                               "ConvTranspose2d", "ConvTranspose3d"])
def test_modules_run_no_conv_op(make, device):
    m = make(device)
    d = m.weight.dim() - 2
    x = torch.randn(2, 4, *[5] * d, device=device, requires_grad=True)
    with OpRecorder() as rec:
        out = m(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *m.parameters()], create_graph=True)
        sum(g.square().sum() for g in grads).backward()
    assert len(rec.ops) > 20 and rec.products()
    assert rec.conv_ops() == []


def test_recorder_sees_torch_convolutions(device):
    """The detector works: torch's own conv2d and its backward show up."""
    x = torch.randn(1, 2, 5, 5, device=device, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, device=device, requires_grad=True)
    with OpRecorder() as rec:
        F.conv2d(x, w).sum().backward()
    assert "aten::convolution" in rec.conv_ops()
    assert "aten::convolution_backward" in rec.conv_ops()
