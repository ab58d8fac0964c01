"""Every factorization that convlib.backends can choose agrees with torch, forced on
small cases, and the choice rule keeps the run-on products away from non-finite values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convlib
from helpers import CONV_TRANSPOSES, CONVS, assert_matches_torch
from test_functional import (CONV_GRID, TRANSPOSE_GRID, conv_case, test_conv_grid,
                             test_conv_transpose_grid)


@pytest.mark.parametrize("d, ours, theirs", CONVS, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride, padding, dilation, groups, bias, batched",
                         [c for c in CONV_GRID if c[0] == 1 and c[4]])
def test_conv_shifted_path(d, ours, theirs, stride, padding, dilation, groups, bias, batched,
                           device):
    """Stride 1 with many channels skips the im2col copy: force that path on small cases."""
    with convlib.backends.use("shifted"):
        test_conv_grid(d, ours, theirs, stride, padding, dilation, groups, bias, batched, device)


@pytest.mark.parametrize("d, ours, theirs", CONV_TRANSPOSES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups, bias, batched",
                         [c for c in TRANSPOSE_GRID if c[0] == 1 and c[5]])
def test_conv_transpose_shifted_path(d, ours, theirs, stride, padding, output_padding, dilation,
                                     groups, bias, batched, device):
    """Stride 1 with many channels adds the products straight into the output."""
    with convlib.backends.use("shifted"):
        test_conv_transpose_grid(d, ours, theirs, stride, padding, output_padding, dilation,
                                 groups, bias, batched, device)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("padding, output_padding, dilation",
                         [(1, 0, 1), (3, 0, 1), ((0, 5), 1, 2), ((4, 1), 0, 1)])
def test_shifted_transpose_as_a_convolution(multiplier, padding, output_padding, dilation, device):
    """The shifted transpose is the convolution of :func:`convlib.shifted.as_convolution`:
    depthwise (a reduction of one channel: elementwise products), and with a padding wider
    than the kernel, which crops the input instead of padding it."""
    x, w, b = conv_case(2, device, groups=4, c_in_g=1, c_out_g=multiplier, k=(3, 4), n=(7, 9))
    w_t = w.reshape(4, multiplier, 3, 4)  # (C_in, C_out/g, *k) of the transposed convolution
    with convlib.backends.use("shifted"):
        assert_matches_torch(convlib.conv2d, F.conv2d, x, w, b, 1, 1, dilation, 4)
        assert_matches_torch(convlib.conv_transpose2d, F.conv_transpose2d, x, w_t, b, 1, padding,
                             output_padding, 4, dilation)


def test_conv_shifted_path_by_default(device):
    """A wide image: the rule takes the shifted form, and it gives torch's values."""
    x, w, b = conv_case(2, device, groups=1, c_in_g=4, c_out_g=3, n=(6, 40))
    geometry = convlib.Geometry((1, 1), ((1, 1), (1, 1)), (1, 1))
    kept = convlib.backends.kept_fraction((8, 42), (6, 40))
    assert convlib.backends.choose(geometry, kernel_size=(3, 3), kept=kept) == "shifted"
    assert_matches_torch(convlib.conv2d, F.conv2d, x, w, b, 1, 1)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float16, 1e-2),
                                        (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("groups", [1, 2])
def test_low_precision_shifted_path(dtype, tol, groups, device):
    x, w, b = conv_case(2, device, groups=groups, dtype=dtype)
    with convlib.backends.use("shifted"):
        assert_matches_torch(convlib.conv2d, F.conv2d, x, w, b, 1, "same", 2, groups, grads=False,
                             rtol=tol, atol=tol)


@pytest.mark.parametrize("groups", [1, 2])
def test_shifted_paths_gradcheck(groups, device):
    x, w, b = conv_case(2, device, groups, 1, 1, k=(2, 3), n=(4, 5), batch=1)
    args = [t.requires_grad_() for t in (x, w, b)]
    with convlib.backends.use("shifted"):
        _gradchecks(args, groups)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_shifted_path_in_chunks_with_a_short_last_one(groups, device, monkeypatch):
    """Two samples per batched product, five samples: chunks of 2, 2 and 1."""
    x, w, b = conv_case(2, device, groups=groups, c_in_g=3, c_out_g=2, n=(6, 5), batch=5)
    sample_bytes = x.shape[1] * 8 * 7 * x.element_size()  # one sample, padded by 1
    monkeypatch.setattr(convlib.shifted, "CHUNK_BYTES", 2 * sample_bytes)
    with convlib.backends.use("shifted"):
        assert_matches_torch(convlib.conv2d, F.conv2d, x, w, b, 1, 1, 1, groups)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_weight_grad_shifted_several_samples_per_product(d, groups, device, monkeypatch):
    """The shifted weight gradient lays a few samples' padded grids one after another and
    sums over them inside each product: five samples two at a time (chunks of 2, 2 and 1),
    against torch's weight gradient in float64."""
    x, w, b = conv_case(d, device, groups=groups, c_in_g=3, c_out_g=2, n=(6, 5, 4)[:d], batch=5)
    padded = [s + 2 for s in x.shape[2:]]
    sample_bytes = x.shape[1] * math.prod(padded) * x.element_size()
    monkeypatch.setattr(convlib.shifted, "CHUNK_BYTES", 2 * sample_bytes)
    conv = (convlib.conv1d, convlib.conv2d, convlib.conv3d)[d - 1]
    torch_conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    gy = torch.randn(torch_conv(x, w, None, 1, 1, 1, groups).shape, dtype=x.dtype, device=device)
    with convlib.backends.use("shifted"):
        got = torch.func.vjp(lambda w_: conv(x, w_, None, 1, 1, 1, groups), w)[1](gy)[0]
    want = torch.func.vjp(lambda w_: torch_conv(x, w_, None, 1, 1, 1, groups), w)[1](gy)[0]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("channels, shifted", [(1, False), (8, False), (16, True)])
def test_few_input_channels_take_im2col_whatever_the_taps(channels, shifted, monkeypatch):
    """A 5x5 kernel with much run-on: shifted for its many taps, unless the layer has only a
    few input channels (SHIFTED_FEW_CHANNELS); the values are torch's either way."""
    calls = []
    original = convlib.backends.conv_shifted
    monkeypatch.setattr(convlib.backends, "conv_shifted", lambda *a: calls.append(1) or original(*a))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, 10, 10, generator=gen, dtype=torch.float64)
    w = torch.randn(4, channels, 5, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(convlib.conv2d(x, w), F.conv2d(x, w))
    assert bool(calls) == shifted


def _gradchecks(args, groups):
    for fn in (lambda x, w, b: convlib.conv2d(x, w, b, 1, 1, (1, 2), groups),
               lambda x, w, b: convlib.conv_transpose2d(x, w, b, 1, 1, (1, 0), groups, 2)):
        assert torch.autograd.gradcheck(fn, args)
        assert torch.autograd.gradgradcheck(fn, args)


def test_choose_rule():
    g1 = convlib.Geometry((1, 1), ((1, 1), (1, 1)), (1, 1))
    g2 = convlib.Geometry((2, 2), ((1, 1), (1, 1)), (1, 1))
    g0 = convlib.Geometry((1, 1), ((0, 0), (0, 0)), (1, 1))
    choose, cut = convlib.backends.choose, convlib.backends.SHIFTED_MIN_KEPT
    k3 = dict(kernel_size=(3, 3))
    assert choose(g1, kept=cut, **k3) == "shifted"
    assert choose(g1, kept=cut - 0.01, **k3) == "im2col"  # too much run-on
    taps = convlib.backends.SHIFTED_ALWAYS_TAPS
    g3 = convlib.Geometry((1,) * 3, ((1, 1),) * 3, (1,) * 3)
    assert choose(g3, kept=cut - 0.1, kernel_size=(3, 3, 3)) == ("shifted" if 27 > taps else "im2col")
    few = convlib.backends.SHIFTED_FEW_CHANNELS
    k5 = dict(kernel_size=(5, 5))
    assert choose(g1, kept=cut - 0.1, in_channels=few[2] + 1, **k5) == "shifted"  # many taps
    assert choose(g1, kept=cut - 0.1, in_channels=few[2], **k5) == "im2col"  # too few channels
    assert choose(g1, kept=cut, in_channels=few[2], **k5) == "shifted"  # little run-on
    assert choose(g3, kept=cut - 0.1, in_channels=few[3], kernel_size=(3, 3, 3)) == "im2col"
    assert choose(g3, kept=cut - 0.1, in_channels=few[3] + 1, kernel_size=(3, 3, 3)) == "shifted"
    grouped = convlib.Geometry((1, 1), ((1, 1), (1, 1)), (1, 1), 4)
    assert choose(grouped, kept=cut - 0.1, in_channels=4, **k5) == "shifted"  # groups: thin either way
    assert choose(g1, kept=cut - 0.1, in_channels=1, product="weight_grad", **k5) == "shifted"
    assert choose(g1, kept=cut, product="transpose", **k3) == "shifted"
    assert choose(g1, kept=cut - 0.01, product="transpose", **k3) == "im2col"  # run-on
    assert choose(g1, kept=cut, product="weight_grad", **k3) == "shifted"
    assert choose(g1, kept=0.5, product="weight_grad", **k3) == "shifted"  # whatever the run-on
    assert choose(g0, kernel_size=(1, 1)) == "pointwise"
    assert choose(g0, finite=lambda: False, kernel_size=(1, 1), product="transpose") == "pointwise"
    assert choose(g1, kernel_size=(1, 1)) == "shifted"  # padded: not one product
    assert convlib.backends.kept_fraction((8, 42), (6, 40)) == 40 / 42
    assert choose(g2) == "im2col"  # stride 2: the slices are not contiguous
    assert choose(g1, finite=lambda: False, product="transpose") == "im2col"  # run-on NaN
    with convlib.backends.use("shifted"):
        assert choose(g1) == "shifted" and choose(g2) == "im2col"
    with convlib.backends.use("im2col"):
        assert choose(g1) == "im2col"
    with pytest.raises(ValueError, match="algorithm"):
        with convlib.backends.use("winograd?"):
            pass


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("transposed", [False, True])
def test_shifted_keeps_torchs_nan_pattern(where, transposed):
    """A non-finite value in the input (weight gradient) or the weight (transposed
    convolution) where the shifted rows run on: torch's result there is finite, and
    convlib's too, because the rule does not use the shifted form then."""
    gen = torch.Generator().manual_seed(0)
    c = 16
    x = torch.randn(1, c, 5, 40, generator=gen, dtype=torch.float64)  # wide: shifted, if finite
    w = torch.randn(c, c, 3, 3, generator=gen, dtype=torch.float64)
    (x if where == "input" else w)[0, 0, 0, 0] = float("inf")
    ours, theirs = ((convlib.conv_transpose2d, F.conv_transpose2d) if transposed
                    else (convlib.conv2d, F.conv2d))
    results = []
    for f in (ours, theirs):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = f(xx, ww, padding=1)
        results.append((y, *torch.autograd.grad(y, (xx, ww), torch.ones_like(y))))
    for a, t in zip(*results):
        torch.testing.assert_close(a, t, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.complex64])
@pytest.mark.parametrize("case", ["random", "inf", "-inf", "nan", "inf-inf", "overflowing sum", "empty"])
def test_finite_is_the_entrywise_check(dtype, case):
    """backends.finite (one sum, then the entrywise check only if the sum is not finite)
    says exactly what torch.isfinite(t).all() says, overflowing sums included."""
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(3, 50, generator=gen).to(dtype)
    big = torch.finfo(t.real.dtype if dtype.is_complex else dtype).max
    if case == "empty":
        t = t[:0]
    elif case == "overflowing sum":
        t[:] = big  # every entry finite, their sum is not
    elif case == "inf-inf":
        t[0, 0], t[1, 7] = float("inf"), float("-inf")
    elif case != "random":
        t[2, 13] = float(case)
    assert convlib.backends.finite(t) == bool(torch.isfinite(t).all())
    assert convlib.backends.finite(t) == (case in ("random", "overflowing sum", "empty"))
