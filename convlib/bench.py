"""Benchmarks: the kernel matrix and convlib's convolutions against PyTorch, in one run.

    python -m convlib.bench                  # every case, on CPU (and CUDA when present)
    python -m convlib.bench --quick          # tiny sizes, to check that it runs
    python -m convlib.bench --out results.json --cases build apply

Every case first checks that the two sides compute the same thing (against torch), then
times both: the median of ``--repeats`` runs after warm-up, in the same process, so the
printed ratio compares like with like. Results are written as JSON for the book's
performance chapter. Nothing here asserts a time: the targets are printed next to the
ratios, and the chapter discusses them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

import convlib

__all__ = ["Result", "time_call", "run", "main"]


@dataclass
class Result:
    """One timed comparison: ``ratio = ours / baseline`` (< 1 means ours is faster)."""

    case: str
    device: str
    ours: str
    baseline: str
    ours_s: float
    baseline_s: float
    target: str
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours_s / self.baseline_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 7,
              warmup: int = 2, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` calls.

    With ``min_time``, a fast call is repeated in a loop until one measurement lasts at
    least that long, and the per-call time is reported.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    inner = 1
    if min_time:
        start = time.perf_counter()
        fn()
        _sync(device)
        once = time.perf_counter() - start
        inner = max(1, math.ceil(min_time / max(once, 1e-9)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def case_build(device, quick, repeats):
    """Target 1: building the sparse kernel matrix vs the seed's four-loop construction."""
    n = 16 if quick else 64
    K = torch.randn(3, 3, generator=_gen(0)).to(device)
    _progress(f"build: kernel matrix of a 3x3 kernel on {n}x{n}")
    W_loop = convlib.kernel_matrix_loop(K, (n, n))  # the seed's algorithm: 4 nested loops
    torch.testing.assert_close(convlib.kernel_matrix(K, (n, n)).to_dense(), W_loop, rtol=0, atol=0)
    ours = time_call(lambda: convlib.kernel_matrix(K, (n, n)), device, repeats, min_time=0.05)
    base = time_call(lambda: convlib.kernel_matrix_loop(K, (n, n)), device, max(1, repeats // 3), warmup=1)
    return [Result("build sparse W (3x3 kernel, %dx%d image)" % (n, n), str(device),
                   "convlib.kernel_matrix", "seed 4-loop get_sparse_kernel_matrix",
                   ours, base, "ratio <= 1/300")]


def _csr_bytes(W: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in (W.values(), W.col_indices(), W.crow_indices()))


def case_apply(device, quick, repeats):
    """Targets 2 and 6a: W @ x for a 1024 x 1024 image vs F.conv2d, and the bytes W holds."""
    n = 64 if quick else 1024
    K = torch.randn(3, 3, generator=_gen(1)).to(device)
    x = torch.randn(n, n, generator=_gen(2)).to(device)
    _progress(f"apply: sparse W @ x on {n}x{n}")
    W = convlib.kernel_matrix(K, (n, n))
    xv, x4, K4 = x.flatten(), x[None, None], K[None, None]
    torch.testing.assert_close((W @ xv).reshape(n - 2, n - 2), F.conv2d(x4, K4)[0, 0], rtol=1e-4, atol=1e-4)
    ours = time_call(lambda: W @ xv, device, repeats, min_time=0.05)
    base = time_call(lambda: F.conv2d(x4, K4), device, repeats, min_time=0.05)
    nnz = W.values().numel()
    payload = nnz * (W.values().element_size() + W.col_indices().element_size())
    held = _csr_bytes(W)
    return [
        Result(f"apply sparse W @ x (3x3, {n}x{n}, 1 channel)", str(device),
               "W @ x (CSR)", "F.conv2d", ours, base, "ratio <= 1"),
        Result(f"bytes held by sparse W ({n}x{n})", str(device), "CSR bytes",
               "non-zeros + column indices", held, payload, "ratio <= 1.2",
               extra={"unit": "bytes", "nnz": nnz}),
    ]


def _resnet(device, quick, dtype=torch.float32):
    b, c, n = (2, 8, 14) if quick else (8, 64, 56)
    x = torch.randn(b, c, n, n, generator=_gen(3), dtype=dtype).to(device)
    w = torch.randn(c, c, 3, 3, generator=_gen(4), dtype=dtype).to(device) / (3 * c ** 0.5)
    return x, w, f"batch {b}, {c}->{c} ch, {n}x{n}, 3x3, padding 1"


def case_conv(device, quick, repeats):
    """Target 3: convlib.conv2d on a ResNet-like layer vs F.conv2d."""
    x, w, desc = _resnet(device, quick)
    _progress(f"conv2d: {desc}")
    torch.testing.assert_close(convlib.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
    ours = time_call(lambda: convlib.conv2d(x, w, padding=1), device, repeats)
    base = time_call(lambda: F.conv2d(x, w, padding=1), device, repeats)
    return [Result(f"conv2d ({desc})", str(device), "convlib.conv2d", "F.conv2d", ours, base, "ratio <= 1.5")]


def case_transpose(device, quick, repeats):
    """Target 4: convlib.conv_transpose2d on a DCGAN-like layer vs F.conv_transpose2d."""
    b, ci, co, n = (2, 16, 8, 4) if quick else (16, 256, 128, 16)
    y = torch.randn(b, ci, n, n, generator=_gen(5)).to(device)
    w = torch.randn(ci, co, 4, 4, generator=_gen(6)).to(device) / (4 * ci ** 0.5)
    desc = f"batch {b}, {ci}->{co} ch, {n}x{n} -> {2 * n}x{2 * n}, k4 s2 p1"
    _progress(f"conv_transpose2d: {desc}")
    kw = dict(stride=2, padding=1)
    torch.testing.assert_close(convlib.conv_transpose2d(y, w, **kw), F.conv_transpose2d(y, w, **kw), rtol=1e-4, atol=1e-4)
    ours = time_call(lambda: convlib.conv_transpose2d(y, w, **kw), device, repeats)
    base = time_call(lambda: F.conv_transpose2d(y, w, **kw), device, repeats)
    return [Result(f"conv_transpose2d ({desc})", str(device), "convlib.conv_transpose2d",
                   "F.conv_transpose2d", ours, base, "ratio <= 1.5")]


def case_backward(device, quick, repeats):
    """Target 5: forward plus backward (input and weight gradients) on the ResNet-like layer."""
    x, w, desc = _resnet(device, quick)
    x.requires_grad_(True)
    w.requires_grad_(True)
    g = torch.randn(F.conv2d(x, w, padding=1).shape, generator=_gen(7)).to(device)
    _progress(f"forward+backward: {desc}")

    def step(conv):
        return lambda: torch.autograd.grad(conv(x, w, padding=1), (x, w), g)

    for a, b in zip(step(convlib.conv2d)(), step(F.conv2d)()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    ours = time_call(step(convlib.conv2d), device, repeats)
    base = time_call(step(F.conv2d), device, repeats)
    return [Result(f"conv2d forward+backward ({desc})", str(device), "convlib.conv2d",
                   "F.conv2d", ours, base, "ratio <= 2")]


_PEAK_SCRIPT = r"""
import sys, torch, torch.nn.functional as F, convlib
torch.set_num_threads(int(sys.argv[3]))
quick = sys.argv[2] == "1"
b, c, n = (2, 8, 14) if quick else (8, 64, 56)
g = torch.Generator().manual_seed(3)
x = torch.randn(b, c, n, n, generator=g); w = torch.randn(c, c, 3, 3, generator=g)
conv = {"convlib": convlib.conv2d, "torch": F.conv2d}[sys.argv[1]]
conv(x[:1, :, :8, :8], w, padding=1)  # load kernels, allocate small caches
def status(key):  # kB
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set (VmHWM) to the current one
before = status("VmRSS")
y = conv(x, w, padding=1)
# at least the output itself, which reused free pages may hide from the resident set
print(max((status("VmHWM") - before) * 1024, y.numel() * y.element_size()))
"""


def _peak_cpu_bytes(which: str, quick: bool) -> int:
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, which, "1" if quick else "0",
                          str(torch.get_num_threads())], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def case_memory(device, quick, repeats):
    """Target 6b: peak memory of one conv2d call on the ResNet-like layer, ours vs torch's."""
    x, w, desc = _resnet(device, quick)
    _progress(f"peak memory: {desc}")
    if device.type == "cuda":
        peaks = []
        for conv in (convlib.conv2d, F.conv2d):
            conv(x, w, padding=1)
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            conv(x, w, padding=1)
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - base)
        how = "CUDA allocator peak above the inputs"
    else:
        peaks = [_peak_cpu_bytes("convlib", quick), _peak_cpu_bytes("torch", quick)]
        how = "growth of the peak resident set (VmHWM) during one call, in a fresh process"
    return [Result(f"peak memory of conv2d ({desc})", str(device), "convlib.conv2d", "F.conv2d",
                   peaks[0], peaks[1], "ratio <= 2", extra={"unit": "bytes", "how": how})]


def _time_dense(K, n, xv, device, repeats):
    """Time the dense W @ x; W (up to 1 GiB) is freed on return, before the next size."""
    W = convlib.kernel_matrix(K, (n, n), sparse=False)
    return time_call(lambda: W @ xv, device, repeats, min_time=0.02)


def case_scaling(device, quick, repeats):
    """Target 7: time of each method against image size n (3x3 kernel, one channel)."""
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
        row["build sparse W"] = time_call(lambda: convlib.kernel_matrix(K, (n, n)), device, repeats, min_time=0.02)
        try:
            row["dense W @ x"] = _time_dense(K, n, xv, device, repeats)
        except RuntimeError as error:  # refused: larger than max_dense_bytes
            row["dense W @ x"] = None
            row["dense refused"] = str(error).split(",")[0]
        if n <= 64:
            row["loop corr2d"] = time_call(lambda: convlib.corr2d(x, K), device, 1, warmup=0)
        rows.append(row)
    return [Result("scaling with image size (3x3 kernel, 1 channel)", str(device), "-", "-",
                   float("nan"), float("nan"), "log-log slope", extra={"rows": rows})]


CASES = {
    "build": case_build,
    "apply": case_apply,
    "conv": case_conv,
    "transpose": case_transpose,
    "backward": case_backward,
    "memory": case_memory,
    "scaling": case_scaling,
}


def _memory_bandwidth(device: torch.device, quick: bool) -> float:
    """Bytes per second of a large copy (read + write): the floor for memory-bound work."""
    n = (1 << 22) if quick else (1 << 26)
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    t = time_call(lambda: b.copy_(a), device, repeats=5)
    return 2 * a.numel() * a.element_size() / t


def run(cases=None, devices=None, quick=False, repeats=7) -> dict:
    """Run the cases on the devices; return everything that main() prints and saves."""
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results, bandwidth = [], {}
    for dev in devices:
        device = torch.device(dev)
        bandwidth[dev] = _memory_bandwidth(device, quick)
        for name in cases or CASES:
            print(f"[{dev}] {name}", file=sys.stderr, flush=True)
            results += CASES[name](device, quick, repeats)
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "convlib": convlib.__version__,
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "memory_bandwidth_bytes_per_s": bandwidth,
            "quick": quick,
            "repeats": repeats,
        },
        "results": [dict(asdict(r), ratio=r.ratio) for r in results],
    }


def format_table(report: dict) -> str:
    lines = [f"{'case':58} {'device':6} {'ours':>11} {'torch/base':>11} {'ratio':>8}  target"]
    for r in report["results"]:
        if r["extra"].get("rows"):
            continue
        unit = r["extra"].get("unit")
        fmt = (lambda v: f"{v / 2**20:9.2f}MB") if unit == "bytes" else (lambda v: f"{v * 1e3:9.3f}ms")
        lines.append(f"{r['case'][:58]:58} {r['device']:6} {fmt(r['ours_s']):>11} "
                     f"{fmt(r['baseline_s']):>11} {r['ratio']:8.3f}  {r['target']}")
    for r in report["results"]:
        for row in r["extra"].get("rows", []):
            cells = "  ".join(f"{k}={v * 1e3:.3g}ms" for k, v in row.items()
                              if isinstance(v, float))
            lines.append(f"scaling [{r['device']}] n={row['n']:5}: {cells}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m convlib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), help="which cases (default: all)")
    parser.add_argument("--devices", nargs="+", help="default: cpu, and cuda when present")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    report = run(args.cases, args.devices, args.quick, args.repeats)
    print(format_table(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
        print(f"results written to {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
