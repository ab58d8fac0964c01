"""convlib.gemm: the matrix products by oneDNN where that route applies, by torch.matmul
elsewhere, with the same values either way (against a float64 reference), and the rule
that decides which route a product takes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib import gemm
from test_no_conv_ops import OpRecorder

needs_onednn = pytest.mark.skipif(not gemm.onednn_available(),
                                  reason="torch's oneDNN matrix product is not available here")


@pytest.fixture(autouse=True)
def onednn_route_wherever_available(monkeypatch):
    """The route is taken on AVX-512 CPUs only (gemm.onednn_preferred); these tests check
    its values and its rule on any CPU that has the operator."""
    monkeypatch.setattr(gemm, "onednn_preferred", lambda: gemm.onednn_available())


def _onednn_ran(fn) -> tuple[object, bool]:
    with OpRecorder() as rec:  # it looks inside convlib's own operators too
        result = fn()
    return result, any("_linear_pointwise" in n for n in rec.ops)


def _close_to_float64(result, a, b):
    expected = torch.matmul(a.double(), b.double())
    assert result.dtype == torch.float32 and result.shape == expected.shape
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-4)


def _layouts(m, k, n, gen):
    """(a, b) pairs of one product in every layout convlib's forms make."""
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(k, n, generator=gen)
    yield "contiguous", a, b
    yield "b transposed", a, torch.randn(n, k, generator=gen).mT
    yield "a transposed", torch.randn(k, m, generator=gen).mT, b
    yield "both transposed", torch.randn(k, m, generator=gen).mT, torch.randn(n, k, generator=gen).mT
    padded = torch.randn(k, n + 5, generator=gen)[:, :n]  # b row-padded: a is the dense one
    yield "b row-padded", a, padded
    yield "a row-padded", torch.randn(m, k + 3, generator=gen)[:, :k], b


@needs_onednn
@pytest.mark.parametrize("m, k, n", [(64, 48, 40), (37, 16, 129), (300, 75, 3)])
def test_matmul_by_onednn_is_the_product(m, k, n):
    gen = torch.Generator().manual_seed(m * k * n)
    for name, a, b in _layouts(m, k, n, gen):
        result, ran = _onednn_ran(lambda: gemm.matmul(a, b))
        assert ran == gemm.uses_onednn(a, b), name
        assert ran, name  # big enough, and one operand dense in each layout: oneDNN takes it
        _close_to_float64(result, a, b)


@needs_onednn
@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 48, 32), (32, 50)),        # a batch against one matrix: folded into one product
    ((3, 48, 32), (3, 32, 50)),     # a batch of pairs
    ((2, 1, 48, 32), (3, 32, 50)),  # broadcast batch dimensions
    ((48, 32), (4, 32, 50)),        # one left matrix against a batch
])
def test_batched_matmul_broadcasts_as_torch_does(a_shape, b_shape):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(a_shape, generator=gen), torch.randn(b_shape, generator=gen)
    result, ran = _onednn_ran(lambda: gemm.matmul(a, b))
    assert ran
    _close_to_float64(result, a, b)
    b_t = torch.randn(*b_shape[:-2], b_shape[-1], b_shape[-2], generator=gen).mT  # b as a view
    _close_to_float64(gemm.matmul(a, b_t), a, b_t)


@needs_onednn
def test_matmul_writes_into_out():
    gen = torch.Generator().manual_seed(1)
    for a, b in [(torch.randn(64, 32, generator=gen), torch.randn(32, 48, generator=gen)),
                 (torch.randn(2, 64, 32, generator=gen), torch.randn(2, 32, 48, generator=gen))]:
        out = torch.full((*a.shape[:-1], 48), float("nan"))
        assert gemm.matmul(a, b, out=out) is out
        _close_to_float64(out, a, b)
    out = torch.empty(48, 64).mT  # a non-contiguous out is written in place too
    a, b = torch.randn(64, 32, generator=gen), torch.randn(32, 48, generator=gen)
    gemm.matmul(a, b, out=out)
    _close_to_float64(out, a, b)


