"""Differential fuzz: convlib against torch.nn.functional on random calls.

Two properties, each over thousands of derandomized hypothesis examples:

* **values and gradients**: for a random valid call (any of the six functions, every dtype
  torch computes in, contiguous / channels-last / permuted / sliced / expanded tensors,
  batch 0, unbatched input, groups and depthwise, every padding form, arguments as ints,
  lists, tuples, NumPy integers, 0-d tensors and ``torch.Size``, and sometimes NaN and Inf
  in the input, the weight or the output gradient), the result, its dtype, its shape, its
  memory format and the gradients with respect to input, weight and bias equal torch's;
* **errors**: for a random call near the edge of the valid space (one or two arguments
  changed), convlib raises exactly when torch raises, with the same exception class.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convlib

FUNCTIONS = {f"conv{d}d": d for d in (1, 2, 3)} | {f"conv_transpose{d}d": d for d in (1, 2, 3)}

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64,
          torch.complex128]

#: rtol = atol for comparing with torch, relative to the size of the result. Half types:
#: a few units in the last place of float16 / bfloat16 (both round a float32 sum once).
TOLERANCE = {torch.float64: 1e-10, torch.complex128: 1e-10, torch.float32: 2e-5,
             torch.complex64: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}

fuzz = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- drawing a valid call

def _arg(draw, values: list[int], d: int):
    """The same hyper-parameter in one of the forms torch accepts."""
    if len(set(values)) == 1:
        form = draw(st.sampled_from(["int", "tuple", "list", "one", "numpy", "tensor", "size"]))
        v = values[0]
        return {"int": v, "tuple": (v,) * d, "list": [v] * d, "one": (v,), "numpy": np.int64(v),
                "tensor": torch.tensor(v), "size": torch.Size([v] * d)}[form]
    form = draw(st.sampled_from(["tuple", "list", "numpy", "size"]))
    return {"tuple": tuple(values), "list": list(values), "size": torch.Size(values),
            "numpy": tuple(np.int32(v) for v in values)}[form]


@st.composite
def valid_calls(draw):
    name = draw(st.sampled_from(sorted(FUNCTIONS)))
    d, transposed = FUNCTIONS[name], "transpose" in name
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups > 1
    c_in_g = 1 if depthwise else draw(st.integers(1, 3))
    c_out_g = draw(st.integers(1, 3))
    k = [draw(st.integers(1, 3)) for _ in range(d)]
    stride = [draw(st.integers(1, 3)) for _ in range(d)]
    if draw(st.booleans()):
        stride = [stride[0]] * d
    dilation = [draw(st.sampled_from([1, 1, 2])) for _ in range(d)]
    span = [dl * (kk - 1) + 1 for kk, dl in zip(k, dilation)]
    n = [draw(st.integers(1, (7, 6, 4)[d - 1])) for _ in range(d)]
    batch = draw(st.sampled_from([None, 0, 1, 2, 3]))
    kwargs = {"stride": _arg(draw, stride, d), "dilation": _arg(draw, dilation, d),
              "groups": draw(st.sampled_from([groups, np.int64(groups), torch.tensor(groups)]))}
    if transposed:
        padding = [draw(st.integers(0, dl * (kk - 1))) for kk, dl in zip(k, dilation)]
        op = [draw(st.integers(0, max(s, dl) - 1)) for s, dl in zip(stride, dilation)]
        padding = [min(p, ((ni - 1) * s + dl * (kk - 1) + o) // 2)
                   for p, ni, s, dl, kk, o in zip(padding, n, stride, dilation, k, op)]
        kwargs |= {"padding": _arg(draw, padding, d), "output_padding": _arg(draw, op, d)}
        x_shape, w_shape = (groups * c_in_g, *n), (groups * c_in_g, c_out_g, *k)
        c_out = groups * c_out_g
    else:
        padding = draw(st.one_of(st.lists(st.integers(0, 2), min_size=d, max_size=d),
                                 st.sampled_from(["valid", "same"] if stride == [1] * d else ["valid"])))
        pads = [0] * d if padding in ("valid", "same") else padding
        n = n if padding == "same" else [max(ni, sp - 2 * p) for ni, sp, p in zip(n, span, pads)]
        kwargs["padding"] = padding if isinstance(padding, str) else _arg(draw, padding, d)
        x_shape, w_shape = (groups * c_in_g, *n), (groups * c_out_g * (1 if not depthwise else 1), c_in_g, *k)
        c_out = w_shape[0]
    lead = () if batch is None else (batch,)
    return dict(name=name, d=d, x_shape=lead + x_shape, w_shape=w_shape, stride_values=stride,
                bias=draw(st.booleans()), c_out=c_out, kwargs=kwargs,
                dtype=draw(st.sampled_from(DTYPES)),
                x_layout=draw(st.sampled_from(["contiguous", "channels_last", "permuted", "sliced",
                                               "expanded"])),
                w_layout=draw(st.sampled_from(["contiguous", "channels_last", "permuted", "sliced"])),
                special=draw(st.sampled_from([None, None, "x", "weight", "grad"])),
                seed=draw(st.integers(0, 2**16)))


def _laid_out(t: torch.Tensor, layout: str):
    """``(base, view)``: a tensor holding ``t``'s values in another memory layout is
    ``view(base)``; gradients are taken with respect to ``base``."""
    if layout == "channels_last" and t.dim() in (4, 5):
        cl = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return t.contiguous(memory_format=cl), lambda b: b
    if layout == "permuted" and t.dim() >= 3:
        return t.transpose(-1, -2).contiguous().transpose(-1, -2), lambda b: b
    if layout == "sliced":
        wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        wide[..., ::2] = t
        return wide, lambda b: b[..., ::2]
    if layout == "expanded" and t.dim() >= 2 and t.shape[0] > 0:
        shape = t.shape
        return t[:1].clone(), lambda b: b.expand(shape)
    return t, lambda b: b


def _tensor(shape, dtype, gen):
    t = torch.randn(shape, generator=gen, dtype=torch.float64)
    if dtype.is_complex:
        t = torch.complex(t, torch.randn(shape, generator=gen, dtype=torch.float64))
    return t.to(dtype)


def _inject(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A copy with one NaN or +-Inf at a random position (nothing if t is empty)."""
    if t.numel() == 0:
        return t
    t = t.clone()
    i = int(torch.randint(t.numel(), (1,), generator=gen))
    value = [float("nan"), float("inf"), -float("inf")][int(torch.randint(3, (1,), generator=gen))]
    t.view(-1)[i] = value
    return t


