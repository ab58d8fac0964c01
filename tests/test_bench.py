"""The benchmark measures what it says, on small sizes: its counts are exact, its ratios are
the medians of the rounds, its zoo covers the layers it claims. No time is asserted."""

import json
import math
import statistics
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib import bench

CPU = torch.device("cpu")
LAYERS = ["resnet_3x3", "mobilenet_dw_s2", "unet_up"]  # stride 1, depthwise stride 2, transposed


def test_time_call_returns_the_median_of_positive_times():
    calls = []
    t = bench.time_call(lambda: calls.append(1), CPU, repeats=5, warmup=2)
    assert t > 0 and len(calls) == 7


def test_interleaved_warms_up_every_form_then_alternates_the_order():
    calls = []
    forms = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timed = bench.interleaved(forms, CPU, repeats=3, warmup=2)
    assert calls == list("abc" * 2) + list("abc") + list("cba") + list("abc")
    for t in timed.values():
        assert len(t["times_s"]) == 3 and t["inner"] == 1
        assert t["time_s"] == statistics.median(t["times_s"]) > 0


def test_the_zoo_covers_every_kind_of_layer():
    zoo = {layer.name: layer for layer in bench.ZOO}
    assert len(zoo) == len(bench.ZOO) >= 14

    def kinds(layer):
        kw, (_, c, *_), (_, _, *k) = layer.kwargs, layer.input, layer.weight
        stride = max(convlib.shapes.as_tuple(kw.get("stride", 1), len(k), "stride"))
        found = {layer.op}
        if kw.get("groups", 1) == c and c > 1:
            found.add(f"depthwise stride {stride}")
        elif kw.get("groups", 1) > 1:
            found.add("grouped")
        if layer.op == "conv2d" and all(n == 1 for n in k):
            found.add("pointwise")
        if stride > 1:
            found.add(f"strided {layer.op}")
        if kw.get("dilation", 1) != 1:
            found.add(f"dilated {layer.op}")
        if tuple(k) == (7, 7) and stride == 2:
            found.add("7x7 stem")
        if layer.transposed and tuple(k) == (2, 2) and stride == 2:
            found.add("transposed 2x2 stride 2")
        if kw.get("output_padding"):
            found.add("output_padding")
        return found

    covered = set().union(*map(kinds, zoo.values()))
    for kind in ["depthwise stride 1", "depthwise stride 2", "pointwise", "strided conv2d",
                 "7x7 stem", "dilated conv2d", "grouped", "strided conv1d", "dilated conv1d",
                 "conv3d", "transposed 2x2 stride 2", "output_padding", "conv_transpose1d"]:
        assert kind in covered, kind
    assert zoo["resnet_3x3"].input == (8, 64, 56, 56) and zoo["resnet_3x3"].weight == (64, 64, 3, 3)
    assert zoo["dcgan_up"].input == (16, 256, 16, 16) and zoo["dcgan_up"].weight == (256, 128, 4, 4)


@pytest.mark.parametrize("quick", [True, False])
def test_every_zoo_layer_is_a_valid_torch_layer(quick):
    for layer in bench.ZOO:
        in_shape, w_shape = layer.shapes(quick)
        x, w = torch.empty(in_shape, device="meta"), torch.empty(w_shape, device="meta")
        y = getattr(F, layer.op)(x, w, **layer.options(quick))
        assert y.dim() == x.dim(), layer.name


@pytest.mark.parametrize("layer", [lay for lay in bench.ZOO if not lay.transposed], ids=lambda lay: lay.name)
def test_flops_count_every_tap_of_every_window(layer):
    # 2 per multiply-add: every (output channel, window, input channel of the group, tap)
    (n, c, *size), (c_out, c_g, *k) = layer.shapes(True)
    kw = layer.options(True)
    windows = convlib.im2col(torch.zeros(1, 1, *size), k, kw.get("dilation", 1), kw.get("padding", 0),
                             kw.get("stride", 1)).shape[-1]
    flops = bench.layer_flops(layer, quick=True)
    assert flops["forward"] == 2 * n * c_out * windows * c_g * math.prod(k)
    assert flops["forward_backward"] == 3 * flops["forward"]


