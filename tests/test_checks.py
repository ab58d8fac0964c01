"""Invalid calls raise what torch raises, with a message naming the argument."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlib

x4, w4, b6 = torch.randn(2, 4, 5, 5), torch.randn(6, 2, 3, 3), torch.randn(6)
wt = torch.randn(4, 3, 3, 3)  # transposed weight: (C_in, C_out/groups, *k)

# (name, function name, args, kwargs, a word the message must contain)
INVALID = [
    ("input 5-d", "conv2d", (torch.randn(1, 2, 4, 5, 5), w4), {}, "input"),
    ("input 2-d", "conv2d", (torch.randn(4, 5), w4), {}, "input"),
    ("input 2-d 3d", "conv3d", (torch.randn(4, 5), torch.randn(2, 4, 1, 1, 1)), {}, "input"),
    ("weight 3-d", "conv2d", (x4, torch.randn(6, 2, 3)), {}, "weight"),
    ("channels", "conv2d", (x4, torch.randn(6, 3, 3, 3)), {}, "channels"),
    ("groups vs in", "conv2d", (x4, torch.randn(6, 4, 3, 3)), {"groups": 3}, "groups"),
    ("groups vs out", "conv2d", (x4, torch.randn(5, 2, 3, 3)), {"groups": 2}, "groups"),
    ("groups 0", "conv2d", (x4, w4), {"groups": 0}, "groups"),
    ("groups -1", "conv1d", (torch.randn(2, 4, 5), torch.randn(6, 2, 3)), {"groups": -1}, "groups"),
    ("groups float", "conv2d", (x4, w4), {"groups": 2.0}, "groups"),
    ("stride 0", "conv2d", (x4, w4), {"groups": 2, "stride": 0}, "stride"),
    ("stride -1", "conv2d", (x4, w4), {"groups": 2, "stride": (1, -1)}, "stride"),
    ("stride length", "conv2d", (x4, w4), {"groups": 2, "stride": (1, 1, 1)}, "stride"),
    ("stride float", "conv2d", (x4, w4), {"groups": 2, "stride": 1.5}, "stride"),
    ("dilation 0", "conv2d", (x4, w4), {"groups": 2, "dilation": 0}, "dilation"),
    ("padding -1", "conv2d", (x4, w4), {"groups": 2, "padding": -1}, "padding"),
    ("padding length", "conv3d", (torch.randn(1, 2, 4, 4, 4), torch.randn(2, 2, 1, 1, 1)),
     {"padding": (1, 1)}, "padding"),
    ("kernel too big", "conv2d", (x4, torch.randn(6, 2, 7, 7)), {"groups": 2}, "kernel"),
    ("dilated kernel too big", "conv1d", (torch.randn(1, 1, 5), torch.randn(1, 1, 3)),
     {"dilation": 3}, "kernel"),
    ("same with stride", "conv2d", (x4, w4), {"groups": 2, "padding": "same", "stride": 2}, "padding"),
    ("bad padding string", "conv2d", (x4, w4), {"groups": 2, "padding": "full"}, "padding"),
    ("weight dtype", "conv2d", (x4, w4.double()), {"groups": 2}, "weight"),
    ("bias dtype", "conv2d", (x4, w4, b6.double()), {"groups": 2}, "bias"),
    ("bias int", "conv2d", (x4, w4, b6.long()), {"groups": 2}, "bias"),
    ("bias shape", "conv2d", (x4, w4, torch.randn(5)), {"groups": 2}, "bias"),
    ("bias 2-d", "conv2d", (x4, w4, torch.randn(6, 1)), {"groups": 2}, "bias"),
    ("empty weight", "conv2d", (x4, torch.randn(0, 4, 3, 3)), {}, "weight"),
    # transposed
    ("T input 2-d", "conv_transpose2d", (torch.randn(5, 5), wt), {}, "input"),
    ("T weight 3-d", "conv_transpose2d", (x4, torch.randn(4, 3, 3)), {}, "weight"),
    ("T channels", "conv_transpose2d", (x4, torch.randn(3, 3, 3, 3)), {}, "channels"),
    ("T groups", "conv_transpose2d", (x4, wt), {"groups": 3}, "groups"),
    ("T groups 0", "conv_transpose2d", (x4, wt), {"groups": 0}, "groups"),
    ("T stride 0", "conv_transpose2d", (x4, wt), {"stride": 0}, "stride"),
    ("T padding -1", "conv_transpose2d", (x4, wt), {"padding": -1}, "padding"),
    ("T padding same", "conv_transpose2d", (x4, wt), {"padding": "same"}, "padding"),
    ("T output_padding >= stride", "conv_transpose2d", (x4, wt), {"stride": 2, "output_padding": 2},
     "output_padding"),
    ("T output_padding >= both", "conv_transpose1d", (torch.randn(1, 4, 5), torch.randn(4, 1, 3)),
     {"stride": 2, "dilation": 2, "output_padding": 2}, "output_padding"),
    ("T output_padding -1", "conv_transpose2d", (x4, wt), {"stride": 2, "output_padding": -1},
     "output_padding"),
    ("T output_padding length", "conv_transpose2d", (x4, wt), {"output_padding": (0, 0, 0)},
     "output_padding"),
    ("T bias shape", "conv_transpose2d", (x4, wt, torch.randn(4)), {}, "bias"),
    ("T weight dtype", "conv_transpose2d", (x4, wt.double()), {}, "weight"),
    ("T bias dtype", "conv_transpose2d", (x4, wt, torch.randn(3).double()), {}, "bias"),
    ("T output too small", "conv_transpose2d", (x4, wt), {"padding": 5}, "padding"),
]


def _raised(fn, args, kwargs):
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize("name, fn_name, args, kwargs, word", INVALID, ids=[c[0] for c in INVALID])
def test_same_exception_as_torch(name, fn_name, args, kwargs, word):
    theirs = _raised(getattr(F, fn_name), args, kwargs)
    ours = _raised(getattr(convlib, fn_name), args, kwargs)
    assert type(ours) is type(theirs), f"torch raised {theirs!r}, convlib raised {ours!r}"
    assert word in str(ours), str(ours)


def test_errors_come_before_large_allocations():
    """A huge input with a bad weight fails on the shapes, not by running out of memory."""
    huge = torch.empty(1, 4, 1, 1).expand(1 << 14, 4, 1 << 12, 1 << 12)  # no memory behind it
    with pytest.raises(RuntimeError, match="channels"):
        convlib.conv2d(huge, torch.randn(8, 3, 3, 3))
    with pytest.raises(RuntimeError, match="bias"):
        convlib.conv_transpose2d(huge, torch.randn(4, 8, 3, 3), torch.randn(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
@pytest.mark.parametrize("fn_name", ["conv2d", "conv_transpose2d"])
def test_mismatched_devices_like_torch(fn_name):
    x, w = torch.randn(1, 4, 5, 5), torch.randn(4, 4, 3, 3, device="cuda")
    theirs = _raised(getattr(F, fn_name), (x, w), {})
    ours = _raised(getattr(convlib, fn_name), (x, w), {})
    assert type(ours) is type(theirs) and "device" in str(ours)


def test_mismatched_devices_raise():
    """torch's CPU kernels accept a 'meta' weight silently; we refuse any device mismatch."""
    with pytest.raises(RuntimeError, match="device"):
        convlib.conv2d(torch.randn(1, 4, 5, 5), torch.randn(4, 4, 3, 3, device="meta"))
    with pytest.raises(RuntimeError, match="device"):
        convlib.conv1d(torch.randn(1, 4, 5), torch.randn(4, 4, 3), torch.randn(4, device="meta"))