def _big():
    gen = torch.Generator().manual_seed(2)
    return torch.randn(64, 64, generator=gen), torch.randn(64, 64, generator=gen)


@needs_onednn
def test_which_products_stay_with_torch_matmul():
    a, b = _big()
    assert gemm.uses_onednn(a, b)
    assert not gemm.uses_onednn(a.double(), b.double())  # float32 only
    assert not gemm.uses_onednn(a.half(), b.half())
    assert not gemm.uses_onednn(a[:4, :4], b[:4, :4])  # too few multiply-adds
    assert not gemm.uses_onednn(a[:, :gemm.MIN_REDUCTION - 1], b[:gemm.MIN_REDUCTION - 1])
    assert gemm.uses_onednn(a[:, :gemm.MIN_REDUCTION], b[:gemm.MIN_REDUCTION])
    assert not gemm.uses_onednn(a[:, 0], b)  # a vector
    assert not gemm.uses_onednn(a.to_sparse(), b)  # not strided
    assert not gemm.uses_onednn(torch.randn(64, 80)[:, ::2][:, :32].mT, torch.randn(64, 96)[:, ::3])
    leaf = a.clone().requires_grad_()
    assert not gemm.uses_onednn(leaf, b)  # autograd would have to see through it
    with torch.no_grad():
        assert gemm.uses_onednn(leaf, b)
    with torch.backends.mkldnn.flags(enabled=False):  # the switch for torch's convolutions too
        assert not gemm.uses_onednn(a, b)
        result, ran = _onednn_ran(lambda: gemm.matmul(a, b))
        assert not ran
        _close_to_float64(result, a, b)


def test_without_onednn_every_product_is_torch_matmul(monkeypatch):
    """Where the capability check fails, the products are torch.matmul's, bit for bit."""
    monkeypatch.setattr(gemm, "onednn_available", lambda: False)
    a, b = _big()
    for x, y in [(a, b), (a.expand(3, 64, 64), b), (a, b.mT)]:
        assert not gemm.uses_onednn(x, y)
        result, ran = _onednn_ran(lambda: gemm.matmul(x, y))
        assert not ran and torch.equal(result, torch.matmul(x, y))


@pytest.mark.parametrize("vendor", ["GenuineIntel", "AuthenticAMD", None])
@pytest.mark.parametrize("mkl", [True, False])
@pytest.mark.parametrize("capability", ["AVX512", "AVX2", "DEFAULT"])
def test_onednn_is_preferred_only_with_avx512_and_no_mkl_avx512(capability, mkl, vendor, monkeypatch):
    """Without AVX-512 the products stay with torch.matmul (MKL's AVX2 code was faster than
    oneDNN's), and on Intel CPUs with MKL too (MKL runs its AVX-512 code there): the rule
    reads torch's own dispatch capability, its BLAS and the CPU's vendor."""
    monkeypatch.undo()  # this test checks the real rule
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: mkl)
    monkeypatch.setattr(convlib.cpu, "vendor", lambda: vendor)
    gemm.onednn_preferred.cache_clear()
    try:
        mkl_avx512 = mkl and vendor == "GenuineIntel"
        expected = capability == "AVX512" and not mkl_avx512 and gemm.onednn_available()
        assert gemm.onednn_preferred() == expected
        a, b = _big()
        assert gemm.uses_onednn(a, b) == expected
    finally:
        monkeypatch.undo()
        gemm.onednn_preferred.cache_clear()


def test_capability_check_is_the_operator_that_runs():
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    assert gemm.onednn_available() == (op is not None and torch.backends.mkldnn.is_available())