def _fmt(t: torch.Tensor) -> tuple[bool, ...]:
    if t.dim() not in (4, 5):
        return (t.is_contiguous(),)
    cl = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.is_contiguous(), t.is_contiguous(memory_format=cl)


def _run(fn, x, w, b, kwargs, gy_seed, special):
    """``fn`` on views of fresh leaves, and the gradients with respect to the leaves."""
    leaves = [None if t is None else t[0].detach().clone().requires_grad_() for t in (x, w, b)]
    views = [None if t is None else t[1](leaf) for t, leaf in zip((x, w, b), leaves)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        y = fn(*views, **kwargs)
    gen = torch.Generator().manual_seed(gy_seed)
    gy = _tensor(y.shape, y.dtype, gen)
    if special == "grad":
        gy = _inject(gy, gen)
    gy = gy.to(memory_format=torch.preserve_format) if y.is_contiguous() else \
        torch.empty_like(y).copy_(gy)  # the cotangent in the output's layout
    grads = torch.autograd.grad(y, [t for t in leaves if t is not None], gy)
    return y, list(grads) + [None] * (3 - len(grads))


#: torch's other kernel for the same call: float32 runs on oneDNN (or its depthwise kernel),
#: float64 on its reference kernels, and the half types on either, by the CPU (bfloat16 goes
#: to oneDNN where the CPU has AVX-512 BF16), so their other kernel is float64's
OTHER_DTYPE = {torch.float32: torch.float64, torch.float64: torch.float32,
               torch.float16: torch.float64, torch.bfloat16: torch.float64,
               torch.complex64: torch.complex128, torch.complex128: torch.complex64}


def _close(ours, theirs, dtype, what, other=None):
    """``ours`` equals torch's result, NaN and Inf in the same places.

    With ``other`` (torch's result for the same call computed by another of its kernels, in
    another dtype), the places where torch's two kernels disagree on whether an entry is
    NaN or Inf are torch's own choice of kernel (one multiplies a padding zero by a
    non-finite weight, the other skips the product): there ours must agree with one of
    them, and everywhere else with torch exactly."""
    if other is not None and theirs.numel():
        other = other.to(theirs.dtype)
        split = (theirs.isnan() != other.isnan()) | (theirs.isinf() != other.isinf())
        if split.any():
            like_one = ((ours.isnan() == theirs.isnan()) & (ours.isinf() == theirs.isinf())) | \
                       ((ours.isnan() == other.isnan()) & (ours.isinf() == other.isinf()))
            assert like_one[split].all(), f"{what}: NaN/Inf where neither torch kernel has it"
            ours, theirs = ours[~split], theirs[~split]
    scale = max(1.0, float(theirs.detach().abs().nan_to_num(0, 0, 0).max())) if theirs.numel() else 1.0
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol * scale, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


@fuzz
@given(valid_calls())
def test_values_gradients_and_layouts_match_torch(c):
    gen = torch.Generator().manual_seed(c["seed"])
    dtype = c["dtype"]
    x, w = _tensor(c["x_shape"], dtype, gen), _tensor(c["w_shape"], dtype, gen)
    b = _tensor((c["c_out"],), dtype, gen) if c["bias"] else None
    if c["special"] == "x":
        x = _inject(x, gen)
    elif c["special"] == "weight":
        w = _inject(w, gen)
    x, w = _laid_out(x, c["x_layout"]), _laid_out(w, c["w_layout"])
    b = None if b is None else (b, lambda t: t)
    name = c["name"]
    y_theirs, g_theirs = _run(getattr(F, name), x, w, b, c["kwargs"], c["seed"], c["special"])
    y_ours, g_ours = _run(getattr(convlib, name), x, w, b, c["kwargs"], c["seed"], c["special"])
    y_other, g_other = None, [None] * 3
    if c["special"]:  # non-finite values: also torch's other kernel (see _close)
        to = OTHER_DTYPE[dtype]
        cast = [None if t is None else (t[0].to(to), t[1]) for t in (x, w, b)]
        y_other, g_other = _run(getattr(F, name), *cast, c["kwargs"], c["seed"], c["special"])
    assert (y_ours.dtype, y_ours.shape) == (y_theirs.dtype, y_theirs.shape)
    _close(y_ours, y_theirs, dtype, "output", y_other)
    if y_theirs.numel():  # an empty tensor has no layout to speak of
        assert _fmt(y_ours) == _fmt(y_theirs), "output memory format"
    for what, a, t, o in zip(("grad input", "grad weight", "grad bias"), g_ours, g_theirs, g_other):
        assert (a is None) == (t is None), what
        if t is not None:
            assert (a.dtype, a.shape) == (t.dtype, t.shape), what
            _close(a, t, dtype, what, o)
            if t.numel() and c["x_shape"][0] != 0:  # empty: no layout to speak of
                assert _fmt(a) == _fmt(t), f"{what} memory format"


@pytest.mark.parametrize("algorithm", ["shifted", "pointwise", "subpixel", "winograd", "polyphase"])
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(c=valid_calls())
def test_forced_algorithms_match_torch(algorithm, c):
    """Each factorization forced (where it applies; elsewhere im2col): values, gradients,
    layouts and NaN/Inf as torch's."""
    with convlib.backends.use(algorithm):
        test_values_gradients_and_layouts_match_torch.hypothesis.inner_test(c)


# ---------------------------------------------------------------- errors, in both directions

MUTATIONS = [
    "kernel zero", "spatial zero", "spatial zero batch zero", "channels zero", "channels wrong",
    "out channels zero", "groups wrong", "groups zero", "groups float", "groups bool",
    "stride zero", "stride negative", "stride float", "stride bool", "stride length",
    "stride 1-d tensor", "stride float tensor", "stride numpy", "dilation zero",
    "padding negative", "padding same", "padding valid", "padding string", "padding big",
    "padding length", "output_padding big", "output_padding negative", "output_padding equal",
    "input dims", "input 1 more dim", "weight dims", "bias shape", "bias 2-d", "bias dtype",
    "weight dtype", "both int", "both bool", "kernel too big",
]
#: applied last, at most one: the tensors themselves are replaced
TYPE_MUTATIONS = ["input not tensor", "weight not tensor", "bias not tensor", "input list"]


@st.composite
def edge_calls(draw):
    c = draw(valid_calls())
    c["dtype"] = draw(st.sampled_from([torch.float64, torch.float32]))
    c["mutations"] = draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=2))
    if draw(st.integers(0, 5)) == 0:
        c["mutations"].append(draw(st.sampled_from(TYPE_MUTATIONS)))
    return c


