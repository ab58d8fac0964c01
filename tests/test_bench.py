"""The benchmark code runs and measures what it says, on tiny sizes. No time is asserted."""

import json
import math

import pytest
import torch

from convlib import bench


def test_time_call_returns_the_median_of_positive_times():
    calls = []
    t = bench.time_call(lambda: calls.append(1), torch.device("cpu"), repeats=5, warmup=2)
    assert t > 0 and len(calls) == 7


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    report = bench.main(["--quick", "--repeats", "1", "--devices", "cpu", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    return report


def test_every_case_reports(quick_report):
    cases = " ".join(r["case"] for r in quick_report["results"])
    for word in ("build", "apply", "bytes", "conv2d", "conv_transpose2d", "forward+backward",
                 "peak memory", "scaling"):
        assert word in cases
    assert quick_report["machine"]["memory_bandwidth_bytes_per_s"]["cpu"] > 0


def test_ratios_are_ours_over_baseline(quick_report):
    for r in quick_report["results"]:
        if not r["extra"].get("rows"):
            assert r["ours_s"] > 0 and r["baseline_s"] > 0
            assert math.isclose(r["ratio"], r["ours_s"] / r["baseline_s"])


def test_sparse_matrix_bytes_are_counted_exactly(quick_report):
    (r,) = [r for r in quick_report["results"] if r["case"].startswith("bytes held")]
    n = 64  # the quick size: a 62 x 62 output, 9 entries a row
    rows, nnz = (n - 2) ** 2, 9 * (n - 2) ** 2
    assert r["extra"]["nnz"] == nnz
    assert r["baseline_s"] == nnz * (4 + 4)             # float32 values + int32 columns
    assert r["ours_s"] == nnz * (4 + 4) + (rows + 1) * 4  # + int32 row pointers


def test_scaling_rows_cover_every_method(quick_report):
    (r,) = [r for r in quick_report["results"] if r["extra"].get("rows")]
    for row in r["extra"]["rows"]:
        for method in ("F.conv2d", "convlib.conv2d", "sparse W @ x", "build sparse W", "dense W @ x"):
            assert row[method] > 0


def test_table_prints_every_timed_case(quick_report):
    table = bench.format_table(quick_report)
    assert table.count("\n") >= len(quick_report["results"])
