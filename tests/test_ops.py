"""convlib composes with the PyTorch stack as torch's own convolutions do.

One test per use: ``torch.func`` (vmap over any argument, grad, jacrev, jacfwd, jvp,
hessian, per-sample gradients), ``torch.autograd.forward_ad``, ``torch.compile`` with
``fullgraph=True`` (static and dynamic shapes), ``torch.export`` (run with and without
grad), ``torch.jit.trace``, ``torch.fx.symbolic_trace``, autocast and deterministic mode,
each compared with torch's result. And ``torch.library.opcheck`` on the three operators.
"""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

import convlib
import convlib.nn

f64 = torch.float64

#: (name, d, args after (input, weight, bias)) for the six functions
CALLS = [
    ("conv1d", 1, dict(stride=2, padding=1, dilation=1, groups=2)),
    ("conv2d", 2, dict(stride=1, padding="same", dilation=(1, 2), groups=2)),
    ("conv3d", 3, dict(stride=(2, 1, 1), padding=1)),
    ("conv_transpose1d", 1, dict(stride=2, padding=1, output_padding=1, groups=2)),
    ("conv_transpose2d", 2, dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), dilation=1)),
    ("conv_transpose3d", 3, dict(stride=1, padding=1, groups=2)),
]
IDS = [c[0] for c in CALLS]