def _mutate(c, m, x, w, b, kw):
    d, transposed = c["d"], "transpose" in c["name"]
    if m == "kernel zero":
        w = w.new_zeros(*w.shape[:2], 0, *w.shape[3:])
    elif m == "spatial zero":
        x = x.new_zeros(*x.shape[:-d], 0, *x.shape[-d + 1:])
    elif m == "spatial zero batch zero":
        x = x.new_zeros(0, *x.shape[1:-d], 0, *x.shape[-d + 1:]) if x.dim() == d + 2 else x
    elif m == "channels zero":
        x = x.new_zeros(*x.shape[:-d - 1], 0, *x.shape[-d:])
        w = w.new_zeros(w.shape[0], 0, *w.shape[2:]) if not transposed else w.new_zeros(0, *w.shape[1:])
    elif m == "channels wrong":
        x = torch.cat([x, x.narrow(-d - 1, 0, 1)], -d - 1)
    elif m == "out channels zero":
        w = w.new_zeros(0, *w.shape[1:]) if not transposed else w.new_zeros(w.shape[0], 0, *w.shape[2:])
    elif m == "groups wrong":
        kw["groups"] = int(kw["groups"]) + 1
    elif m == "groups zero":
        kw["groups"] = 0
    elif m == "groups float":
        kw["groups"] = float(kw["groups"])
    elif m == "groups bool":
        kw["groups"] = True
    elif m in ("stride zero", "stride negative", "stride float", "stride bool", "stride length",
               "stride 1-d tensor", "stride float tensor", "stride numpy"):
        kw["stride"] = {"stride zero": 0, "stride negative": (-1,) * d, "stride float": 1.0,
                        "stride bool": True, "stride length": (1,) * (d + 1),
                        "stride 1-d tensor": torch.ones(d, dtype=torch.int64),
                        "stride float tensor": torch.tensor(1.0),
                        "stride numpy": np.array([1] * d)}[m]
    elif m == "dilation zero":
        kw["dilation"] = 0
    elif m == "padding negative":
        kw["padding"] = -1
    elif m in ("padding same", "padding valid", "padding string"):
        kw["padding"] = {"padding same": "same", "padding valid": "valid", "padding string": "full"}[m]
    elif m == "padding big":
        kw["padding"] = 4
    elif m == "padding length":
        kw["padding"] = (0,) * (d + 1)
    elif m.startswith("output_padding"):
        if transposed:
            s = max(c["stride_values"])
            kw["output_padding"] = {"output_padding big": s + 2, "output_padding negative": -1,
                                    "output_padding equal": s}[m]
    elif m == "input dims":
        x = x.reshape(-1)
    elif m == "input 1 more dim":
        x = x[None, None] if x.dim() == d + 1 else x[None]
    elif m == "weight dims":
        w = w.sum(0)
    elif m == "bias shape":
        b = torch.zeros(w.shape[0] + 1, dtype=x.dtype)
    elif m == "bias 2-d":
        b = torch.zeros(c["c_out"], 1, dtype=x.dtype)
    elif m == "bias dtype":
        b = torch.zeros(c["c_out"], dtype=torch.float16)
    elif m == "weight dtype":
        w = w.to(torch.complex64)
    elif m == "both int":
        x, w, b = x.long(), w.long(), None if b is None else b.long()
    elif m == "both bool":
        x, w, b = x > 0, w > 0, None
    elif m == "kernel too big":
        w = w.new_zeros(*w.shape[:2], *[9] * d)
    elif m == "input not tensor":
        x = 3.0
    elif m == "weight not tensor":
        w = w.tolist()
    elif m == "bias not tensor":
        b = [0.0] * c["c_out"]
    elif m == "input list":
        x = x.tolist()
    return x, w, b, kw


