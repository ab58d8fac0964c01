"""convlib.functional against torch.nn.functional: values, gradients, identities."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import convlib
from helpers import CONV_TRANSPOSES, CONVS, assert_matches_torch, transpose_output_padding

f64 = torch.float64


def make(shape, device, dtype=f64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=f64).to(device=device, dtype=dtype)


def conv_case(d, device, groups=2, c_in_g=2, c_out_g=3, k=(3, 2, 2), n=(7, 6, 5), batch=2,
              bias=True, dtype=f64, batched=True):
    """(input, weight, bias) of a convolution; the transposed case swaps the channel roles."""
    x = make(((batch,) if batched else ()) + (groups * c_in_g, *n[:d]), device, dtype, 1)
    w = make((groups * c_out_g, c_in_g, *k[:d]), device, dtype, 2)
    b = make((groups * c_out_g,), device, dtype, 3) if bias else None
    return x, w, b


# ---------------------------------------------------------------- grids over hyper-parameters

CONV_GRID = [
    (s, p, dl, g, bias, batched)
    for s, p, dl, g, bias, batched in itertools.product(
        (1, 2), (0, 1, "same", "valid"), (1, 2), ("1", "2", "depthwise"), (True, False), (True, False))
    if not (p == "same" and s > 1) and (bias or batched)
]


@pytest.mark.parametrize("d, ours, theirs", CONVS, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride, padding, dilation, groups, bias, batched", CONV_GRID)
def test_conv_grid(d, ours, theirs, stride, padding, dilation, groups, bias, batched, device):
    g, c_in_g, c_out_g = {"1": (1, 3, 2), "2": (2, 2, 3), "depthwise": (4, 1, 2)}[groups]
    x, w, b = conv_case(d, device, g, c_in_g, c_out_g, bias=bias, batched=batched)
    assert_matches_torch(ours, theirs, x, w, b, stride, padding, dilation, g)


TRANSPOSE_GRID = [
    (s, p, op, dl, g, bias, batched)
    for s, p, op, dl, g, bias, batched in itertools.product(
        (1, 2, 3), (0, 1), (0, 1, 2), (1, 2), ("1", "2", "depthwise"), (True, False), (True, False))
    if (op < s or op < dl) and (bias or batched) and (g != "2" or s != 3)
]


@pytest.mark.parametrize("d, ours, theirs", CONV_TRANSPOSES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups, bias, batched",
                         TRANSPOSE_GRID)
def test_conv_transpose_grid(d, ours, theirs, stride, padding, output_padding, dilation, groups,
                             bias, batched, device):
    g, c_in_g, c_out_g = {"1": (1, 3, 2), "2": (2, 2, 3), "depthwise": (4, 1, 2)}[groups]
    # transposed: input (N, C_in, *n), weight (C_in, C_out/groups, *k), bias (C_out,)
    y = make(((2,) if batched else ()) + (g * c_in_g, *(4, 3, 3)[:d]), device, seed=1)
    w = make((g * c_in_g, c_out_g, *(3, 2, 2)[:d]), device, seed=2)
    b = make((g * c_out_g,), device, seed=3) if bias else None
    assert_matches_torch(ours, theirs, y, w, b, stride, padding, output_padding, g, dilation)


@pytest.mark.parametrize("d, ours, theirs", CONVS + CONV_TRANSPOSES,
                         ids=[f"conv{d}d" for d in (1, 2, 3)] + [f"conv_transpose{d}d" for d in (1, 2, 3)])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float16, 1e-2),
                                        (torch.bfloat16, 3e-2)])
def test_low_precision_forward(d, ours, theirs, dtype, tol, device):
    x, w, b = conv_case(d, device, dtype=dtype)
    if "transpose" in ours.__name__:
        w = w.transpose(0, 1).contiguous()[: x.shape[1] // 2].repeat(2, 1, *[1] * d)  # (C_in, C_out/g, *k)
        b = make((w.shape[1] * 2,), device, dtype, 3)
    assert_matches_torch(ours, theirs, x, w, b, 2, 1, groups=2, grads=False, rtol=tol, atol=tol)


@pytest.mark.parametrize("d, ours, theirs", CONVS + CONV_TRANSPOSES,
                         ids=[f"conv{d}d" for d in (1, 2, 3)] + [f"conv_transpose{d}d" for d in (1, 2, 3)])
def test_empty_batch(d, ours, theirs, device):
    x = make((0, 4, *[5] * d), device)
    w = make((4, 2, *[2] * d), device)
    assert_matches_torch(ours, theirs, x, w, None, 2, 1, groups=2)


# ---------------------------------------------------------------- gradcheck, gradgradcheck

GRADCHECK = [  # (stride, padding, dilation, groups, output_padding)
    (1, 0, 1, 1, 0), (2, 1, 1, 2, 1), (1, 2, 2, 2, 1), (3, 1, 2, 1, 2),
]


@pytest.mark.parametrize("d, ours, _", CONVS, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride, padding, dilation, groups, _op", GRADCHECK)
def test_conv_gradcheck(d, ours, _, stride, padding, dilation, groups, _op, device):
    x, w, b = conv_case(d, device, groups, 1, 1, k=(2, 2, 2), n=(6, 5, 5)[:d] if d < 3 else (5, 4, 4),
                        batch=1)
    args = [t.requires_grad_() for t in (x, w, b)]
    fn = lambda x, w, b: ours(x, w, b, stride, padding, dilation, groups)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


@pytest.mark.parametrize("d, ours, _", CONV_TRANSPOSES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("stride, padding, dilation, groups, output_padding", GRADCHECK)
def test_conv_transpose_gradcheck(d, ours, _, stride, padding, dilation, groups, output_padding,
                                  device):
    y, w, _ = conv_case(d, device, groups, 1, 1, k=(2, 2, 2), n=(3, 3, 2), batch=1, bias=False)
    b = make((groups,), device, seed=3)
    args = [t.requires_grad_() for t in (y, w, b)]
    fn = lambda y, w, b: ours(y, w, b, stride, padding, output_padding, groups, dilation)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


# ---------------------------------------------------------------- random valid configurations

@st.composite
def configs(draw, transposed: bool):
    """A random valid convolution: d, shapes and hyper-parameters (all small)."""
    d = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    c_in_g, c_out_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.lists(st.integers(1, 3), min_size=d, max_size=d))
    stride = draw(st.lists(st.integers(1, 3), min_size=d, max_size=d))
    dilation = draw(st.lists(st.integers(1, 2), min_size=d, max_size=d))
    max_n = (8, 6, 4)[d - 1]
    n = draw(st.lists(st.integers(1, max_n), min_size=d, max_size=d))
    batch = draw(st.sampled_from([None, 1, 2]))
    bias = draw(st.booleans())
    if transposed:
        padding = [draw(st.integers(0, dl * (kk - 1))) for kk, dl in zip(k, dilation)]
        op = [draw(st.integers(0, max(s, dl) - 1)) for s, dl in zip(stride, dilation)]
        padding = [min(p, ((ni - 1) * s + dl * (kk - 1) + o) // 2)
                   for p, ni, s, dl, kk, o in zip(padding, n, stride, dilation, k, op)]
        return dict(d=d, groups=groups, c_in_g=c_in_g, c_out_g=c_out_g, k=k, stride=stride,
                    dilation=dilation, n=n, batch=batch, bias=bias, padding=padding, output_padding=op)
    padding = draw(st.one_of(
        st.lists(st.integers(0, 2), min_size=d, max_size=d), st.just("valid"),
        st.just("same") if stride == [1] * d else st.just(0)))
    pads = padding if isinstance(padding, list) else [0] * d
    if padding == "same":
        pads = [dl * (kk - 1) for kk, dl in zip(k, dilation)]
    # grow the input until the dilated kernel fits
    n = [max(ni, dl * (kk - 1) + 1 - (p if isinstance(padding, list) else 0)) if padding != "same" else ni
         for ni, kk, dl, p in zip(n, k, dilation, pads)]
    return dict(d=d, groups=groups, c_in_g=c_in_g, c_out_g=c_out_g, k=k, stride=stride,
                dilation=dilation, n=n, batch=batch, bias=bias, padding=padding)


def tensors(c, device, transposed=False):
    g = c["groups"]
    c_in, c_out = g * c["c_in_g"], g * c["c_out_g"]
    lead = () if c["batch"] is None else (c["batch"],)
    x = make(lead + (c_in, *c["n"]), device, seed=1)
    w_shape = (c_in, c["c_out_g"]) if transposed else (c_out, c["c_in_g"])
    w = make(w_shape + tuple(c["k"]), device, seed=2)
    b = make((c_out,), device, seed=3) if c["bias"] else None
    return x, w, b


@given(configs(transposed=False))
def test_conv_random_configs(c):
    _, ours, theirs = CONVS[c["d"] - 1]
    x, w, b = tensors(c, "cpu")
    assert_matches_torch(ours, theirs, x, w, b, c["stride"], c["padding"], c["dilation"], c["groups"])


@given(configs(transposed=True))
def test_conv_transpose_random_configs(c):
    _, ours, theirs = CONV_TRANSPOSES[c["d"] - 1]
    x, w, b = tensors(c, "cpu", transposed=True)
    assert_matches_torch(ours, theirs, x, w, b, c["stride"], c["padding"], c["output_padding"],
                         c["groups"], c["dilation"])


@given(configs(transposed=False), st.floats(-2, 2), st.floats(-2, 2))
def test_linearity(c, alpha, beta):
    """conv(a x1 + b x2) = a conv(x1) + b conv(x2), and the same in the weight."""
    _, conv, _ = CONVS[c["d"] - 1]
    x1, w1, _ = tensors(c, "cpu")
    x2, w2 = torch.randn_like(x1), torch.randn_like(w1)
    hp = (c["stride"], c["padding"], c["dilation"], c["groups"])
    torch.testing.assert_close(conv(alpha * x1 + beta * x2, w1, None, *hp),
                               alpha * conv(x1, w1, None, *hp) + beta * conv(x2, w1, None, *hp))
    torch.testing.assert_close(conv(x1, alpha * w1 + beta * w2, None, *hp),
                               alpha * conv(x1, w1, None, *hp) + beta * conv(x1, w2, None, *hp))


@given(configs(transposed=False))
def test_groups_are_independent_convolutions(c):
    """A grouped convolution equals the concatenation of ``groups`` ordinary ones."""
    _, conv, _ = CONVS[c["d"] - 1]
    x, w, b = tensors(c, "cpu")
    hp = (c["stride"], c["padding"], c["dilation"])
    g, dim = c["groups"], x.dim() - c["d"] - 1
    parts = [conv(xi, wi, None if b is None else bi, *hp)
             for xi, wi, bi in zip(x.chunk(g, dim), w.chunk(g, 0),
                                   (b if b is not None else w[:, 0].flatten()).chunk(g))]
    torch.testing.assert_close(conv(x, w, b, *hp, g), torch.cat(parts, dim))


@given(configs(transposed=True))
def test_conv_transpose_groups_are_independent(c):
    _, conv_t, _ = CONV_TRANSPOSES[c["d"] - 1]
    x, w, b = tensors(c, "cpu", transposed=True)
    hp = (c["stride"], c["padding"], c["output_padding"])
    g, dim = c["groups"], x.dim() - c["d"] - 1
    bs = b.chunk(g) if b is not None else [None] * g
    parts = [conv_t(xi, wi, bi, *hp, 1, c["dilation"])
             for xi, wi, bi in zip(x.chunk(g, dim), w.chunk(g, 0), bs)]
    torch.testing.assert_close(conv_t(x, w, b, *hp, g, c["dilation"]), torch.cat(parts, dim))


# ---------------------------------------------------------------- the adjoint

def _adjoint_pair(c, device):
    d = c["d"]
    x, w, _ = tensors(c, device)
    padding = c["padding"] if isinstance(c["padding"], list) else [0] * d
    if c["padding"] == "same":  # conv_transpose has no 'same': use symmetric cases only
        padding = [0] * d
    hp = (c["stride"], padding, c["dilation"], c["groups"])
    op = transpose_output_padding(x.shape[-d:], c["k"], c["stride"], padding, c["dilation"])
    return x, w, hp, op


@given(configs(transposed=False))
def test_adjoint_identity(c):
    """<conv(x), y> == <x, conv_transpose(y)>: conv_transpose multiplies by W^T."""
    d = c["d"]
    x, w, (s, p, dl, g), op = _adjoint_pair(c, "cpu")
    conv, conv_t = CONVS[d - 1][1], CONV_TRANSPOSES[d - 1][1]
    y_shape = conv(x, w, None, s, p, dl, g).shape
    y = torch.randn(y_shape, dtype=f64)
    lhs = (conv(x, w, None, s, p, dl, g) * y).sum()
    rhs = (x * conv_t(y, w, None, s, p, op, g, dl)).sum()
    torch.testing.assert_close(lhs, rhs)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose_is_vjp_of_conv(d, device):
    """conv_transpose(y) is the vector-Jacobian product of conv at y."""
    conv, conv_t = CONVS[d - 1][1], CONV_TRANSPOSES[d - 1][1]
    x, w, _ = conv_case(d, device, groups=2, n=(8, 7, 6))
    s, p, dl = [2, 3, 1][:d], [1, 0, 2][:d], [1, 2, 2][:d]
    x.requires_grad_()
    out = conv(x, w, None, s, p, dl, 2)
    y = torch.randn_like(out)
    (vjp,) = torch.autograd.grad(out, x, y)
    op = transpose_output_padding(x.shape[2:], w.shape[2:], s, p, dl)
    torch.testing.assert_close(conv_t(y, w, None, s, p, op, 2, dl), vjp)
    # and torch's own VJP agrees
    (vjp_torch,) = torch.autograd.grad(CONVS[d - 1][2](x, w, None, s, p, dl, 2), x, y)
    torch.testing.assert_close(vjp, vjp_torch)


# ---------------------------------------------------------------- the kernel matrix

@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 0, 1, 1), (2, 1, 1, 2), (1, "same", 2, 2), (2, 2, 2, 1)])
def test_kernel_matrix_is_the_convolution(d, stride, padding, dilation, groups, device):
    """W @ vec(x) == vec(conv(x)) and W^T @ vec(y) == vec(conv_transpose(y))."""
    conv, conv_t = CONVS[d - 1][1], CONV_TRANSPOSES[d - 1][1]
    x, w, _ = conv_case(d, device, groups, 2, 2, n=(7, 6, 5), batched=False)
    W = convlib.kernel_matrix(w, tuple(x.shape[1:]), stride=stride, padding=padding,
                              dilation=dilation, groups=groups)
    y = conv(x, w, None, stride, padding, dilation, groups)
    torch.testing.assert_close(W @ x.flatten(), y.flatten())
    if padding == "same":
        return
    v = torch.randn_like(y)
    k = w.shape[2:]
    op = transpose_output_padding(x.shape[1:], k, [stride] * d, [padding] * d, [dilation] * d)
    z = conv_t(v, w, None, stride, padding, op, groups, dilation)
    torch.testing.assert_close(W.mT @ v.flatten(), z.flatten())


def test_result_follows_input_device_and_is_contiguous(device):
    x, w, b = conv_case(2, device)
    y = convlib.conv2d(x, w, b, groups=2)
    assert y.device == x.device and y.is_contiguous()
    z = convlib.conv_transpose2d(y, w, None, 2, groups=2)
    assert z.device == x.device and z.is_contiguous()


def test_non_contiguous_input(device):
    x = make((2, 6, 9, 4), device).transpose(-1, -2)  # (2, 6, 4, 9), not contiguous
    w = make((4, 3, 2, 3), device)
    assert_matches_torch(convlib.conv2d, F.conv2d, x, w, None, 1, 1, 1, 2)
    assert_matches_torch(convlib.conv_transpose2d, F.conv_transpose2d, x, w.transpose(0, 1).repeat(2, 1, 1, 1)[:6],
                         None, 2, 1, 1, 1, 1)


@pytest.mark.parametrize("name", [f"conv{d}d" for d in (1, 2, 3)] + [f"conv_transpose{d}d" for d in (1, 2, 3)])
def test_signature_matches_torch(name):
    """Argument names, order and defaults as in torch's documented signature line."""
    theirs = getattr(F, name).__doc__.strip().splitlines()[0].split(" -> ")[0]
    params = inspect.signature(getattr(convlib, name)).parameters.values()
    ours = f"{name}(" + ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                                  for p in params) + ")"
    assert ours == theirs


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups",
                         [(1, 0, 0, 1, 1), (2, 1, 1, 1, 2), (3, 2, 1, 2, 1), (2, 0, 1, 2, 2)])