@pytest.mark.parametrize("layer", [lay for lay in bench.ZOO if lay.transposed], ids=lambda lay: lay.name)
def test_a_transposed_layer_costs_what_its_convolution_costs(layer):
    # W^T makes the same multiply-adds as W: the convolution from the output back to the input
    (n, c, *size), w_shape = layer.shapes(True)
    kw = dict(layer.options(True))
    out = F.__dict__[layer.op](torch.empty(n, c, *size, device="meta"),
                               torch.empty(w_shape, device="meta"), **kw).shape
    kw.pop("output_padding", None)
    conv = bench.Layer("t", "", "", layer.op.replace("_transpose", ""), tuple(out), tuple(w_shape), kw)
    assert bench.layer_flops(layer, quick=True) == bench.layer_flops(conv)
    assert convlib.conv_output_size(tuple(out[2:]), tuple(w_shape[2:]), kw.get("stride", 1),
                                    kw.get("padding", 0)) == tuple(size)


@pytest.mark.parametrize("layer", bench.ZOO, ids=lambda lay: lay.name)
def test_the_layer_product_makes_every_multiply_add_once(layer):
    """The im2col product's shape, per group: g products of m x k x n make the layer's
    multiply-adds; for a convolution it is the shape of M and of convlib's columns."""
    shape = bench.layer_product(layer, quick=True)
    assert 2 * shape["groups"] * shape["m"] * shape["k"] * shape["n"] == bench.layer_flops(layer, True)["forward"]
    if not layer.transposed:
        (n, c, *size), (c_out, c_g, *k) = layer.shapes(True)
        kw = layer.options(True)
        cols = convlib.im2col(torch.zeros(n, c, *size), k, kw.get("dilation", 1), kw.get("padding", 0),
                              kw.get("stride", 1))  # (N, C * K, L)
        g = shape["groups"]
        assert (shape["m"], shape["k"], shape["n"]) == (c_out // g, cols.shape[1] // g, n * cols.shape[2])


def test_bytes_are_what_each_pass_reads_and_writes_once():
    layer = next(lay for lay in bench.ZOO if lay.name == "resnet_3x3")
    x, w, g, out = bench._tensors(layer, CPU, quick=True)
    nbytes = {"x": x.nbytes, "w": w.nbytes, "y": g.nbytes}
    b = bench.layer_bytes(layer, out, quick=True)
    assert b["forward"] == nbytes["x"] + nbytes["w"] + nbytes["y"]
    # backward: read dy, x and w, write dx and dw
    assert b["forward_backward"] == b["forward"] + nbytes["y"] + 2 * (nbytes["x"] + nbytes["w"])


def test_applicable_algorithms_are_read_from_what_ran():
    general = ["columns.conv_columns"]
    traces = {"im2col": general, "shifted": ["shifted.conv_shifted"], "winograd": general,
              "alias": ["shifted.conv_shifted"]}
    out = bench._applicable(traces)
    assert out["im2col"]["applies"] and out["shifted"]["applies"]
    assert not out["winograd"]["applies"]  # fell back to im2col
    assert not out["alias"]["applies"]  # the same code under another name


def test_ran_names_the_library_functions_outside_the_plumbing():
    x = torch.randn(1, 2, 5, 5, generator=bench._gen(0))
    ran = bench._ran(lambda: convlib.im2col(x, 3))
    assert "selection.im2col" in ran
    assert all(not name.startswith(("functional.", "backends.", "ops.")) for name in ran)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """The quick benchmark, run as a user runs it: ``python -m convlib.bench`` in its own
    process. (Run inside the test process it also changed what came after it: with the
    bench run first, the differential fuzz crashed inside torch's own backward of
    conv_transpose2d, even with convlib's functions replaced by torch's, and never
    without it. A fresh process keeps the tests independent of one another.)"""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run([sys.executable, "-m", "convlib.bench", "--quick", "--repeats", "2",
                           "--warmup", "1", "--devices", "cpu", "--layers", *LAYERS,
                           "--threads", str(torch.get_num_threads()),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "convlib / torch" in done.stdout + done.stderr  # the summary is printed
    return json.loads(out.read_text())


def test_report_names_the_machine(quick_report):
    assert quick_report["schema"] == bench.SCHEMA and quick_report["mode"] == "quick"
    m = quick_report["machine"]
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert m["products_by"] == ("oneDNN" if convlib.gemm.onednn_preferred() else "torch.matmul")
    assert m["torch_threads"] == torch.get_num_threads() and m["cpu_model"]
    assert m["algorithms"] == list(convlib.backends.ALGORITHMS)
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith(("flags", "Features"))).split(":")[1].split())
    assert m["isa_flags"] and set(m["isa_flags"]) <= flags
    cpu = quick_report["devices"]["cpu"]
    assert cpu["gemm"]["best_flops_per_s"] == max(cpu["gemm"]["routes"].values()) > 0
    # measured at the start and at the end of the run, the better kept
    assert cpu["gemm"]["best_flops_per_s"] == max(cpu["gemm"]["measurements"])
    assert len(cpu["gemm"]["measurements"]) == len(cpu["bandwidth_measurements"]) == 2
    assert cpu["bandwidth_bytes_per_s"] == max(cpu["bandwidth_measurements"]) > 0
    assert list(cpu["baselines"]) == ["torch", "torch_no_mkldnn"]


def test_every_layer_pass_reports_every_form(quick_report):
    cpu = quick_report["devices"]["cpu"]
    assert [rec["name"] for rec in cpu["layers"]] == LAYERS
    for rec in cpu["layers"]:
        applies = [alg for alg, a in rec["algorithms"].items() if a["applies"]]
        assert "im2col" in applies
        for pass_name in ("forward", "forward_backward"):
            p = rec[pass_name]
            assert set(p["forms"]) == {"convlib", "torch", "torch_no_mkldnn",
                                       *(f"convlib:{alg}" for alg in applies)}
            for name, form in p["forms"].items():
                assert form["agrees"] and form["max_abs_error"] <= 1e-3, (rec["name"], name)
                assert form["time_s"] == statistics.median(form["times_s"]) > 0
                assert math.isclose(form["gflops"], rec["flops"][pass_name] / form["time_s"] / 1e9)
                for base, ratio in p["ratios"][name].items():
                    paired = [a / b for a, b in zip(form["times_s"], p["forms"][base]["times_s"])]
                    assert math.isclose(ratio, statistics.median(paired))
            assert p["ran"] and (p["chosen"] is None
                                 or set(p["chosen"].split("+")) <= set(rec["algorithms"]))
            compute = rec["flops"][pass_name] / cpu["gemm"]["best_flops_per_s"]
            memory = rec["bytes"][pass_name] / cpu["bandwidth_bytes_per_s"]
            assert p["floor_s"] == max(compute, memory)
            shape_rate = rec["gemm_at_shape"]["best_flops_per_s"]
            assert shape_rate == max(rec["gemm_at_shape"]["routes"].values()) > 0
            assert p["floor_at_shape_s"] == max(rec["flops"][pass_name] / shape_rate, memory)
            assert p["floor_bound"] == ("compute" if compute >= memory else "memory")


def test_peak_memory_holds_at_least_the_results(quick_report):
    for rec in quick_report["devices"]["cpu"]["layers"]:
        out = 4 * math.prod(rec["output"])
        grads = 4 * (math.prod(rec["input"]) + math.prod(rec["weight"]))
        for form in ("convlib", "torch", "torch_no_mkldnn"):
            assert rec["peak_memory_bytes"]["forward"][form] >= out
            assert rec["peak_memory_bytes"]["forward_backward"][form] >= grads


def test_sparse_matrix_bytes_are_counted_exactly(quick_report):
    a = quick_report["devices"]["cpu"]["matrix"]["apply"]
    n = a["image"][0]  # a 3x3 kernel: (n - 2)^2 rows, 9 entries a row
    rows, nnz = (n - 2) ** 2, 9 * (n - 2) ** 2
    assert a["nnz"] == nnz
    assert a["values_and_columns_bytes"] == nnz * (4 + 4)  # float32 values + int32 columns
    assert a["csr_bytes"] == nnz * (4 + 4) + (rows + 1) * 4  # + int32 row pointers


def test_scaling_rows_cover_every_method(quick_report):
    for row in quick_report["devices"]["cpu"]["matrix"]["scaling"]["rows"]:
        for method in ("F.conv2d", "convlib.conv2d", "sparse W @ x", "build sparse W", "dense W @ x"):
            assert row[method] > 0


def test_table_and_summary_print_every_layer(quick_report):
    table = bench.format_table(quick_report)
    for name in LAYERS:
        assert table.count(name) == 2  # forward and forward + backward
    text = bench.summary(quick_report)
    assert "convlib / torch max" in text
    cpu = quick_report["devices"]["cpu"]
    assert text.splitlines()[0] == bench.machine_line(quick_report)
    assert cpu["name"] in text and quick_report["machine"]["cpu_capability"] in text
    assert f"GEMM {cpu['gemm']['best_flops_per_s'] / 1e9:.0f} GFLOP/s" in text
    for rec in cpu["layers"]:  # one line per layer, starting with its ratio against torch
        line = next(line for line in text.splitlines() if line.startswith(rec["name"]))
        assert line.split()[1] == f"{rec['forward']['ratios']['convlib']['torch']:.2f}"
    assert quick_report["elapsed_s"] >= sum(rec["elapsed_s"] for rec in cpu["layers"]) > 0


def test_new_algorithms_are_picked_up_and_timed_only_where_they_apply(monkeypatch):
    # an algorithm registered in ALGORITHMS is traced on every layer; this one falls back to
    # im2col everywhere (choose() sends every unknown forced name there), so it is not timed
    monkeypatch.setattr(convlib.backends, "ALGORITHMS", (*convlib.backends.ALGORITHMS, "newcomer"))
    layer = next(lay for lay in bench.ZOO if lay.name == "resnet_3x3")
    rec = bench._time_layer(layer, CPU, quick=True, repeats=1, warmup=0, min_time=0,
                            gemm_rate=1e9, bandwidth=1e9)
    assert set(rec["algorithms"]) == set(convlib.backends.ALGORITHMS) - {"auto"}
    assert rec["algorithms"]["newcomer"]["ran"] == rec["algorithms"]["im2col"]["ran"]
    assert not rec["algorithms"]["newcomer"]["applies"]
    for pass_name in ("forward", "forward_backward"):
        forms = rec[pass_name]["forms"]
        assert "convlib:newcomer" not in forms and "convlib:im2col" in forms
        assert set(rec[pass_name]["chosen"].split("+")) <= set(rec["algorithms"])  # one, or a mix


def test_an_algorithm_that_refuses_a_layer_is_recorded_and_not_timed(monkeypatch):
    monkeypatch.setattr(convlib.backends, "ALGORITHMS", (*convlib.backends.ALGORITHMS, "picky"))
    use = convlib.backends.use

    def strict(algorithm):
        if algorithm == "picky":
            raise NotImplementedError("picky: not this layer")
        return use(algorithm)

    monkeypatch.setattr(convlib.backends, "use", strict)
    layer = next(lay for lay in bench.ZOO if lay.name == "unet_up")
    rec = bench._time_layer(layer, CPU, quick=True, repeats=1, warmup=0, min_time=0,
                            gemm_rate=1e9, bandwidth=1e9)
    picky = rec["algorithms"]["picky"]
    assert not picky["applies"] and picky["ran"] == []
    assert picky["refused"] == "NotImplementedError: picky: not this layer"
    assert "convlib:picky" not in rec["forward"]["forms"] and rec["forward"]["forms"]["convlib:im2col"]["agrees"]


def test_a_mixed_choice_is_named_by_the_modules_that_ran():
    ran = ["columns.weight_grad_columns", "selection.windows", "shifted.conv_shifted"]
    assert bench.ran_algorithms(ran) == "im2col+shifted"
    assert bench.ran_algorithms(["selection.windows"]) is None
