"""Benchmarks: convlib's convolutions on a zoo of real layers, against PyTorch and the hardware.

::

    python -m convlib.bench                   # everything, on CPU (and CUDA when present): minutes
    python -m convlib.bench --quick           # small sizes, for development (under a minute)
    python -m convlib.bench --only zoo --layers resnet_3x3 dcgan_up --out results.json

Two groups of measurements, on every device:

``zoo``
    Layers from well-known networks (:data:`ZOO`), each computed forward and forward +
    backward (the input and weight gradients) by ``convlib`` with its own choice of
    algorithm, by every algorithm of ``convlib.backends.ALGORITHMS`` that applies to the
    layer (forced with :func:`convlib.backends.use`), by torch as shipped, and by torch
    with its vendor kernels switched off (``torch.backends.mkldnn.flags(enabled=False)`` on
    CPU, so PyTorch falls back to its own im2col + GEMM; cuDNN off on CUDA). Every form is
    checked against torch first, warmed up, then timed *interleaved* (:func:`interleaved`):
    one call of each form, then the next round, so that a slow moment of a shared machine
    hits all forms alike. A ratio is the median over the rounds of (form / baseline).
    Next to the times, the *floor*: the larger of the layer's FLOPs (:func:`layer_flops`)
    divided by the best GEMM rate measured in this run, and its bytes (:func:`layer_bytes`)
    divided by the measured memory bandwidth. Peak memory (:func:`peak_memory`) is measured
    in a fresh process (CPU) or with the CUDA allocator's counters.

``matrix``
    The kernel matrix itself: building it (:func:`convlib.kernel_matrix` against
    :func:`convlib.kernel_matrix_loop`), applying the sparse ``W`` to an image, the bytes
    CSR stores, and every form's time against the image size.

Nothing here asserts a time; :func:`summary` prints the aggregate ratios. The results are
written as JSON (``--out``) for the book's chapters "Fast convolutions are factorizations
of W" and "How fast is the matrix?", in this layout (:data:`SCHEMA`)::

    schema        "convlib-bench/2"
    mode          "full" or "quick" (quick: small sizes, the numbers only show that it runs)
    date, command, repeats, warmup, min_time_s, elapsed_s (the whole run's wall time)
    machine       platform, python, torch, convlib, cpu_model, cpu_vendor
                  (convlib.cpu.vendor), cpu_capability (torch's
                  dispatch level, e.g. "AVX2"), isa_flags (the SIMD flags of /proc/cpuinfo),
                  cpu_count, torch_threads, cuda_device (or null), algorithms
                  (convlib.backends.ALGORITHMS), products_by ("oneDNN" or
                  "torch.matmul": the route of convlib's float32 CPU products,
                  convlib.gemm.onednn_preferred)
    devices       {"cpu": DEVICE, "cuda": DEVICE (when present; float32 without TF32)}

    DEVICE        name (the CPU model or the GPU's name)
                  gemm: {"n": size of the square float32 product,
                         "routes": {route: FLOP/s}, "best_flops_per_s": the largest,
                         "measurements": [best at the start, best at the end of the run]}
                         (each route's rate: the better of the two measurements)
                  bandwidth_bytes_per_s: a large copy, bytes read + written per second (the
                      better of bandwidth_measurements, at the start and the end of the run)
                  baselines: {"torch": description, "torch_no_mkldnn" (CPU) or
                              "torch_no_cudnn" (CUDA): description}
                  layers: [LAYER, ...]
                  matrix: {"build", "apply", "scaling", "elapsed_s"}: the kernel-matrix cases

    LAYER         name, network, what, op ("conv2d", "conv_transpose1d", ...), input (shape),
                  weight (shape), output (shape), kwargs (stride, padding, ...)
                  flops {"forward", "forward_backward"}: 2 x the multiply-adds of the direct
                      sum (every tap, padding included); backward = 2 x forward
                  bytes {"forward", "forward_backward"}: float32 bytes each pass must read
                      and write at least once
                  algorithms {name: {"applies": bool, "ran": [convlib functions that ran],
                      "refused": the exception, where forcing it on the layer raised one}}
                  gemm_at_shape {"m", "k", "n", "groups": one group's product of the im2col
                      form (:func:`layer_product`), "routes": {route: FLOP/s},
                      "best_flops_per_s"}: what a product of exactly that shape can do
                  forward, forward_backward: PASS
                  peak_memory_bytes {"forward", "forward_backward": {form: bytes}, "how"}
                  elapsed_s: the wall time the layer took, its peak memory included

    PASS          floor_s, floor_bound ("compute" or "memory"), compute_floor_s,
                  memory_floor_s, floor_at_shape_s (the floor with the rate of
                  gemm_at_shape in place of the square product's)
                  forms {form: {"time_s": median, "times_s": [one per round], "gflops",
                         "inner": calls per measurement, "max_abs_error": against torch,
                         relative to the largest entry, "agrees": bool}}
                      forms: "convlib" (its own choice), "torch", the second baseline, and
                      "convlib:<algorithm>" for every forced algorithm that applies
                  ratios {form: {baseline: median over the rounds of form / baseline}}
                  ran: the convlib functions its own choice runs; chosen: the algorithm of
                      ALGORITHMS that runs the same functions, else the algorithms whose
                      functions ran joined by "+" (e.g. "im2col+shifted"), or null
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F

import convlib
import convlib.cpu
import convlib.gemm
from convlib.shapes import as_tuple

__all__ = ["SCHEMA", "Layer", "ZOO", "time_call", "interleaved", "layer_flops", "layer_bytes",
           "peak_memory", "run", "machine_line", "summary", "main"]

#: The version of the JSON layout (the module's docstring describes it).
SCHEMA = "convlib-bench/2"

# ----------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inner(fn: Callable[[], object], device: torch.device, min_time: float) -> int:
    """How many calls make one measurement of at least ``min_time`` seconds."""
    if not min_time:
        return 1
    start = time.perf_counter()
    fn()
    _sync(device)
    once = time.perf_counter() - start
    return max(1, math.ceil(min_time / max(once, 1e-9)))


def _measure(fn: Callable[[], object], device: torch.device, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / inner


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 7,
              warmup: int = 2, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` calls.

    With ``min_time``, a fast call is repeated in a loop until one measurement lasts at
    least that long, and the per-call time is reported.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    inner = _inner(fn, device, min_time)
    return statistics.median(_measure(fn, device, inner) for _ in range(repeats))


def interleaved(forms: dict, device: torch.device, repeats: int = 7, warmup: int = 3,
                min_time: float = 0.0) -> dict:
    """Time several forms of the same computation against each other, interleaved.

    Every form is first called ``warmup`` times (oneDNN and cuDNN build their kernels on
    the first calls of a new shape), round-robin. Then ``repeats`` rounds, each measuring
    every form once (the order reversed every other round), so that a slow moment of the
    machine hits all forms alike. Returns ``{form: {"times_s": [...], "time_s": median,
    "inner": calls per measurement}}``.
    """
    for _ in range(warmup):
        for fn in forms.values():
            fn()
    _sync(device)
    inner = {name: _inner(fn, device, min_time) for name, fn in forms.items()}
    times = {name: [] for name in forms}
    names = list(forms)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(_measure(forms[name], device, inner[name]))
    return {name: {"time_s": statistics.median(t), "times_s": t, "inner": inner[name]}
            for name, t in times.items()}


def _paired_ratio(a: list, b: list) -> float:
    """Median over the rounds of a[i] / b[i]."""
    return statistics.median(x / y for x, y in zip(a, b))


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class Layer:
    """One convolution layer of a real network, at the size it has there.

    ``input`` is the input's shape ``(N, C_in, *spatial)``, ``weight`` the weight's, as
    ``torch.nn.functional`` takes them (for a transposed convolution ``(C_in, C_out / g,
    *k)``). ``quick`` is a smaller input and weight of the same kind, for ``--quick``, and
    optionally its own keyword arguments (a depthwise layer's ``groups``).
    """

    name: str
    network: str
    what: str
    op: str
    input: tuple
    weight: tuple
    kwargs: dict = field(default_factory=dict)
    quick: tuple = ()

    def shapes(self, quick: bool) -> tuple[tuple, tuple]:
        return tuple(self.quick[:2]) if quick and self.quick else (self.input, self.weight)

    def options(self, quick: bool) -> dict:
        """The keyword arguments (stride, padding, ...) at that size."""
        return self.quick[2] if quick and len(self.quick) > 2 else self.kwargs

    @property
    def transposed(self) -> bool:
        return self.op.startswith("conv_transpose")


#: The layers, from the networks that made each kind of layer common.
ZOO = (
    Layer("resnet_3x3", "ResNet-18, conv2_x", "3x3, stride 1", "conv2d",
          (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1),
          quick=((2, 16, 14, 14), (16, 16, 3, 3))),
    Layer("resnet_3x3_14", "ResNet-34, conv4_x", "3x3, stride 1, 256 channels", "conv2d",
          (8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1),
          quick=((2, 32, 7, 7), (32, 32, 3, 3))),
    Layer("resnet_stem", "ResNet, stem", "7x7, stride 2", "conv2d",
          (4, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3),
          quick=((1, 3, 32, 32), (8, 3, 7, 7))),
    Layer("resnet_down", "ResNet-18, conv3_1", "3x3, stride 2", "conv2d",
          (8, 64, 56, 56), (128, 64, 3, 3), dict(stride=2, padding=1),
          quick=((2, 16, 14, 14), (32, 16, 3, 3))),
    Layer("resnet50_1x1", "ResNet-50, bottleneck", "pointwise 1x1", "conv2d",
          (8, 256, 56, 56), (64, 256, 1, 1), {},
          quick=((2, 32, 14, 14), (16, 32, 1, 1))),
    Layer("mobilenet_dw", "MobileNetV2, block 3", "depthwise 3x3, stride 1", "conv2d",
          (8, 144, 56, 56), (144, 1, 3, 3), dict(padding=1, groups=144),
          quick=((2, 16, 14, 14), (16, 1, 3, 3), dict(padding=1, groups=16))),
    Layer("mobilenet_dw_s2", "MobileNetV2, block 4", "depthwise 3x3, stride 2", "conv2d",
          (8, 144, 56, 56), (144, 1, 3, 3), dict(stride=2, padding=1, groups=144),
          quick=((2, 16, 14, 14), (16, 1, 3, 3), dict(stride=2, padding=1, groups=16))),
    Layer("resnext_grouped", "ResNeXt-50 32x4d, conv2", "grouped 3x3, 32 groups", "conv2d",
          (8, 128, 56, 56), (128, 4, 3, 3), dict(padding=1, groups=32),
          quick=((2, 32, 14, 14), (32, 4, 3, 3), dict(padding=1, groups=8))),
    Layer("deeplab_dilated", "DeepLabv3, atrous block", "3x3, dilation 2", "conv2d",
          (2, 256, 28, 28), (256, 256, 3, 3), dict(padding=2, dilation=2),
          quick=((1, 32, 12, 12), (32, 32, 3, 3))),
    Layer("wav2vec_frontend", "wav2vec 2.0, feature encoder", "conv1d 10 taps, stride 5",
          "conv1d", (4, 1, 16000), (512, 1, 10), dict(stride=5),
          quick=((2, 1, 800), (32, 1, 10))),
    Layer("tcn_dilated", "TCN / WaveNet, residual block", "conv1d 3 taps, dilation 4",
          "conv1d", (8, 64, 4096), (64, 64, 3), dict(padding=4, dilation=4),
          quick=((2, 16, 256), (16, 16, 3))),
    Layer("c3d_3x3x3", "C3D / 3-D U-Net", "conv3d 3x3x3", "conv3d",
          (2, 32, 8, 28, 28), (32, 32, 3, 3, 3), dict(padding=1),
          quick=((1, 8, 4, 8, 8), (8, 8, 3, 3, 3))),
    Layer("unet_up", "U-Net, up-convolution", "transposed 2x2, stride 2", "conv_transpose2d",
          (4, 256, 28, 28), (256, 128, 2, 2), dict(stride=2),
          quick=((2, 32, 7, 7), (32, 16, 2, 2))),
    Layer("dcgan_up", "DCGAN, generator", "transposed 4x4, stride 2", "conv_transpose2d",
          (16, 256, 16, 16), (256, 128, 4, 4), dict(stride=2, padding=1),
          quick=((2, 16, 4, 4), (16, 8, 4, 4))),
    Layer("decoder_up_op", "FCN / encoder-decoder, upsampling", "transposed 3x3, stride 2, "
          "output_padding 1", "conv_transpose2d", (4, 128, 28, 28), (128, 64, 3, 3),
          dict(stride=2, padding=1, output_padding=1),
          quick=((2, 16, 7, 7), (16, 8, 3, 3))),
    Layer("audio_up_1d", "WaveGAN-style audio decoder", "transposed conv1d 4 taps, stride 2",
          "conv_transpose1d", (8, 128, 1024), (128, 64, 4), dict(stride=2, padding=1),
          quick=((2, 16, 64), (16, 8, 4))),
)


def _ops(layer: Layer):
    """(convlib's function, torch's function) for the layer's op."""
    return getattr(convlib, layer.op), getattr(F, layer.op)


def _tensors(layer: Layer, device: torch.device, quick: bool, grad: bool = False):
    """Seeded input, weight (scaled like a trained layer's) and upstream gradient."""
    in_shape, w_shape = layer.shapes(quick)
    gen = _gen(sum(map(ord, layer.name)))
    x = torch.randn(in_shape, generator=gen).to(device)
    if layer.transposed:  # each output sums C_in prod(k) / prod(stride) products, on average
        stride = layer.options(quick).get("stride", 1)
        fan_in = w_shape[0] * math.prod(w_shape[2:]) / math.prod(as_tuple(
            stride, len(w_shape) - 2, "stride"))
    else:
        fan_in = w_shape[1] * math.prod(w_shape[2:])
    w = (torch.randn(w_shape, generator=gen) / math.sqrt(fan_in)).to(device)
    _, torch_op = _ops(layer)
    y = torch_op(x, w, **layer.options(quick))
    g = torch.randn(y.shape, generator=gen).to(device)
    if grad:
        x.requires_grad_(True)
        w.requires_grad_(True)
    return x, w, g, tuple(y.shape)


def layer_flops(layer: Layer, quick: bool = False) -> dict:
    """Floating-point operations of the direct sum: 2 per multiply-add, every tap counted
    (padding included); the backward pass (input and weight gradients) costs twice the
    forward."""
    (n, c, *size), (w0, w1, *k) = layer.shapes(quick)
    kw = layer.options(quick)
    groups = kw.get("groups", 1)
    if layer.transposed:  # every input entry meets C_out / g * prod(k) weights
        macs = n * c * math.prod(size) * w1 * math.prod(k)
    else:
        out = convlib.conv_output_size(tuple(size), tuple(k), kw.get("stride", 1),
                                       kw.get("padding", 0), kw.get("dilation", 1))
        macs = n * w0 * math.prod(out) * (c // groups) * math.prod(k)
    return {"forward": 2 * macs, "forward_backward": 6 * macs}


def layer_bytes(layer: Layer, output_shape, quick: bool = False, itemsize: int = 4) -> dict:
    """Bytes each pass must move at least once: forward reads x and w and writes y;
    backward then reads the output gradient, x and w, and writes the two gradients."""
    in_shape, w_shape = layer.shapes(quick)
    x, w, y = (math.prod(s) * itemsize for s in (in_shape, w_shape, output_shape))
    return {"forward": x + w + y, "forward_backward": 3 * x + 3 * w + 2 * y}


# Modules that every algorithm passes through: what ran is read from the others.
_PLUMBING = {"convlib", "convlib.bench", "convlib.backends", "convlib.ops", "convlib.functional",
             "convlib.checks", "convlib.shapes", "convlib.torchlike", "convlib.nn", "convlib.gemm"}


def _ran(fn: Callable[[], object]) -> list:
    """The convlib functions (outside the plumbing modules) that one call of ``fn`` runs."""
    seen = set()

    def profile(frame, event, arg):
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if (module.startswith("convlib.") and module not in _PLUMBING
                    and not frame.f_code.co_name.startswith("<")):  # no comprehensions
                seen.add(f"{module.removeprefix('convlib.')}.{frame.f_code.co_name}")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(previous)
    return sorted(seen)


#: The module of each algorithm's own functions (what a trace of it shows).
_MODULES = {"im2col": "columns.", "shifted": "shifted.", "pointwise": "pointwise.",
            "subpixel": "subpixel.", "winograd": "winograd.", "polyphase": "polyphase."}


def ran_algorithms(ran: list) -> Optional[str]:
    """The algorithms whose functions ran, joined by "+" (the rule can pick one for the
    convolution and another for its gradients), or None."""
    algs = [alg for alg, module in _MODULES.items() if any(f.startswith(module) for f in ran)]
    return "+".join(algs) or None


def _forced_algorithms() -> tuple:
    return tuple(a for a in getattr(convlib.backends, "ALGORITHMS", ("auto",)) if a != "auto")


def _applicable(traces: dict) -> dict:
    """Which forced algorithms really ran. ``"im2col"`` applies to every layer; a forced
    algorithm that does not apply falls back to another, so its trace equals that one's.
    One whose trace equals im2col's does not apply; one whose trace equals another's
    applies only if its name appears in what ran (so two names for the same code, or a
    fallback to the default rule, are not timed twice)."""
    general = traces.get("im2col")
    out = {}
    for alg, ran in traces.items():
        if alg == "im2col":
            applies = bool(ran)
        elif ran == general:
            applies = False
        else:
            twins = [other for other, r in traces.items() if other != alg and r == ran]
            applies = bool(ran) and (not twins or any(alg.lower() in f.lower() for f in ran))
        out[alg] = {"applies": applies, "ran": ran}
    return out


def _baselines(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"torch": "torch.nn.functional as shipped (cuDNN)",
                "torch_no_cudnn": "torch with torch.backends.cudnn.flags(enabled=False): "
                                  "PyTorch's own CUDA kernels (im2col + GEMM)"}
    return {"torch": "torch.nn.functional as shipped (oneDNN, where it applies)",
            "torch_no_mkldnn": "torch with torch.backends.mkldnn.flags(enabled=False): "
                               "PyTorch's own im2col + GEMM (slow_conv2d and friends)"}


@contextlib.contextmanager
def _without_vendor(device: torch.device):
    """torch with its vendor kernels off: oneDNN on CPU, cuDNN on CUDA."""
    backend = torch.backends.cudnn if device.type == "cuda" else torch.backends.mkldnn
    flags = backend.flags(enabled=False)
    with warnings.catch_warnings():  # oneDNN's flags warn about Intel GPUs, irrelevant here
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        flags.__enter__()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
            flags.__exit__(None, None, None)


def _step(conv, x, w, g, kwargs, grad: bool, context=None):
    """A call of the layer: forward, or forward + both gradients."""
    def call():
        with context() if context else contextlib.nullcontext():
            y = conv(x, w, **kwargs)
            return torch.autograd.grad(y, (x, w), g) if grad else y
    return call


def _forced(algorithm: str, call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with ``algorithm`` forced (:func:`convlib.backends.use`)."""
    def forced():
        with convlib.backends.use(algorithm):
            return call()
    return forced


def _max_error(a, b) -> float:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return max(float((p - q).abs().max()) / max(1.0, float(q.abs().max())) for p, q in zip(a, b))


_TOLERANCE = 1e-3  # largest error against torch, relative to the result's largest entry


def _time_layer(layer: Layer, device: torch.device, quick: bool, repeats: int, warmup: int,
                min_time: float, gemm_rate: float, bandwidth: float) -> dict:
    ours, theirs = _ops(layer)
    baselines = _baselines(device)
    second = list(baselines)[1]
    flops = layer_flops(layer, quick)
    record = None
    algorithms: dict = {}
    for pass_name, grad in (("forward", False), ("forward_backward", True)):
        x, w, g, out_shape = _tensors(layer, device, quick, grad)
        if record is None:
            in_shape, w_shape = layer.shapes(quick)
            record = {"name": layer.name, "network": layer.network, "what": layer.what,
                      "op": layer.op, "input": list(in_shape), "weight": list(w_shape),
                      "output": list(out_shape), "kwargs": layer.options(quick), "flops": flops,
                      "bytes": layer_bytes(layer, out_shape, quick)}
        kw = layer.options(quick)
        forms = {"convlib": _step(ours, x, w, g, kw, grad),
                 "torch": _step(theirs, x, w, g, kw, grad),
                 second: _step(theirs, x, w, g, kw, grad, lambda: _without_vendor(device))}
        forced = _forced_algorithms()
        traces, refused = {}, {}
        for alg in forced:
            try:
                traces[alg] = _ran(_forced(alg, _step(ours, x, w, g, kw, grad)))
            except Exception as error:  # an algorithm that refuses the layer does not apply
                traces[alg], refused[alg] = [], f"{type(error).__name__}: {error}"
        applies = _applicable(traces)
        for alg, why in refused.items():
            applies[alg]["refused"] = why
        ran = _ran(forms["convlib"])  # what convlib's own rule picks
        same = [alg for alg, r in traces.items() if r == ran]
        chosen = next((alg for alg in same if any(alg.lower() in f.lower() for f in ran)),
                      same[0] if same else None) or ran_algorithms(ran)
        if pass_name == "forward":
            algorithms = applies
            record["algorithms"] = algorithms
        for alg in forced:
            if algorithms.get(alg, {}).get("applies"):
                forms[f"convlib:{alg}"] = _forced(alg, _step(ours, x, w, g, kw, grad))
        reference = forms["torch"]()
        errors = {name: _max_error(fn(), reference) for name, fn in forms.items()}
        for name, err in errors.items():
            if not err <= _TOLERANCE:
                _progress(f"WARNING {layer.name} {pass_name}: {name} differs from torch by {err:.2e}")
        if not errors["convlib"] <= _TOLERANCE:
            raise AssertionError(f"{layer.name} {pass_name}: convlib differs from torch by "
                                 f"{errors['convlib']:.2e}")
        timed = interleaved(forms, device, repeats, warmup, min_time)
        for name, t in timed.items():
            t["gflops"] = flops[pass_name] / t["time_s"] / 1e9
            t["max_abs_error"] = errors[name]
            t["agrees"] = errors[name] <= _TOLERANCE
        if pass_name == "forward":
            record["gemm_at_shape"] = _gemm_at_shape(layer_product(layer, quick), device, repeats)
        ratios = {name: {base: _paired_ratio(timed[name]["times_s"], timed[base]["times_s"])
                         for base in baselines if base != name}
                  for name in timed}
        record[pass_name] = {"forms": timed, "ratios": ratios, "ran": ran, "chosen": chosen}
    _set_floors(record, gemm_rate, bandwidth)
    return record


# ----------------------------------------------------------------------------- peak memory


def _peak_once(spec: dict) -> int:
    """The growth of the peak resident set during one call (in a fresh child process)."""
    torch.set_num_threads(spec["threads"])
    layer = next(lay for lay in ZOO if lay.name == spec["layer"])
    quick = spec["quick"]
    kw = layer.options(quick)
    ours, theirs = _ops(layer)
    conv = ours if spec["form"] == "convlib" else theirs
    context = (lambda: _without_vendor(torch.device("cpu"))) if spec["form"] == "torch_no_mkldnn" else None
    grad = spec["pass"] == "forward_backward"
    x, w, g, _ = _tensors(layer, torch.device("cpu"), quick, grad)
    # warm up on one sample: loads code and builds small caches, as a first call would
    _step(conv, x[:1].detach().requires_grad_(grad), w, g[:1], kw, grad, context)()

    def status(key):  # kB
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM) to the current one
    before = status("VmRSS")
    out = _step(conv, x, w, g, kw, grad, context)()
    out = out if isinstance(out, tuple) else (out,)
    # at least the results themselves, which reused free pages may hide from the count
    results = sum(t.numel() * t.element_size() for t in out)
    return max((status("VmHWM") - before) * 1024, results)


def _serve() -> None:
    """A process that has imported torch and convlib once and forks a fresh child for each
    request (a JSON line on stdin), answering with one JSON line: every measurement starts
    from a fresh process without paying for the import again."""
    for line in sys.stdin:
        spec = json.loads(line)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, answer, leave without cleaning up
            os.close(read)
            try:
                answer = {"bytes": _peak_once(spec)}
            except BaseException as error:
                answer = {"error": repr(error)}
            os.write(write, json.dumps(answer).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            answer = f.read()
        os.waitpid(pid, 0)
        print(answer or json.dumps({"error": "the child died"}), flush=True)


_SERVER = None


def _server():
    """The fork server (:func:`_serve`), started once. Allocations of 128 kB and more are
    returned to the system as soon as they are freed (a fixed mmap threshold), so the
    resident set follows what is live."""
    global _SERVER
    if _SERVER is None or _SERVER.poll() is not None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072",
                   PYTHONWARNINGS="ignore")
        _SERVER = subprocess.Popen([sys.executable, "-c", "from convlib.bench import _serve; _serve()"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    return _SERVER


def _peak_cpu(spec: dict) -> int:
    server = _server()
    server.stdin.write(json.dumps(spec) + "\n")
    server.stdin.flush()
    answer = json.loads(server.stdout.readline() or '{"error": "the fork server died"}')
    if "error" in answer:
        raise RuntimeError(f"peak memory of {spec}: {answer['error']}")
    return answer["bytes"]


def peak_memory(layer: Layer, device: torch.device, quick: bool) -> dict:
    """Peak memory of one call, forward and forward + backward, for convlib and both
    baselines: on CPU the growth of the peak resident set (VmHWM) in a fresh process, on
    CUDA the allocator's peak above what was allocated before the call."""
    forms = ["convlib", *_baselines(device)]
    kw = layer.options(quick)
    out = {}
    for pass_name in ("forward", "forward_backward"):
        grad = pass_name == "forward_backward"
        out[pass_name] = {}
        for form in forms:
            if device.type != "cuda":
                out[pass_name][form] = _peak_cpu({"layer": layer.name, "form": form, "pass": pass_name,
                                                  "quick": quick, "threads": torch.get_num_threads()})
                continue
            x, w, g, _ = _tensors(layer, device, quick, grad)
            ours, theirs = _ops(layer)
            fn = _step(ours if form == "convlib" else theirs, x, w, g, kw, grad,
                       (lambda: _without_vendor(device)) if form != "convlib" and form != "torch" else None)
            fn()
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fn()
            torch.cuda.synchronize(device)
            out[pass_name][form] = torch.cuda.max_memory_allocated(device) - base
            del x, w, g, fn
    out["how"] = ("CUDA allocator peak above the allocations before the call"
                  if device.type == "cuda" else
                  "growth of the peak resident set (VmHWM) during one call, in a fresh process "
                  "forked after a one-sample warm-up; at least the bytes of the results")
    return out


# ----------------------------------------------------------------------------- the machine


def _gemm(device: torch.device, quick: bool, repeats: int) -> dict:
    """FLOP/s of a large square float32 matrix product, by every route torch offers."""
    n = 512 if quick else 2048
    a = torch.randn(n, n, generator=_gen(10)).to(device)
    b = torch.randn(n, n, generator=_gen(11)).to(device)
    a4 = torch.randn(4, n // 2, n // 2, generator=_gen(12)).to(device)
    b4 = torch.randn(4, n // 2, n // 2, generator=_gen(13)).to(device)
    routes = {"torch.mm": lambda: torch.mm(a, b), "torch.bmm (4 of n/2)": lambda: torch.bmm(a4, b4)}
    flops = {"torch.mm": 2 * n ** 3, "torch.bmm (4 of n/2)": 4 * 2 * (n // 2) ** 3}
    if device.type == "cpu" and convlib.gemm.onednn_available():  # an internal operator, checked
        bt = b.T.contiguous()
        routes["oneDNN linear"] = lambda: convlib.gemm._linear(a, bt)
        flops["oneDNN linear"] = 2 * n ** 3
    rates = {}
    for name, fn in routes.items():
        t = time_call(fn, device, repeats=max(3, repeats // 2), warmup=2)
        rates[name] = flops[name] / t
    return {"n": n, "routes": rates, "best_flops_per_s": max(rates.values())}


def layer_product(layer: Layer, quick: bool = False) -> dict:
    """The matrix product of the layer's im2col form, forward: per group, ``m`` rows of
    the weight, a reduction of ``k``, ``n`` columns (one per output position of the whole
    batch; for a transposed convolution, one per input position, each multiplied by
    ``M^T``)."""
    (batch, c, *size), (w0, w1, *kernel) = layer.shapes(quick)
    kw = layer.options(quick)
    g, taps = kw.get("groups", 1), math.prod(kernel)
    if layer.transposed:  # (C_out/g * K, C_in/g) @ (C_in/g, N * L_in)
        return {"m": w1 * taps, "k": c // g, "n": batch * math.prod(size), "groups": g}
    out = convlib.conv_output_size(tuple(size), tuple(kernel), kw.get("stride", 1),
                                   kw.get("padding", 0), kw.get("dilation", 1))
    return {"m": w0 // g, "k": c // g * taps, "n": batch * math.prod(out), "groups": g}


def _gemm_at_shape(shape: dict, device: torch.device, repeats: int) -> dict:
    """FLOP/s of one group's product of :func:`layer_product`, by every route, both
    ways round (``Y = M C`` and ``Y^T = C^T M^T``): what a matrix product of exactly this
    shape can do on the machine, as against the large square one of :func:`_gemm`."""
    m, k, n = shape["m"], shape["k"], shape["n"]
    a = torch.randn(m, k, generator=_gen(14)).to(device)
    b = torch.randn(k, n, generator=_gen(15)).to(device)
    bt = b.T.contiguous()  # the columns laid out one position per row
    routes = {"torch.mm": lambda: torch.mm(a, b), "torch.mm (transposed)": lambda: torch.mm(bt, a.T)}
    if device.type == "cpu" and convlib.gemm.onednn_available():
        routes["oneDNN linear"] = lambda: convlib.gemm._linear(a, bt)
        routes["oneDNN linear (transposed)"] = lambda: convlib.gemm._linear(bt, a)
    rates = {name: 2 * m * k * n / time_call(fn, device, repeats=max(3, repeats // 2), warmup=2)
             for name, fn in routes.items()}
    return {**shape, "routes": rates, "best_flops_per_s": max(rates.values())}


def _memory_bandwidth(device: torch.device, quick: bool) -> float:
    """Bytes per second of a large copy (read + write): the floor for memory-bound work."""
    n = (1 << 22) if quick else (1 << 26)
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    t = time_call(lambda: b.copy_(a), device, repeats=5)
    return 2 * a.numel() * a.element_size() / t


_ISA = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
        "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16",
        "amx_int8", "asimd", "sve", "sve2")


def machine() -> dict:
    model, present = convlib.cpu.model(), convlib.cpu.flags()
    flags = [f for f in _ISA if f in present]
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "convlib": convlib.__version__,
        "cpu_model": model,
        "cpu_vendor": convlib.cpu.vendor(),
        "cpu_capability": capability,
        "isa_flags": flags,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "algorithms": list(getattr(convlib.backends, "ALGORITHMS", ("auto",))),
        # where convlib's float32 CPU products go (convlib.gemm.onednn_preferred)
        "products_by": "oneDNN" if convlib.gemm.onednn_preferred() else "torch.matmul",
    }


# ----------------------------------------------------------------------------- the matrix


def _csr_bytes(W: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in (W.values(), W.col_indices(), W.crow_indices()))


def _time_dense(K, n, xv, device, repeats):
    """Time the dense W @ x; W (up to 1 GiB) is freed on return, before the next size."""
    W = convlib.kernel_matrix(K, (n, n), sparse=False)
    return time_call(lambda: W @ xv, device, repeats, min_time=0.02)


def _matrix_cases(device: torch.device, quick: bool, repeats: int) -> dict:
    """The kernel matrix itself: build, apply, bytes, scaling with the image size."""
    out = {}
    # building W: kernel_matrix against the four loops of kernel_matrix_loop
    n = 16 if quick else 64
    K = torch.randn(3, 3, generator=_gen(0)).to(device)
    _progress(f"build: kernel matrix of a 3x3 kernel on {n}x{n}")
    W_loop = convlib.kernel_matrix_loop(K, (n, n))
    torch.testing.assert_close(convlib.kernel_matrix(K, (n, n)).to_dense(), W_loop, rtol=0, atol=0)
    out["build"] = {"kernel": [3, 3], "image": [n, n],
                    "kernel_matrix_s": time_call(lambda: convlib.kernel_matrix(K, (n, n)), device,
                                                 repeats, min_time=0.05),
                    "kernel_matrix_loop_s": time_call(lambda: convlib.kernel_matrix_loop(K, (n, n)),
                                                      device, max(1, repeats // 3), warmup=1)}
    # applying the sparse W to one image, against F.conv2d, and the bytes CSR holds
    n = 64 if quick else 1024
    K = torch.randn(3, 3, generator=_gen(1)).to(device)
    x = torch.randn(n, n, generator=_gen(2)).to(device)
    _progress(f"apply: sparse W @ x on {n}x{n}")
    W = convlib.kernel_matrix(K, (n, n))
    xv, x4, K4 = x.flatten(), x[None, None], K[None, None]
    torch.testing.assert_close((W @ xv).reshape(n - 2, n - 2), F.conv2d(x4, K4)[0, 0], rtol=1e-4, atol=1e-4)
    timed = interleaved({"sparse W @ x": lambda: W @ xv, "F.conv2d": lambda: F.conv2d(x4, K4)},
                        device, repeats, warmup=2, min_time=0.05)
    nnz = W.values().numel()
    out["apply"] = {"kernel": [3, 3], "image": [n, n],
                    "sparse_matvec_s": timed["sparse W @ x"]["time_s"],
                    "torch_conv2d_s": timed["F.conv2d"]["time_s"],
                    "ratio": _paired_ratio(timed["sparse W @ x"]["times_s"], timed["F.conv2d"]["times_s"]),
                    "nnz": nnz, "csr_bytes": _csr_bytes(W),
                    "values_and_columns_bytes": nnz * (W.values().element_size() + W.col_indices().element_size())}
    # every form against the image size
    sizes = [16, 32, 64] if quick else [16, 32, 64, 128, 256, 512, 1024, 2048]
    K = torch.randn(3, 3, generator=_gen(8)).to(device)
    rows = []
    for n in sizes:
        _progress(f"scaling: n = {n}")
        x = torch.randn(n, n, generator=_gen(9)).to(device)
        x4, K4, xv = x[None, None], K[None, None], x.flatten()
        row = {"n": n, "pixels": n * n}
        row["F.conv2d"] = time_call(lambda: F.conv2d(x4, K4), device, repeats, min_time=0.02)
        row["convlib.conv2d"] = time_call(lambda: convlib.conv2d(x4, K4), device, repeats, min_time=0.02)
        W = convlib.kernel_matrix(K, (n, n))
        row["sparse W @ x"] = time_call(lambda: W @ xv, device, repeats, min_time=0.02)
        row["build sparse W"] = time_call(lambda: convlib.kernel_matrix(K, (n, n)), device, repeats,
                                          min_time=0.02)
        try:
            row["dense W @ x"] = _time_dense(K, n, xv, device, repeats)
        except RuntimeError as error:  # refused: larger than max_dense_bytes
            row["dense W @ x"] = None
            row["dense refused"] = str(error).split(",")[0]
        if n <= 64:
            row["loop corr2d"] = time_call(lambda: convlib.corr2d(x, K), device, 1, warmup=0)
        rows.append(row)
    out["scaling"] = {"kernel": [3, 3], "channels": 1, "rows": rows}
    return out


# ----------------------------------------------------------------------------- run


def run(only=None, devices=None, quick=False, repeats=None, layers=None, memory=True,
        warmup=None, min_time=None) -> dict:
    """Run the benchmarks; return everything that :func:`main` prints and saves."""
    repeats = repeats or (3 if quick else 15)
    warmup = (1 if quick else 3) if warmup is None else warmup
    min_time = (0.002 if quick else 0.02) if min_time is None else min_time
    only = only or ["zoo", "matrix"]
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    zoo = [lay for lay in ZOO if not layers or lay.name in layers]
    started = time.perf_counter()
    report = {"schema": SCHEMA, "mode": "quick" if quick else "full",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python -m convlib.bench", *sys.argv[1:]]) if sys.argv else "",
              "repeats": repeats, "warmup": warmup, "min_time_s": min_time,
              "machine": machine(), "devices": {}}
    # float32 means float32 on a GPU too: no TF32 in torch's products or cuDNN's convolutions
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        _run_devices(report, devices, only, zoo, quick, repeats, warmup, min_time, memory)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    report["elapsed_s"] = time.perf_counter() - started
    return report


def _run_devices(report, devices, only, zoo, quick, repeats, warmup, min_time, memory) -> None:
    for dev in devices:
        device = torch.device(dev)
        print(f"[{dev}] the machine: GEMM rate, bandwidth", file=sys.stderr, flush=True)
        entry = {"name": torch.cuda.get_device_name(device) if dev.startswith("cuda")
                 else report["machine"]["cpu_model"],
                 "gemm": _gemm(device, quick, repeats),
                 "bandwidth_bytes_per_s": _memory_bandwidth(device, quick),
                 "baselines": _baselines(device)}
        if "zoo" in only:
            entry["layers"] = []
            for layer in zoo:
                print(f"[{dev}] {layer.name}: {layer.network}, {layer.what}", file=sys.stderr, flush=True)
                layer_started = time.perf_counter()
                rec = _time_layer(layer, device, quick, repeats, warmup, min_time,
                                  entry["gemm"]["best_flops_per_s"], entry["bandwidth_bytes_per_s"])
                if memory:
                    rec["peak_memory_bytes"] = peak_memory(layer, device, quick)
                rec["elapsed_s"] = time.perf_counter() - layer_started
                entry["layers"].append(rec)
        if "matrix" in only:
            print(f"[{dev}] the kernel matrix", file=sys.stderr, flush=True)
            matrix_started = time.perf_counter()
            entry["matrix"] = _matrix_cases(device, quick, repeats)
            entry["matrix"]["elapsed_s"] = time.perf_counter() - matrix_started
        _remeasure_machine(entry, device, quick, repeats)
        report["devices"][dev] = entry


def _remeasure_machine(entry: dict, device: torch.device, quick: bool, repeats: int) -> None:
    """Measure the GEMM rate and the bandwidth again at the end of the run and keep the
    better of the two measurements (on a shared machine one of them can fall in a slow
    moment, which would lower every floor), then recompute the layers' floors with them."""
    print(f"[{device.type}] the machine again: GEMM rate, bandwidth", file=sys.stderr, flush=True)
    first, again = entry["gemm"], _gemm(device, quick, repeats)
    routes = {name: max(rate, again["routes"].get(name, 0.0)) for name, rate in first["routes"].items()}
    entry["gemm"] = {"n": first["n"], "routes": routes, "best_flops_per_s": max(routes.values()),
                     "measurements": [first["best_flops_per_s"], again["best_flops_per_s"]]}
    bandwidths = [entry["bandwidth_bytes_per_s"], _memory_bandwidth(device, quick)]
    entry["bandwidth_bytes_per_s"], entry["bandwidth_measurements"] = max(bandwidths), bandwidths
    for rec in entry.get("layers", []):
        _set_floors(rec, entry["gemm"]["best_flops_per_s"], entry["bandwidth_bytes_per_s"])


def _set_floors(rec: dict, gemm_rate: float, bandwidth: float) -> None:
    """The floors of each pass of a layer record (:data:`SCHEMA`'s PASS) for these rates."""
    shape_rate = rec["gemm_at_shape"]["best_flops_per_s"]
    for pass_name in ("forward", "forward_backward"):
        compute = rec["flops"][pass_name] / gemm_rate
        memory = rec["bytes"][pass_name] / bandwidth
        rec[pass_name].update({"floor_s": max(compute, memory), "compute_floor_s": compute,
                               "memory_floor_s": memory,
                               "floor_bound": "compute" if compute >= memory else "memory",
                               "floor_at_shape_s": max(rec["flops"][pass_name] / shape_rate, memory)})


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f}"


def format_table(report: dict) -> str:
    """The report as text: one line per layer and pass, then the kernel-matrix cases."""
    lines = [f"convlib bench ({report['mode']}), {report['machine']['cpu_model']}, "
             f"{report['machine']['cpu_capability']}, {report['machine']['torch_threads']} threads, "
             f"convlib's products by {report['machine'].get('products_by', 'oneDNN')}"]
    for dev, entry in report["devices"].items():
        lines.append(f"[{dev}] {entry['name']}: GEMM {entry['gemm']['best_flops_per_s'] / 1e9:.0f} GFLOP/s, "
                     f"copy {entry['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s")
        second = list(entry["baselines"])[1]
        lines.append(f"{'layer':18} {'pass':8} {'convlib':>8} {'torch':>8} {second[:11]:>11} "
                     f"{'floor':>8}  (ms)  {'/torch':>6} {'/' + second[6:13]:>8}  fastest forced")
        for rec in entry.get("layers", []):
            for pass_name in ("forward", "forward_backward"):
                p = rec[pass_name]
                forms, r = p["forms"], p["ratios"]["convlib"]
                forced = {k: v["time_s"] for k, v in forms.items() if k.startswith("convlib:")}
                best = min(forced, key=forced.get) if forced else "-"
                lines.append(f"{rec['name'][:18]:18} {'fwd' if pass_name == 'forward' else 'fwd+bwd':8} "
                             f"{_ms(forms['convlib']['time_s'])} {_ms(forms['torch']['time_s'])} "
                             f"{_ms(forms[second]['time_s']):>11} {_ms(p['floor_s'])}        "
                             f"{r['torch']:6.2f} {r[second]:8.2f}  {best}")
            mem = rec.get("peak_memory_bytes")
            if mem:
                lines.append(f"{'':18} peak MB  " + "  ".join(
                    f"{k} {v / 2**20:.1f}" for k, v in mem["forward"].items()) + " (forward)")
        m = entry.get("matrix")
        if m:
            b, a = m["build"], m["apply"]
            lines.append(f"build W {b['image']}: kernel_matrix {b['kernel_matrix_s'] * 1e3:.3f} ms, "
                         f"kernel_matrix_loop {b['kernel_matrix_loop_s'] * 1e3:.1f} ms")
            lines.append(f"apply W {a['image']}: sparse {a['sparse_matvec_s'] * 1e3:.2f} ms, "
                         f"F.conv2d {a['torch_conv2d_s'] * 1e3:.2f} ms; CSR {a['csr_bytes'] / 2**20:.1f} MiB")
            for row in m["scaling"]["rows"]:
                cells = "  ".join(f"{k}={v * 1e3:.3g}ms" for k, v in row.items() if isinstance(v, float))
                lines.append(f"scaling n={row['n']:5}: {cells}")
    return "\n".join(lines)


def machine_line(report: dict, dev: str = "cpu") -> str:
    """One line naming what the run measured on: the CPU (or GPU), its ISA, the threads,
    the GEMM rate and the bandwidth."""
    m, entry = report["machine"], report["devices"][dev]
    gemm = entry["gemm"]
    route = max(gemm["routes"], key=gemm["routes"].get)
    what = (f"{entry['name']}, torch dispatch {m['cpu_capability']}, ISA {' '.join(m['isa_flags'])}, "
            f"{m['torch_threads']} threads" if dev == "cpu" else entry["name"])
    return (f"[{dev}] {what}; GEMM {gemm['best_flops_per_s'] / 1e9:.0f} GFLOP/s ({route}, n = {gemm['n']}), "
            f"copy {entry['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s; torch {m['torch']}, {report['mode']} run")


def _gemm_fraction(rec: dict, pass_name: str, gemm: float) -> dict:
    """GFLOP/s of every convlib form over the GEMM rate, on a compute-bound pass."""
    p = rec[pass_name]
    if p["floor_bound"] != "compute":
        return {}
    return {name: f["gflops"] * 1e9 / gemm for name, f in p["forms"].items() if name.startswith("convlib")}


def _shape_fraction(rec: dict) -> Optional[float]:
    """convlib's forward GFLOP/s over the rate of a product of its layer's own shape, on a
    compute-bound forward pass (None elsewhere, or in a record without that rate)."""
    shape = rec.get("gemm_at_shape")
    if shape is None or rec["forward"]["floor_bound"] != "compute":
        return None
    return rec["forward"]["forms"]["convlib"]["gflops"] * 1e9 / shape["best_flops_per_s"]


def summary(report: dict) -> str:
    """The readable summary: the machine, then one line per layer with convlib's ratios
    against torch, torch without its vendor kernels and the floor (forward, forward +
    backward), the fraction of the GEMM rate its compute-bound forms reach, and its peak
    memory against torch's; then the aggregates (largest and median ratios)."""
    lines = []
    for dev, entry in report["devices"].items():
        layers = entry.get("layers") or []
        if not layers:
            continue
        second = list(entry["baselines"])[1]
        short = second.replace("torch_", "")
        gemm = entry["gemm"]["best_flops_per_s"]
        lines.append(machine_line(report, dev))
        lines.append("convlib's own choice: its time / each baseline's (below 1: convlib is faster); "
                     "GEMM %: its GFLOP/s / the GEMM rate (compute-bound layers), and / the "
                     "rate of one product of the layer's own im2col shape; "
                     "memory: its peak / torch's (forward + backward)")
        head = f"{'/torch':>7} {'/' + short:>10} {'/floor':>7}"
        lines.append(f"{'layer':18} {'forward':^26} {'forward + backward':^26} {'GEMM %':>7} "
                     f"{'shape %':>7} "
                     f"{'memory':>7}  fastest convlib form (fwd+bwd)")
        lines.append(f"{'':18} {head} {head}")
        for rec in layers:
            cells = []
            for pass_name in ("forward", "forward_backward"):
                p = rec[pass_name]
                r = p["ratios"]["convlib"]
                cells.append(f"{r['torch']:7.2f} {r[second]:10.2f} "
                             f"{p['forms']['convlib']['time_s'] / p['floor_s']:7.2f}")
            frac = _gemm_fraction(rec, "forward", gemm)
            gemm_cell = f"{100 * frac['convlib']:6.0f}%" if frac else f"{'-':>7}"
            at_shape = _shape_fraction(rec)
            gemm_cell += f" {100 * at_shape:6.0f}%" if at_shape is not None else f" {'-':>7}"
            mem = rec.get("peak_memory_bytes")
            mem_cell = (f"{mem['forward_backward']['convlib'] / mem['forward_backward']['torch']:7.2f}"
                        if mem else f"{'-':>7}")
            fb = rec["forward_backward"]["forms"]
            fastest = min((f for f in fb if f.startswith("convlib")), key=lambda f: fb[f]["time_s"])
            lines.append(f"{rec['name'][:18]:18} {cells[0]} {cells[1]} {gemm_cell} {mem_cell}  {fastest}")
        for pass_name in ("forward", "forward_backward"):
            r = [rec[pass_name]["ratios"]["convlib"]["torch"] for rec in layers]
            r2 = [rec[pass_name]["ratios"]["convlib"][second] for rec in layers]
            lines.append(f"[{dev}] {pass_name}: convlib / torch max {max(r):.2f} median "
                         f"{statistics.median(r):.2f}; convlib / {second} max {max(r2):.2f} "
                         f"median {statistics.median(r2):.2f}")
        frac = {f"{rec['name']} {name}": v for rec in layers
                for name, v in _gemm_fraction(rec, "forward", gemm).items()}
        if frac:
            low = min(frac, key=frac.get)
            lines.append(f"[{dev}] compute-bound forms, forward GFLOP/s / GEMM rate: min "
                         f"{frac[low]:.2f} ({low}), median {statistics.median(frac.values()):.2f}")
        mem = [rec["peak_memory_bytes"][p]["convlib"] / rec["peak_memory_bytes"][p]["torch"]
               for rec in layers if rec.get("peak_memory_bytes") for p in ("forward", "forward_backward")]
        if mem:
            lines.append(f"[{dev}] peak memory convlib / torch (both passes): max {max(mem):.2f} "
                         f"median {statistics.median(mem):.2f}")
    if "elapsed_s" in report:
        lines.append(f"the run took {report['elapsed_s'] / 60:.1f} minutes")
    return "\n".join(lines)


def main(argv=None) -> dict:
    """The command line (``python -m convlib.bench --help``): run, print the table and the
    summary, and write the JSON report with ``--out``; returns the report."""
    parser = argparse.ArgumentParser(prog="python -m convlib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--only", nargs="+", choices=["zoo", "matrix"], help="which groups (default: both)")
    parser.add_argument("--layers", nargs="+", choices=[lay.name for lay in ZOO], help="zoo layers (default: all)")
    parser.add_argument("--devices", nargs="+", help="default: cpu, and cuda when present")
    parser.add_argument("--repeats", type=int, help="interleaved rounds per measurement (default 15, quick 3)")
    parser.add_argument("--warmup", type=int, help="calls of each form before timing (default 3, quick 1)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args.only, args.devices, args.quick, args.repeats, args.layers,
                 not args.no_memory, args.warmup)
    print(format_table(report))
    print(summary(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
        print(f"results written to {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