def _outcome(fn, x, w, b, kw):
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            return fn(x, w, b, **kw), None
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return None, e


@settings(max_examples=2000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(edge_calls())
def test_refuses_exactly_what_torch_refuses(c):
    gen = torch.Generator().manual_seed(c["seed"])
    x = _tensor(c["x_shape"], c["dtype"], gen)
    w = _tensor(c["w_shape"], c["dtype"], gen)
    b = _tensor((c["c_out"],), c["dtype"], gen) if c["bias"] else None
    kw = dict(c["kwargs"])
    for m in c["mutations"]:
        x, w, b, kw = _mutate(c, m, x, w, b, kw)
    y_theirs, e_theirs = _outcome(getattr(F, c["name"]), x, w, b, kw)
    y_ours, e_ours = _outcome(getattr(convlib, c["name"]), x, w, b, kw)
    assert type(e_ours) is type(e_theirs), \
        f"{c['name']} {c['mutations']}: torch {e_theirs!r}, convlib {e_ours!r}"
    if e_theirs is None:
        assert (y_ours.dtype, y_ours.shape) == (y_theirs.dtype, y_theirs.shape)
        if y_theirs.dtype.is_floating_point:
            torch.testing.assert_close(y_ours, y_theirs, equal_nan=True)
        else:
            assert torch.equal(y_ours, y_theirs)


def test_the_error_fuzz_can_fail():
    """The comparison above is not vacuous: torch refuses some of these calls."""
    x = torch.randn(1, 2, 5, 5)
    for kw in ({"stride": 1.0}, {"groups": 0}, {"padding": "full"}):
        _, e = _outcome(F.conv2d, x, torch.randn(3, 2, 3, 3), None, kw)
        assert e is not None
        _, e2 = _outcome(convlib.conv2d, x, torch.randn(3, 2, 3, 3), None, kw)
        assert type(e2) is type(e)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("algorithm", ["im2col", "shifted"])
def test_half_precision_error_at_most_torchs(dtype, name, algorithm):
    """Half types accumulate in float32: the error against a float64 reference is at most
    1.5 times torch's own (measured on the same inputs, large sums)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 96, 10, 10, generator=gen, dtype=torch.float64)
    w = torch.rand(96, 96, 3, 3, generator=gen, dtype=torch.float64)
    ref = getattr(F, name)(x, w, padding=1)
    theirs = getattr(F, name)(x.to(dtype), w.to(dtype), padding=1).double()
    with convlib.backends.use(algorithm):
        ours = getattr(convlib, name)(x.to(dtype), w.to(dtype), padding=1).double()
    err_theirs = (theirs - ref).abs().max().item()
    err_ours = (ours - ref).abs().max().item()
    assert math.isfinite(err_ours) and err_ours <= 1.5 * err_theirs, (err_ours, err_theirs)


def test_float16_sum_does_not_overflow():
    """A float16 result whose partial products would overflow in float16 is exact:
    1 x 3 x 3 ones times 80 channels of 80 is 57600 in torch and here."""
    x = torch.full((1, 80, 3, 3), 80.0, dtype=torch.float16)
    w = torch.full((1, 80, 3, 3), 1.0, dtype=torch.float16)
    for algorithm in ("im2col", "shifted"):
        with convlib.backends.use(algorithm):
            assert convlib.conv2d(x, w).item() == F.conv2d(x, w).item() == 57600