def tensors(name, d, kwargs, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    groups = kwargs.get("groups", 1)
    size = (6, 5, 4)[:d]
    x = torch.randn(batch, 2 * groups, *size, generator=g, dtype=f64)
    if "transpose" in name:
        w = torch.randn(2 * groups, 3, *[2] * d, generator=g, dtype=f64)
        b = torch.randn(3 * groups, generator=g, dtype=f64)
    else:
        w = torch.randn(3 * groups, 2, *[2] * d, generator=g, dtype=f64)
        b = torch.randn(3 * groups, generator=g, dtype=f64)
    return x, w, b


def pair(name, kwargs):
    """(ours, torch's) as functions of (x, w, b)."""
    ours, theirs = getattr(convlib, name), getattr(F, name)
    return (lambda x, w, b: ours(x, w, b, **kwargs)), (lambda x, w, b: theirs(x, w, b, **kwargs))


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def loss(f):
    return lambda x, w, b: f(x, w, b).sin().sum()


# ---------------------------------------------------------------- torch.func

@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
@pytest.mark.parametrize("dims", [(0, None, None), (None, 0, None), (0, 0, 0), (1, 0, None),
                                  (None, None, 0)], ids=["input", "weight", "all", "input1", "bias"])
def test_vmap(name, d, kwargs, dims):
    x, w, b = tensors(name, d, kwargs)
    B = 3
    args = [torch.stack([t * (i + 1) for i in range(B)], dim) if dim is not None else t
            for t, dim in zip((x, w, b), dims)]
    ours, theirs = pair(name, kwargs)
    close(vmap(ours, dims)(*args), vmap(theirs, dims)(*args))


@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_grad(name, d, kwargs):
    ours, theirs = pair(name, kwargs)
    args = tensors(name, d, kwargs)
    for a, t in zip(grad(loss(ours), (0, 1, 2))(*args), grad(loss(theirs), (0, 1, 2))(*args)):
        close(a, t)


@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_jacrev_and_jacfwd(name, d, kwargs):
    ours, theirs = pair(name, kwargs)
    x, w, b = tensors(name, d, kwargs, batch=1)
    for jac in (jacrev, jacfwd):
        for a, t in zip(jac(ours, (0, 1, 2))(x, w, b), jac(theirs, (0, 1, 2))(x, w, b)):
            close(a, t)


@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_jvp(name, d, kwargs):
    ours, theirs = pair(name, kwargs)
    primals = tensors(name, d, kwargs)
    tangents = tensors(name, d, kwargs, seed=1)
    for a, t in zip(jvp(ours, primals, tangents), jvp(theirs, primals, tangents)):
        close(a, t)


@pytest.mark.parametrize("name, d, kwargs", [CALLS[1], CALLS[4]], ids=[IDS[1], IDS[4]])
def test_hessian(name, d, kwargs):
    """Second derivatives: forward mode over reverse mode, in every argument."""
    ours, theirs = pair(name, kwargs)
    x, w, b = tensors(name, d, kwargs, batch=1)
    x, w = x[:, :, :3, :3], w[..., :2, :2]
    for argnums in (0, 1):
        close(hessian(loss(ours), argnums)(x, w, b), hessian(loss(theirs), argnums)(x, w, b))


@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_per_sample_gradients(name, d, kwargs):
    """vmap(grad): the weight gradient of each sample of the batch on its own."""
    ours, theirs = pair(name, kwargs)
    x, w, b = tensors(name, d, kwargs, batch=3)

    def per_sample(f):
        return vmap(grad(lambda xi, w, b: loss(f)(xi[None], w, b), (1, 2)), (0, None, None))(x, w, b)

    for a, t in zip(per_sample(ours), per_sample(theirs)):
        close(a, t)


@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_forward_ad(name, d, kwargs):
    ours, theirs = pair(name, kwargs)
    primals = tensors(name, d, kwargs)
    tangents = tensors(name, d, kwargs, seed=1)

    def tangent(f):
        with fwAD.dual_level():
            duals = [fwAD.make_dual(p, t) for p, t in zip(primals, tangents)]
            return fwAD.unpack_dual(f(*duals)).tangent

    close(tangent(ours), tangent(theirs))


# ---------------------------------------------------------------- compile, export, trace

@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("name, d, kwargs", [CALLS[1], CALLS[4]], ids=[IDS[1], IDS[4]])
def test_compile_fullgraph(name, d, kwargs, dynamic):
    """No graph break (fullgraph=True raises on one); values and gradients as torch's."""
    torch._dynamo.reset()
    ours, theirs = pair(name, kwargs)
    compiled = torch.compile(loss(ours), fullgraph=True, dynamic=dynamic, backend="aot_eager")
    for batch in (2, 3):  # a second shape: dynamic shapes reuse the graph, static recompile
        x, w, b = (t.requires_grad_() for t in tensors(name, d, kwargs, batch=batch))
        out = compiled(x, w, b)
        ref = loss(theirs)(x, w, b)
        close(out, ref)
        for a, t in zip(torch.autograd.grad(out, (x, w, b)), torch.autograd.grad(ref, (x, w, b))):
            close(a, t)


def test_compile_inductor_module():
    """The default backend too, on a layer, forward and backward."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    ours = convlib.nn.Conv2d(3, 4, 3, padding=1).double()
    theirs = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 6, 6, dtype=f64, requires_grad=True)
    out = torch.compile(ours, fullgraph=True)(x)
    close(out, theirs(x))
    gx, = torch.autograd.grad(out.square().sum(), x)
    close(gx, torch.autograd.grad(theirs(x).square().sum(), x)[0])


class _Net(torch.nn.Module):
    def __init__(self, mod):
        super().__init__()
        self.conv = mod.Conv2d(3, 4, 3, stride=2, padding=1)
        self.up = mod.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up(self.conv(x).relu())


def _nets():
    torch.manual_seed(0)
    ours, theirs = _Net(convlib.nn).double(), _Net(torch.nn).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def test_export_runs_with_and_without_grad():
    ours, theirs = _nets()
    x = torch.randn(2, 3, 8, 8, dtype=f64)
    program = torch.export.export(ours, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"convlib.conv.default", "convlib.conv_transpose.default"} <= targets
    assert not any("convolution" in t for t in targets)
    with torch.no_grad():
        close(program.module()(x), theirs(x))
    xg = x.clone().requires_grad_()
    out = program.module()(xg)
    gx, = torch.autograd.grad(out.sum(), xg)
    xt = x.clone().requires_grad_()
    close(gx, torch.autograd.grad(theirs(xt).sum(), xt)[0])


def test_jit_trace_of_the_modules():
    ours, theirs = _nets()
    x = torch.randn(2, 3, 8, 8, dtype=f64)
    traced = torch.jit.trace(ours, (x,))
    graph = str(traced.inlined_graph)
    assert "convlib::conv" in graph and "convolution" not in graph.replace("convlib::conv", "")
    close(traced(x), theirs(x))
    xg = x.clone().requires_grad_()
    gx, = torch.autograd.grad(traced(xg).sum(), xg)
    xt = x.clone().requires_grad_()
    close(gx, torch.autograd.grad(theirs(xt).sum(), xt)[0])


def test_fx_symbolic_trace():
    ours, theirs = _nets()
    gm = torch.fx.symbolic_trace(ours)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert convlib.conv2d in targets and convlib.conv_transpose2d in targets
    x = torch.randn(2, 3, 8, 8, dtype=f64)
    close(gm(x), theirs(x))


# ---------------------------------------------------------------- autocast, determinism

@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "mixed"])
def test_autocast_cpu_bfloat16(name, d, kwargs, mixed):
    """torch's policy for convolutions: floating inputs but float64 cast to bfloat16."""
    ours, theirs = pair(name, kwargs)
    x, w, b = (t.float() for t in tensors(name, d, kwargs))
    if mixed:
        w = w.bfloat16()
    with torch.autocast("cpu", torch.bfloat16):
        a, t = ours(x, w, b), theirs(x, w, b)
    assert a.dtype == t.dtype == torch.bfloat16
    torch.testing.assert_close(a, t, rtol=2e-2, atol=5e-2)  # bfloat16: 8 bits
    with torch.autocast("cpu", torch.bfloat16):  # float64 is left alone
        x64, w64, b64 = tensors(name, d, kwargs)
        assert ours(x64, w64, b64).dtype == theirs(x64, w64, b64).dtype == f64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_cuda_float16():
    x, w, b = (t.float().cuda() for t in tensors("conv2d", 2, {}))
    with torch.autocast("cuda", torch.float16):
        a, t = convlib.conv2d(x, w, b), F.conv2d(x, w, b)
    assert a.dtype == t.dtype == torch.float16
    torch.testing.assert_close(a, t, rtol=1e-2, atol=1e-2)


def test_deterministic_algorithms():
    ours, theirs = _nets()
    x = torch.randn(2, 3, 8, 8, dtype=f64, requires_grad=True)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [torch.autograd.grad(ours(x).square().sum(), [x, *ours.parameters()]) for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    for a, t in zip(runs[0], torch.autograd.grad(theirs(x).square().sum(), [x, *theirs.parameters()])):
        close(a, t)


# ---------------------------------------------------------------- the operators themselves

def _op_samples():
    """(operator, args) over a grid: strides, padding, dilation, groups, output padding."""
    g = torch.Generator().manual_seed(0)

    def r(*shape, grad=True):
        return torch.randn(shape, generator=g, dtype=f64).requires_grad_(grad)

    samples = []
    for stride, pad, dil, groups in [([1, 1], [0, 0, 0, 0], [1, 1], 1), ([2, 1], [1, 1, 0, 1], [1, 2], 2),
                                     ([1, 2], [1, 2, 1, 2], [2, 1], 1)]:
        x, w, b = r(2, 2 * groups, 6, 5), r(3 * groups, 2, 2, 3), r(3 * groups)
        samples.append((torch.ops.convlib.conv.default,
                        (x, w, b, stride, pad, dil, groups, [0, 0], False)))
        y, wt = r(2, 2 * groups, 4, 3), r(2 * groups, 3, 2, 3)
        samples.append((torch.ops.convlib.conv_transpose.default,
                        (y, wt, b, stride, pad, dil, groups, [1, 0] if stride[0] > 1 else [0, 0], False)))
        out = convlib.ops.Product(convlib.Geometry(tuple(stride), ((pad[0], pad[1]), (pad[2], pad[3])),
                                                   tuple(dil), groups)).geometry.output_size((6, 5), (2, 3))
        gy = r(2, 3 * groups, *out)
        samples.append((torch.ops.convlib.conv_weight_grad.default,
                        (x, gy, [3 * groups, 2, 2, 3], stride, pad, dil, groups, [0, 0], False, False)))
    return samples


@pytest.mark.parametrize("op, args", _op_samples(),
                         ids=lambda v: str(v).split(".")[1] if hasattr(v, "_schema") else "")
def test_opcheck(op, args):
    """torch.library.opcheck: schema, fake kernel, autograd registration, compile."""
    torch.library.opcheck(op, args)


# ---------------------------------------------------------------- the eager shortcuts

@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_eager_call_without_the_operator_matches_the_operator(name, d, kwargs):
    """Plain eager calls that need no derivative skip the autograd Function and the
    operator's dispatch (convlib.ops); under a profiler they go through the operator. The
    two give bitwise the same values, and the same gradients as torch."""
    from torch.profiler import profile
    x, w, b = tensors(name, d, kwargs)
    ours, theirs = pair(name, kwargs)
    with torch.no_grad():
        direct = ours(x, w, b)
        with profile() as prof:
            through = ours(x, w, b)
    assert torch.equal(direct, through)
    assert any(e.name.startswith("convlib::") for e in prof.events())
    close(direct, theirs(x, w, b))
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    ours(xs, ws, bs).sin().sum().backward()
    xt, wt, bt = (t.clone().requires_grad_() for t in (x, w, b))
    theirs(xt, wt, bt).sin().sum().backward()
    for a, e in [(xs, xt), (ws, wt), (bs, bt)]:
        close(a.grad, e.grad)


@pytest.mark.parametrize("name, d, kwargs", CALLS, ids=IDS)
def test_fake_and_meta_tensors_get_the_operators_shapes(name, d, kwargs):
    """Tensors without data (meta, or fake under FakeTensorMode) go through the operator's
    fake kernel in eager code too: torch's shapes, no data read."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    x, w, b = tensors(name, d, kwargs)
    ours, theirs = pair(name, kwargs)
    meta = [t.to("meta") for t in (x, w, b)]
    got, want = ours(*meta), theirs(*meta)
    assert got.device.type == "meta" and got.shape == want.shape
    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(t) for t in (x, w, b)]
        got = ours(*fake)
    assert got.shape == theirs(x, w, b).shape