@needs_onednn
def test_fast_gemm_sends_stride_1_layers_to_im2col():
    g1 = convlib.Geometry((1, 1), ((1, 1), (1, 1)), (1, 1))
    choose, k3 = convlib.backends.choose, dict(kernel_size=(3, 3))
    assert choose(g1, **k3) == "shifted"
    assert choose(g1, fast_gemm=True, **k3) == "im2col"
    assert choose(g1, fast_gemm=True, product="weight_grad", **k3) == "im2col"
    with convlib.backends.use("shifted"):  # forcing still wins
        assert choose(g1, fast_gemm=True, **k3) == "shifted"
    fast, c = convlib.backends._fast_gemm, convlib.backends.FAST_GEMM_MIN_CHANNELS
    x = torch.randn(1, 2 * c, 5, 5)
    assert fast(x, torch.randn(c, c, 3, 3), 1)
    assert fast(x, torch.randn(2 * c, c, 3, 3), 2)
    assert not fast(x, torch.randn(2 * c, c // 2, 3, 3), 4)  # too few channels per group
    assert not fast(x, torch.randn(c - 1, c, 3, 3), 1)
    assert not fast(x.double(), torch.randn(c, c, 3, 3).double(), 1)
    gy = torch.randn(1, c, 5, 5)
    assert fast(x, gy, 1, (c, 2 * c, 3, 3))  # the weight gradient: the weight's shape decides
    assert not fast(x, gy, 2, (c, c, 3, 3))


@needs_onednn
def test_convolution_through_onednn_matches_float64():
    """A layer big enough for the route: its values and gradients are the float64 ones,
    to float32 rounding, whichever form the rule picks."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 32, 12, 12, generator=gen, requires_grad=True)
    w = torch.randn(32, 32, 3, 3, generator=gen, requires_grad=True)
    gy = torch.randn(2, 32, 12, 12, generator=gen)
    (y, ran) = _onednn_ran(lambda: convlib.conv2d(x, w, padding=1))
    assert ran
    gx, gw = torch.autograd.grad(y, (x, w), gy)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    y64 = F.conv2d(x64, w64, padding=1)
    gx64, gw64 = torch.autograd.grad(y64, (x64, w64), gy.double())
    for ours, ref in [(y, y64), (gx, gx64), (gw, gw64)]:
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("d, stride, padding, dilation", [
    (1, 1, ((2, 2),), 3), (1, 2, ((0, 1),), 1),
    (2, 1, ((1, 1), (1, 1)), 1), (2, (2, 1), ((1, 0), (2, 2)), (1, 2)), (2, 1, ((0, 0), (0, 0)), 1),
    (3, 1, ((1, 1),) * 3, 1), (3, 2, ((0, 1), (1, 0), (1, 1)), (2, 1, 1)),
])
@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("chunk", ["two samples", "two steps of the first axis"])
def test_columns_one_window_per_row_are_the_convolution(d, stride, padding, dilation, last, chunk,
                                                        monkeypatch):
    """conv_columns_last against torch, in float64 (any route), with chunks of two samples
    and a short last one, or of two or three positions of the first output axis of one
    sample (and a short last one), returning either layout."""
    gen = torch.Generator().manual_seed(d)
    n, c_in, c_out, size, k = 5, 3, 4, (9, 8, 7)[:d], (3, 2, 3)[:d]
    x = torch.randn(n, c_in, *size, generator=gen, dtype=torch.float64)
    w = torch.randn(c_out, c_in, *k, generator=gen, dtype=torch.float64)
    as_tuple = (lambda v: (v,) * d if isinstance(v, int) else v)
    geometry = convlib.Geometry(as_tuple(stride), padding, as_tuple(dilation))
    out = geometry.output_size(size, k)
    per_step = c_in * math.prod(k) * math.prod(out[1:])  # the columns of one step of the first axis
    steps = 2 * out[0] if chunk == "two samples" else (2 if out[0] % 2 else 3)
    assert chunk == "two samples" or steps < out[0]  # and a short last chunk
    monkeypatch.setattr(convlib.columns, "CHUNK_BYTES", steps * per_step * 8)
    assert convlib.columns.samples_per_chunk(x, per_step * out[0]) == (2 if chunk == "two samples" else 1)
    y = convlib.columns.conv_columns_last(x, w, geometry, last)
    padded = F.pad(x, [p for pair in reversed(padding) for p in pair])
    expected = getattr(F, f"conv{d}d")(padded, w, None, as_tuple(stride), 0, as_tuple(dilation))
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    channels_last = y.permute(0, *range(2, 2 + d), 1).is_contiguous()
    assert channels_last == last and (last or y.is_contiguous())


@needs_onednn
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_oneDNN_layers_keep_torchs_layout_and_values(memory_format):
    """A layer whose im2col product goes to oneDNN with one window per row: torch's
    values, gradients and output layout, for either input layout."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 32, 10, 10, generator=gen).contiguous(memory_format=memory_format)
    w = torch.randn(24, 32, 3, 3, generator=gen)
    b = torch.randn(24, generator=gen)
    assert convlib.backends._not_one_sample_per_chunk(x, w, convlib.Geometry((1, 1), ((1, 1),) * 2, (1, 1)))
    calls = []
    original = convlib.backends.conv_columns_last
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convlib.backends, "conv_columns_last", lambda *a: calls.append(1) or original(*a))
        ours = convlib.conv2d(x, w, b, 1, 1)
    assert calls  # the path under test ran
    theirs = F.conv2d(x, w, b, 1, 1)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
    assert ours.stride() == theirs.stride()


def _counting(monkeypatch, name):
    calls, original = [], getattr(convlib.backends, name)
    monkeypatch.setattr(convlib.backends, name, lambda *a: calls.append(1) or original(*a))
    return calls


@needs_onednn
@pytest.mark.parametrize("padding, dilation", [(1, 1), (0, 2), ((2, 0), 1), (3, (1, 2))])
def test_stride_1_transpose_is_computed_as_a_convolution(padding, dilation, monkeypatch):
    """With oneDNN's products, a stride-1 transposed convolution (the input gradient of a
    stride-1 layer) is the convolution of as_convolution by im2col: torch's values, against
    float64."""
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(3, 32, 9, 8, generator=gen)
    w = torch.randn(32, 24, 3, 3, generator=gen)
    b = torch.randn(24, generator=gen)
    calls = _counting(monkeypatch, "as_convolution")
    ours = convlib.conv_transpose2d(y, w, b, 1, padding, 0, 1, dilation)
    assert calls
    theirs = F.conv_transpose2d(y.double(), w.double(), b.double(), 1, padding, 0, 1, dilation)
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_stride_1_transpose_with_an_infinite_weight_keeps_torchs_nans(monkeypatch):
    """The convolution multiplies padding zeros by the weights (0 * inf = nan), which the
    transpose does not: with a weight that is not finite, col2im computes it, as torch."""
    gen = torch.Generator().manual_seed(6)
    y = torch.randn(2, 32, 7, 7, generator=gen)
    w = torch.randn(32, 24, 3, 3, generator=gen)
    w[3, 5, 0, 2] = float("inf")
    calls = _counting(monkeypatch, "as_convolution")
    ours = convlib.conv_transpose2d(y, w, None, 1, 1)
    assert not calls
    theirs = F.conv_transpose2d(y, w, None, 1, 1)
    assert torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(ours.isinf(), theirs.isinf())
    finite = theirs.isfinite()
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=1e-4, atol=1e-4)


