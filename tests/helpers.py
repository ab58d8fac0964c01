"""The one reference check: a convlib function against its torch twin, values and gradients."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

import convlib

#: (d, convlib function, torch function) for the three convolutions ...
CONVS = [(d, getattr(convlib, f"conv{d}d"), getattr(F, f"conv{d}d")) for d in (1, 2, 3)]
#: ... and the three transposed convolutions
CONV_TRANSPOSES = [(d, getattr(convlib, f"conv_transpose{d}d"), getattr(F, f"conv_transpose{d}d"))
                   for d in (1, 2, 3)]


def assert_matches_torch(ours, theirs, input, weight, bias=None, *args, grads=True,
                         rtol=None, atol=None, **kwargs):
    """Call ``ours`` and ``theirs`` on copies of the same tensors and compare.

    Compares the outputs, and with ``grads`` the gradients with respect to ``input``,
    ``weight`` and ``bias`` for one random output cotangent (use float64 for those).
    Returns our output.
    """
    tensors = [t for t in (input, weight, bias) if t is not None]

    def run(fn):
        leaves = [t.detach().clone().requires_grad_(grads) for t in tensors]
        b = leaves[2] if bias is not None else None
        with warnings.catch_warnings():  # torch warns that even 'same' kernels copy the input
            warnings.filterwarnings("ignore", "Using padding='same'")
            return fn(leaves[0], leaves[1], b, *args, **kwargs), leaves

    y_ours, leaves_ours = run(ours)
    y_theirs, leaves_theirs = run(theirs)
    assert y_ours.dtype == y_theirs.dtype and y_ours.device == y_theirs.device
    torch.testing.assert_close(y_ours, y_theirs, rtol=rtol, atol=atol)
    if grads:
        gy = torch.randn_like(y_theirs)
        g_ours = torch.autograd.grad(y_ours, leaves_ours, gy)
        g_theirs = torch.autograd.grad(y_theirs, leaves_theirs, gy)
        for name, a, b in zip(("input", "weight", "bias"), g_ours, g_theirs):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"grad {name}: {m}")
    return y_ours


def transpose_output_padding(n, k, stride, padding, dilation):
    """The output_padding that makes conv_transpose return a convolution's input size ``n``:
    the positions of the padded input that the last window does not reach."""
    return [(ni + 2 * p - dl * (ki - 1) - 1) % s for ni, ki, s, p, dl in zip(n, k, stride, padding, dilation)]
