r"""The three products with the kernel matrix as PyTorch operators, and their calculus.

Every convolution in convlib is one of three bilinear maps:

* ``conv(x, w)      = W(w) x``            (:func:`conv`),
* ``transpose(y, w) = W(w)^T y``          (:func:`conv_transpose`),
* ``weight_grad(x, G) = G (S x)^T``       (:func:`weight_grad`), the weight gradient.

Each one's derivatives are the other two, so the three close under differentiation:
backward, double backward, forward mode and every ``torch.func`` transform reuse them.
For complex tensors the backward conjugates, as PyTorch's convention asks
(:math:`\bar W^\top G` for the input, :math:`G (S \bar x)^\top` for the weight).

Each map is registered twice, for the two ways PyTorch runs code:

* a **custom operator** (``torch.ops.convlib.conv`` etc., :func:`torch.library.custom_op`),
  with a fake kernel (shapes without data), a backward (``register_autograd``), a batching
  rule (``register_vmap``). :func:`torch.compile`, :func:`torch.export.export` and
  :func:`torch.jit.trace` see one opaque operator and never trace into it;
* an :class:`torch.autograd.Function` around that operator, for eager code. It adds what
  a custom operator cannot have: a forward-mode derivative (``jvp``), which
  ``torch.func.jvp``, ``jacfwd``, ``hessian`` and ``torch.autograd.forward_ad`` need.
  (Dynamo refuses Functions with a custom ``jvp``, hence the operator under compile.)

:func:`conv`, :func:`conv_transpose` and :func:`weight_grad` below pick the right one. An
eager call that can need no derivative (nothing autograd tracks, no forward-mode level, no
``torch.func`` transform) skips the Function, and one on plain tensors with no dispatch mode
or profiler watching skips the operator's dispatch too: the same Python kernel runs either
way, about 0.1 ms sooner per layer skipped.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
from torch import Tensor

from . import backends, torchlike
from .shapes import Geometry

__all__ = ["conv", "conv_transpose", "weight_grad", "Product", "IMPLEMENTATIONS"]


@dataclass(frozen=True)
class Product:
    """The non-tensor arguments of one product: its geometry, whether the result is
    channels-last, and for the weight gradient the weight's shape and whether it makes no
    products with the padding (:func:`convlib.backends.conv_weight_grad`)."""

    geometry: Geometry
    channels_last: bool = False
    weight_shape: tuple[int, ...] = ()
    skip_padding: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        if not self.channels_last:
            return torch.contiguous_format
        return torch.channels_last_3d if self.geometry.d == 3 else torch.channels_last

    def flat(self) -> tuple:
        return (*self.geometry.flat(), self.channels_last)

    @classmethod
    def from_flat(cls, stride, padding, dilation, groups, output_padding, channels_last,
                  weight_shape=(), skip_padding=False) -> Product:
        return cls(Geometry.from_flat(stride, padding, dilation, groups, output_padding),
                   channels_last, tuple(weight_shape), skip_padding)


def _gradient_layout(a: Tensor, b: Tensor, p: Product) -> Product:
    """The product that computes a gradient: torch's gradients are channels-last when the
    forward was, except for complex tensors (:func:`convlib.torchlike.output_memory_format`)."""
    cl = p.channels_last and not a.dtype.is_complex
    return Product(p.geometry, cl, p.weight_shape, p.skip_padding)


# --------------------------------------------------------------------------------------
# The operators: opaque to compile and export, with shapes from the fake kernels
# --------------------------------------------------------------------------------------


def _eager(fn: Callable) -> Callable:
    """Run a kernel as plain eager code: under autocast the inputs are already cast, and the
    float32 products of half-precision inputs must stay float32."""
    def run(*args):
        if not torch.is_autocast_enabled(args[0].device.type):
            return fn(*args)
        with torch.autocast(args[0].device.type, enabled=False):
            return fn(*args)
    return run


# The kernels: the Python code behind each operator, on a Product.
def _conv_kernel(x: Tensor, weight: Tensor, bias: Optional[Tensor], p: Product) -> Tensor:
    return _eager(backends.conv)(x, weight, bias, p.geometry, p.memory_format)


def _conv_transpose_kernel(y: Tensor, weight: Tensor, bias: Optional[Tensor], p: Product) -> Tensor:
    return _eager(backends.conv_transpose)(y, weight, bias, p.geometry, p.memory_format)


def _weight_grad_kernel(x: Tensor, gy: Tensor, _, p: Product) -> Tensor:
    return _eager(backends.conv_weight_grad)(x, gy, p.weight_shape, p.geometry, p.memory_format,
                                             p.skip_padding)


@torch.library.custom_op("convlib::conv", mutates_args=())
def _conv_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
             padding: List[int], dilation: List[int], groups: int, output_padding: List[int],
             channels_last: bool) -> Tensor:
    p = Product.from_flat(stride, padding, dilation, groups, output_padding, channels_last)
    return _conv_kernel(x, weight, bias, p)


@torch.library.custom_op("convlib::conv_transpose", mutates_args=())
def _conv_transpose_op(y: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
                       padding: List[int], dilation: List[int], groups: int,
                       output_padding: List[int], channels_last: bool) -> Tensor:
    p = Product.from_flat(stride, padding, dilation, groups, output_padding, channels_last)
    return _conv_transpose_kernel(y, weight, bias, p)


@torch.library.custom_op("convlib::conv_weight_grad", mutates_args=())
def _weight_grad_op(x: Tensor, grad_output: Tensor, weight_size: List[int], stride: List[int],
                    padding: List[int], dilation: List[int], groups: int,
                    output_padding: List[int], channels_last: bool, skip_padding: bool) -> Tensor:
    p = Product.from_flat(stride, padding, dilation, groups, output_padding, channels_last,
                          weight_size, skip_padding)
    return _weight_grad_kernel(x, grad_output, None, p)


#: The Python function behind each operator, for tools that want to look inside one
#: (``tests/test_no_conv_ops.py`` records the aten operators they run).
IMPLEMENTATIONS = {
    torch.ops.convlib.conv.default: _conv_op._init_fn,
    torch.ops.convlib.conv_transpose.default: _conv_transpose_op._init_fn,
    torch.ops.convlib.conv_weight_grad.default: _weight_grad_op._init_fn,
}


def _empty(like: Tensor, shape, channels_last: bool) -> Tensor:
    fmt = torch.contiguous_format
    if channels_last:
        fmt = torch.channels_last_3d if len(shape) == 5 else torch.channels_last
    return torchlike.laid_out(torch.empty(shape, dtype=like.dtype, device=like.device), fmt)


@_conv_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, output_padding, channels_last):
    p = Product.from_flat(stride, padding, dilation, groups, output_padding, channels_last)
    out = p.geometry.output_size(x.shape[2:], weight.shape[2:])
    c_out = weight.shape[0] if x.shape[1] != 0 else 0  # as torch: no input channels, no output
    return _empty(x, (x.shape[0], c_out, *out), channels_last and c_out != 0)


@_conv_transpose_op.register_fake
def _(y, weight, bias, stride, padding, dilation, groups, output_padding, channels_last):
    p = Product.from_flat(stride, padding, dilation, groups, output_padding, channels_last)
    out = p.geometry.transpose_output_size(y.shape[2:], weight.shape[2:])
    return _empty(y, (y.shape[0], weight.shape[1] * groups, *out), channels_last)


@_weight_grad_op.register_fake
def _(x, grad_output, weight_size, stride, padding, dilation, groups, output_padding,
      channels_last, skip_padding):
    return _empty(grad_output, tuple(weight_size), channels_last)


# --------------------------------------------------------------------------------------
# Calling a product: the operator under compile/export/trace, the Function in eager code
# --------------------------------------------------------------------------------------


# An eager call skips what it does not need, as torch's own operators do: each layer costs
# about 0.1 ms of Python a call, as much as a whole small convolution (measured: a 4-channel
# 6x6 conv2d, 0.77 ms through all of them, against 0.02 ms for F.conv2d).
#
# * the autograd Function, where no derivative can be asked for: no tensor that autograd
#   tracks, no forward-mode level open, no torch.func transform running;
# * the operator's dispatch, where nothing would look at the operator: plain tensors on a
#   real device (not fake or meta tensors, which need its fake kernel, nor other
#   subclasses), no dispatch or torch-function mode (FakeTensorMode, FlopCounterMode...),
#   no profiler (which should see one ``convlib::`` event a product).


def _traced() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


_PLAIN = (Tensor, torch.nn.Parameter)


def _no_derivatives(*tensors: Optional[Tensor]) -> bool:
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return False
    # private flags, read with the safe answer (take the Function) should a release drop them
    return (getattr(torch.autograd.forward_ad, "_current_level", 0) < 0
            and not torch._C._are_functorch_transforms_active())


def _direct(*tensors: Optional[Tensor]) -> bool:
    if (torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled()
            or getattr(torch.autograd.profiler, "_is_profiler_enabled", True)):
        return False
    return all(t is None or (type(t) in _PLAIN and t.device.type != "meta") for t in tensors)


def _calling(kernel: Callable, call_op: Callable) -> Callable:
    """Call a product ``(a, b, c, p)``: its kernel directly where :func:`_direct` allows,
    else its operator."""
    def call(a, b, c, p: Product):
        return kernel(a, b, c, p) if _direct(a, b, c) else call_op(a, b, c, p)
    return call


_call_conv = _calling(_conv_kernel, lambda x, w, b, p: torch.ops.convlib.conv(x, w, b, *p.flat()))
_call_conv_transpose = _calling(
    _conv_transpose_kernel, lambda y, w, b, p: torch.ops.convlib.conv_transpose(y, w, b, *p.flat()))
_call_weight_grad = _calling(
    _weight_grad_kernel,
    lambda x, gy, _, p: torch.ops.convlib.conv_weight_grad(x, gy, list(p.weight_shape), *p.flat(),
                                                           p.skip_padding))


def conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], p: Product) -> Tensor:
    """``W x + b``: ``(N, C_in, *n) -> (N, C_out, *out)``."""
    if _traced():
        return torch.ops.convlib.conv(x, weight, bias, *p.flat())
    if _no_derivatives(x, weight, bias):
        return _call_conv(x, weight, bias, p)
    return _ConvFunction.apply(x, weight, bias, p)


def conv_transpose(y: Tensor, weight: Tensor, bias: Optional[Tensor], p: Product) -> Tensor:
    """``W^T y + b``: ``(N, C_in, *n) -> (N, C_out, *out)``; ``p.geometry`` is that of ``W``
    plus the output padding."""
    if _traced():
        return torch.ops.convlib.conv_transpose(y, weight, bias, *p.flat())
    if _no_derivatives(y, weight, bias):
        return _call_conv_transpose(y, weight, bias, p)
    return _ConvTransposeFunction.apply(y, weight, bias, p)


def weight_grad(x: Tensor, gy: Tensor, p: Product) -> Tensor:
    """``G (S x)^T`` summed over the batch, of shape ``p.weight_shape``."""
    if _traced():
        return torch.ops.convlib.conv_weight_grad(x, gy, list(p.weight_shape), *p.flat(),
                                                  p.skip_padding)
    if _no_derivatives(x, gy):
        return _call_weight_grad(x, gy, None, p)
    return _WeightGradFunction.apply(x, gy, None, p)


# --------------------------------------------------------------------------------------
# Derivatives: each product's are the other two
# --------------------------------------------------------------------------------------


def _sum_positions(g: Tensor) -> Tensor:
    return g.sum([0, *range(2, g.dim())])


def _first(t: Tensor, like: Tensor, p: Product) -> Tensor:
    """The first windows of ``t``, as many as ``like`` has (an ``output_padding`` not
    smaller than the stride makes a transposed convolution add windows), laid out anew."""
    if t.shape[2:] == like.shape[2:]:
        return t
    t = t[(Ellipsis, *(slice(0, n) for n in like.shape[2:]))]
    return torchlike.laid_out(t, p.memory_format)


def _conv_vjp(x, w, gy, p: Product, needs):
    """Gradients of ``<G, W x + b>``: ``(W^H G, G (S x^*)^T, sum G)``."""
    q = _gradient_layout(x, w, p)
    gx = gw = gb = None
    if x.shape[1] == 0:  # no input channels: torch returns no output channels either
        return (torch.zeros_like(x) if needs[0] else None,
                torch.zeros_like(w) if needs[1] else None, None)
    if needs[0]:  # the transposed convolution, back to x's size (the floor's remainder)
        back = Product(q.geometry.transposed_to(x.shape[2:], w.shape[2:]), q.channels_last)
        gx = conv_transpose(gy, w.conj(), None, back)
    if needs[1]:
        gw = weight_grad(x.conj(), gy, Product(q.geometry, q.channels_last, tuple(w.shape)))
    if needs[2]:
        gb = _sum_positions(gy)
    return gx, gw, gb


def _conv_transpose_vjp(y, w, gz, p: Product, needs):
    """Gradients of ``<G, W^T y + b>``: ``(W^* G, y^* (S G)^T, sum G)``."""
    q = _gradient_layout(y, w, p)
    gy = gw = gb = None
    if needs[0]:  # a convolution; output_padding >= stride adds windows: keep y's
        gy = _first(conv(gz, w.conj(), None, Product(q.geometry, q.channels_last)), y, q)
    if needs[1]:  # the weight gradient with the roles of input and output swapped
        # as torch's kernel does (see backends.conv_weight_grad): oneDNN's, which it uses for
        # this gradient in 1-d and 2-d, without groups or dilation
        g = q.geometry
        skip = (y.dim() <= 4 and g.groups == 1 and all(dl == 1 for dl in g.dilation)
                and torchlike.torch_uses_onednn(y, w, g))
        gw = weight_grad(gz, y.conj(), Product(q.geometry, q.channels_last, tuple(w.shape), skip))
    if needs[2]:
        gb = _sum_positions(gz)
    return gy, gw, gb


def _weight_grad_vjp(x, gy, g_gw, p: Product, needs):
    """Gradients of ``<H, G (S x)^T>``: ``(W(H)^T G^*`` cropped to x, ``W(H) x^*)``."""
    gx = ggy = None
    geometry = p.geometry
    if needs[0]:
        back = geometry.transposed_to(x.shape[2:], p.weight_shape[2:], gy.shape[2:])
        gx = conv_transpose(gy.conj(), g_gw, None, Product(back, p.channels_last))
    if needs[1]:
        ggy = _first(conv(x.conj(), g_gw, None, Product(geometry, p.channels_last)), gy, p)
    return gx, ggy, None


def _bilinear_jvp(product: Callable, shape: Callable):
    """Forward mode of a bilinear ``product(a, b, bias, p)``:
    ``d product = product(da, b) + product(a, db) + d bias``."""
    def jvp(a, b, da, db, dbias, p: Product):
        parts = ([product(da, b, None, p)] if da is not None else []) + \
                ([product(a, db, None, p)] if db is not None else [])
        out = sum(parts[1:], parts[0]) if parts else None
        if dbias is not None:
            dbias = dbias.view(-1, *[1] * (a.dim() - 2))
            out = out + dbias if out is not None else dbias.expand(shape(a, b, p)).clone()
        return out
    return jvp


_conv_jvp = _bilinear_jvp(
    conv, lambda x, w, p: (x.shape[0], w.shape[0], *p.geometry.output_size(x.shape[2:], w.shape[2:])))
_conv_transpose_jvp = _bilinear_jvp(
    conv_transpose, lambda y, w, p: (y.shape[0], w.shape[1] * p.geometry.groups,
                                     *p.geometry.transpose_output_size(y.shape[2:], w.shape[2:])))
_weight_grad_jvp = _bilinear_jvp(lambda x, gy, _, p: weight_grad(x, gy, p), None)


# --------------------------------------------------------------------------------------
# Batching rules (vmap): fold the vmapped dimension into the batch, or into the groups
# --------------------------------------------------------------------------------------


def _fold_into_groups(B: int, in_dims, a: Tensor, b: Tensor, c: Optional[Tensor]):
    """Every sample of the vmapped dimension as its own group: ``(B, N, C, ...)`` inputs
    become ``(N, B*C, ...)``, ``(B, O, I, *k)`` weights ``(B*O, I, *k)``."""
    def batched(t, dim):
        return t.movedim(dim, 0) if dim is not None else t.expand(B, *t.shape)
    a = batched(a, in_dims[0]).movedim(0, 1).flatten(1, 2)  # (N, B*C, *n)
    b = batched(b, in_dims[1])
    c = None if c is None else batched(c, in_dims[2]).flatten()
    return a, b, c


def _batch_rule(product: Callable):
    """vmap of ``conv`` or ``conv_transpose`` (``product(data, weight, bias, p)``)."""
    def rule(B, in_dims, a, w, bias, p: Product):
        if in_dims[1] is None and (bias is None or in_dims[2] is None):  # only the data
            a = a.movedim(in_dims[0], 0)
            out = product(a.flatten(0, 1), w, bias, p)  # (B*N, C_out, *out)
            return out.unflatten(0, (B, -1)), 0
        a, w, bias = _fold_into_groups(B, in_dims, a, w, bias)
        w = w.flatten(0, 1)  # (B*C_in, C_out/g, *k) or (B*C_out, C_in/g, *k)
        g = p.geometry
        p = Product(Geometry(g.stride, g.padding, g.dilation, B * g.groups, g.output_padding),
                    p.channels_last)
        out = product(a, w, bias, p)  # (N, B*C_out, *out)
        return out.unflatten(1, (B, -1)), 1
    return rule


def _weight_grad_batch_rule(B, in_dims, x, gy, _, p: Product):
    x, gy, _ = _fold_into_groups(B, in_dims, x, gy, None)
    gy = gy.movedim(0, 1).flatten(1, 2)  # (N, B*C_out, *out)
    g = p.geometry
    shape = (B * p.weight_shape[0], *p.weight_shape[1:])
    q = Product(Geometry(g.stride, g.padding, g.dilation, B * g.groups, g.output_padding),
                p.channels_last, shape, p.skip_padding)
    return weight_grad(x, gy, q).unflatten(0, (B, -1)), 0


# --------------------------------------------------------------------------------------
# Registration: the same derivatives and batching rules for the operator and the Function
# --------------------------------------------------------------------------------------


def _register(name: str, op, call_op: Callable, vjp: Callable, jvp: Callable, batch: Callable,
              parse: Callable):
    """Give operator ``op`` its backward and batching rule, and return the eager Function.

    ``parse(args)`` turns the operator's arguments into ``(a, b, c, Product)``; the
    Function takes those four directly.
    """
    def setup_context(ctx, inputs, output):
        a, b, c, p = parse(inputs)
        ctx.product = p
        ctx.save_for_backward(a, b)

    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grads = vjp(a, b, grad, ctx.product, ctx.needs_input_grad[:3])
        return (*grads, *[None] * (len(ctx.needs_input_grad) - 3))

    def vmap_rule(info, in_dims, *args):
        a, b, c, p = parse(args)
        return batch(info.batch_size, in_dims[:3], a, b, c, p)

    op.register_autograd(backward, setup_context=setup_context)
    op.register_vmap(vmap_rule)

    def function_setup_context(ctx, inputs, output):
        a, b, c, p = inputs
        ctx.product = p
        ctx.save_for_backward(a, b)
        ctx.save_for_forward(a, b)

    def function_jvp(ctx, da, db, dc, _):
        a, b = ctx.saved_tensors
        return jvp(a, b, da, db, dc, ctx.product)

    def function_vmap(info, in_dims, a, b, c, p):
        return batch(info.batch_size, in_dims[:3], a, b, c, p)

    def forward(a, b, c, p):
        return call_op(a, b, c, p)

    # Function.apply binds its arguments to forward's signature on every call; inspecting
    # forward each time costs more than binding, so the signature is given.
    forward.__signature__ = inspect.signature(forward)
    return type(name, (torch.autograd.Function,), {
        "__doc__": f"Eager autograd for ``{op._qualname}``: backward, forward mode, vmap.",
        "forward": staticmethod(forward),
        "setup_context": staticmethod(function_setup_context),
        "backward": staticmethod(backward),
        "jvp": staticmethod(function_jvp),
        "vmap": staticmethod(function_vmap),
    })


def _parse_product(args):
    a, b, c, *flat = args
    return a, b, c, Product.from_flat(*flat)


def _parse_weight_grad(args):
    x, gy, weight_size, *flat, skip_padding = args
    return x, gy, None, Product.from_flat(*flat, weight_shape=weight_size, skip_padding=skip_padding)


_ConvFunction = _register(
    "_ConvFunction", _conv_op, _call_conv,
    _conv_vjp, _conv_jvp, _batch_rule(conv), _parse_product)
_ConvTransposeFunction = _register(
    "_ConvTransposeFunction", _conv_transpose_op, _call_conv_transpose,
    _conv_transpose_vjp, _conv_transpose_jvp, _batch_rule(conv_transpose), _parse_product)
_WeightGradFunction = _register(
    "_WeightGradFunction", _weight_grad_op, _call_weight_grad,
    _weight_grad_vjp, _weight_grad_jvp, _weight_grad_batch_rule, _parse_weight_grad)