def test_one_window_per_row_unless_a_chunk_is_exactly_one_sample(monkeypatch):
    x, w = torch.randn(4, 32, 10, 10), torch.randn(24, 32, 3, 3)
    geometry = convlib.Geometry((1, 1), ((1, 1),) * 2, (1, 1))
    sample = 32 * 9 * 100 * 4  # one sample's columns, in bytes
    rule = convlib.backends._not_one_sample_per_chunk
    for chunk, expected in [(2 * sample, True), (sample, False), (2 * sample - 1, False), (sample - 1, True)]:
        monkeypatch.setattr(convlib.columns, "CHUNK_BYTES", chunk)
        assert rule(x, w, geometry) == expected, chunk


@pytest.mark.parametrize("d, stride, padding, dilation", [
    (1, 1, ((2, 2),), 3), (2, (2, 1), ((1, 0), (2, 2)), (1, 2)), (2, 1, ((1, 1), (1, 1)), 1),
    (3, 2, ((0, 1), (1, 0), (1, 1)), (2, 1, 1)),
])
@pytest.mark.parametrize("chunk", ["two samples", "two steps of the first axis"])
@pytest.mark.parametrize("fewer", [False, True])
def test_weight_gradient_with_one_window_per_row(d, stride, padding, dilation, chunk, fewer, monkeypatch):
    """weight_grad_columns_last against torch's weight gradient in float64, in both kinds of
    chunk; with ``fewer``, G covers only the first windows (as a transposed convolution's
    output_padding leaves it), and the others are not used."""
    gen = torch.Generator().manual_seed(7 + d)
    n, c_in, c_out, size, k = 3, 3, 4, (9, 8, 7)[:d], (3, 2, 3)[:d]
    as_tuple = (lambda v: (v,) * d if isinstance(v, int) else v)
    geometry = convlib.Geometry(as_tuple(stride), padding, as_tuple(dilation))
    x = torch.randn(n, c_in, *size, generator=gen, dtype=torch.float64)
    out = geometry.output_size(size, k)
    gy_out = [o - 1 for o in out] if fewer else out
    gy = torch.randn(n, c_out, *gy_out, generator=gen, dtype=torch.float64)
    per_step = c_in * math.prod(k) * math.prod(gy_out[1:])
    monkeypatch.setattr(convlib.columns, "CHUNK_BYTES",
                        (2 * gy_out[0] if chunk == "two samples" else 2) * per_step * 8)
    gw = convlib.columns.weight_grad_columns_last(x, gy, (c_out, c_in, *k), geometry)
    padded = F.pad(x, [p for pair in reversed(padding) for p in pair]).requires_grad_()
    w = torch.zeros(c_out, c_in, *k, dtype=torch.float64, requires_grad=True)
    y = getattr(F, f"conv{d}d")(padded, w, None, as_tuple(stride), 0, as_tuple(dilation))
    expected, = torch.autograd.grad(y[(Ellipsis, *(slice(0, o) for o in gy_out))], w, gy)
    torch.testing.assert_close(gw, expected, rtol=1e-12, atol=1e-12)
    assert gw.is_contiguous()