def test_conv_transpose_is_a_conv_of_the_dilated_input(d, stride, padding, output_padding,
                                                       dilation, groups, device):
    """The JAX / tinygrad view: insert stride - 1 zeros between inputs, pad by
    dilation * (k - 1) - padding, and convolve with the flipped kernel, channels swapped."""
    conv, conv_t = CONVS[d - 1][1], CONV_TRANSPOSES[d - 1][1]
    y = make((2, 2 * groups, *(4, 3, 3)[:d]), device)
    w = make((2 * groups, 3, *(3, 2, 2)[:d]), device, seed=2)  # (C_in, C_out/g, *k)
    k = w.shape[2:]
    dilated = y.new_zeros(*y.shape[:2], *((m - 1) * stride + 1 for m in y.shape[2:]))
    dilated[(Ellipsis, *(slice(None, None, stride),) * d)] = y
    edge = [dilation * (kk - 1) - padding for kk in k]
    dilated = F.pad(dilated, [v for e in reversed(edge) for v in (e, e + output_padding)])
    flipped = w.reshape(groups, 2, 3, *k).transpose(1, 2).reshape(3 * groups, 2, *k)
    flipped = flipped.flip(list(range(2, 2 + d)))  # (C_out, C_in/g, *k), kernel reversed
    torch.testing.assert_close(
        conv_t(y, w, None, stride, padding, output_padding, groups, dilation),
        conv(dilated, flipped, None, 1, 0, dilation, groups))


@pytest.mark.parametrize("which", ["input", "weight"])
@pytest.mark.parametrize("transposed", [False, True])
def test_channels_last_memory_format_like_torch(which, transposed, device):
    ours, theirs = ((convlib.conv_transpose2d, F.conv_transpose2d) if transposed
                    else (convlib.conv2d, F.conv2d))
    x = make((2, 4, 6, 5), device)
    w = make((4, 3, 3, 2) if transposed else (3, 4, 3, 2), device)
    if which == "input":
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        w = w.contiguous(memory_format=torch.channels_last)
    y = assert_matches_torch(ours, theirs, x, w)
    expected = theirs(x, w)
    for fmt in (torch.contiguous_format, torch.channels_last):
        assert y.is_contiguous(memory_format=fmt) == expected.is_contiguous(memory_format=fmt)