@pytest.mark.parametrize("d, stride, padding, output_padding, dilation", [
    (1, 2, 1, 1, 1), (1, 1, 0, 0, 2), (2, 2, 1, 0, 1), (2, (2, 3), (0, 2), (1, 2), (1, 1)),
    (2, 1, 1, 0, (2, 1)), (3, 2, (1, 0, 1), (1, 0, 0), 1),
])
@pytest.mark.parametrize("last", [False, True])
def test_transpose_with_one_row_per_input_position(d, stride, padding, output_padding, dilation, last,
                                                   monkeypatch):
    """conv_transpose_columns_last against torch in float64, in chunks of two samples and a
    short last one, returning either layout."""
    gen = torch.Generator().manual_seed(11 + d)
    n, c_in, c_out, size, k = 5, 3, 4, (6, 5, 4)[:d], (3, 2, 4)[:d]
    y = torch.randn(n, c_in, *size, generator=gen, dtype=torch.float64)
    w = torch.randn(c_in, c_out, *k, generator=gen, dtype=torch.float64)
    as_tuple = (lambda v: (v,) * d if isinstance(v, int) else v)
    geometry = convlib.Geometry(as_tuple(stride), tuple((p, p) for p in as_tuple(padding)), as_tuple(dilation),
                                output_padding=as_tuple(output_padding))
    monkeypatch.setattr(convlib.columns, "CHUNK_BYTES", 2 * math.prod(size) * math.prod(k) * c_out * 8)
    z = convlib.columns.conv_transpose_columns_last(y, w, geometry, last)
    expected = getattr(F, f"conv_transpose{d}d")(y, w, None, as_tuple(stride), as_tuple(padding),
                                                 as_tuple(output_padding), 1, as_tuple(dilation))
    torch.testing.assert_close(z, expected, rtol=1e-12, atol=1e-12)
    channels_last = z.permute(0, *range(2, 2 + d), 1).is_contiguous()
    assert channels_last == last and (last or z.is_contiguous())
