"""Chapters 1-4, 6, 9, 10: the grids behind claims made with one illustrative case and one sentence.

Each test names the chapter and the sentence it backs. The chapters keep a single case in a
visible cell; the full grid lives here, so the claim is still checked on every case.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import convlib

# The running example of chapters 1 to 4.
X = torch.arange(30, dtype=torch.float32).reshape(5, 6)
K = torch.arange(8, dtype=torch.float32).reshape(2, 4)


def conv(x, k, **kwargs):
    """PyTorch's 2-d convolution of one single-channel array with one kernel."""
    with warnings.catch_warnings():  # torch warns that 'same' with an even kernel copies the input
        warnings.filterwarnings("ignore", "Using padding='same'")
        return F.conv2d(x[None, None], k[None, None], **kwargs)[0, 0]


def dilate(kernel, dilation):
    """The kernel with dilation - 1 zeros inserted between neighbouring taps (chapter 4)."""
    (k_h, k_w), (dil_h, dil_w) = kernel.shape, dilation
    out = kernel.new_zeros(dil_h * (k_h - 1) + 1, dil_w * (k_w - 1) + 1)
    out[::dil_h, ::dil_w] = kernel
    return out


def w_from_plain(kernel, size, stride, padding, dilation):
    """Chapter 4's construction: the plain W (the teaching loop, no hyper-parameters) of the
    dilated kernel on the zero-padded input, with the rows the stride skips and the columns of
    the padding deleted."""
    (top, bottom), (left, right) = convlib.resolve_padding(padding, kernel.shape, stride, dilation)
    padded = (size[0] + top + bottom, size[1] + left + right)
    real = torch.arange(padded[0] * padded[1]).reshape(padded)[top:top + size[0], left:left + size[1]]
    k_dil = dilate(kernel, dilation)
    w_big = convlib.kernel_matrix_loop(k_dil, padded)
    o = (padded[0] - k_dil.shape[0] + 1, padded[1] - k_dil.shape[1] + 1)
    kept = torch.arange(o[0] * o[1]).reshape(o)[::stride[0], ::stride[1]].flatten()
    return w_big[kept][:, real.flatten()]


def running_example_settings():
    """Chapter 4: strides 1 to 3, paddings 0, 1, 'same', 'valid', dilations 1 and 2 per axis,
    wherever PyTorch accepts them and the dilated kernel fits."""
    for s_h, s_w, dil_h, dil_w in itertools.product([1, 2, 3], [1, 2, 3], [1, 2], [1, 2]):
        for padding in [0, 1, "same", "valid"]:
            if padding == "same" and (s_h, s_w) != (1, 1):
                continue  # PyTorch refuses 'same' with a stride
            hp = dict(stride=(s_h, s_w), padding=padding, dilation=(dil_h, dil_w))
            pads = convlib.resolve_padding(padding, K.shape, hp["stride"], hp["dilation"])
            if min(convlib.conv_output_size(X.shape, K.shape, hp["stride"], pads, hp["dilation"])) >= 1:
                yield hp


def test_chapter_4_grid_of_the_running_example_has_76_settings():
    assert len(list(running_example_settings())) == 76


@pytest.mark.parametrize("hp", list(running_example_settings()), ids=str)
def test_chapter_4_hyper_parameters_are_row_and_column_deletion(hp):
    """thm-hyper-parameters, on all 76 settings of the running example."""
    w_rule = w_from_plain(K, X.shape, **hp)
    torch.testing.assert_close(convlib.kernel_matrix(K, X.shape, sparse=False, **hp), w_rule, rtol=0, atol=0)
    y = conv(X, K, **hp)
    torch.testing.assert_close((w_rule @ X.flatten()).reshape(y.shape), y, rtol=0, atol=0)


# Dumoulin and Visin's relationships (chapter 4's table): when each applies, and its output size.
RELATIONSHIPS = {
    "no zero padding, unit strides": (lambda i, k, s, p, dil: s == 1 and p == 0 and dil == 1,
                                      lambda i, k, s, p, dil: (i - k) + 1),
    "zero padding, unit strides": (lambda i, k, s, p, dil: s == 1 and dil == 1,
                                   lambda i, k, s, p, dil: (i - k) + 2 * p + 1),
    "half (same) padding": (lambda i, k, s, p, dil: s == 1 and dil == 1 and k % 2 == 1 and p == k // 2,
                            lambda i, k, s, p, dil: i),
    "full padding": (lambda i, k, s, p, dil: s == 1 and dil == 1 and p == k - 1,
                     lambda i, k, s, p, dil: i + (k - 1)),
    "no zero padding, non-unit strides": (lambda i, k, s, p, dil: p == 0 and dil == 1,
                                          lambda i, k, s, p, dil: (i - k) // s + 1),
    "zero padding, non-unit strides": (lambda i, k, s, p, dil: dil == 1,
                                       lambda i, k, s, p, dil: (i + 2 * p - k) // s + 1),
    "dilated convolution": (lambda i, k, s, p, dil: True,
                            lambda i, k, s, p, dil: (i + 2 * p - k - (k - 1) * (dil - 1)) // s + 1),
}
#: (settings covered, settings PyTorch refuses) per line, on the grid below
EXPECTED_COUNTS = {
    "no zero padding, unit strides": (60, 10),
    "zero padding, unit strides": (300, 13),
    "half (same) padding": (36, 0),
    "full padding": (60, 0),
    "no zero padding, non-unit strides": (240, 40),
    "zero padding, non-unit strides": (1200, 52),
    "dilated convolution": (3600, 536),
}
GRID = list(itertools.product(range(1, 13), range(1, 6), range(1, 5), range(5), range(1, 4)))


@pytest.fixture(scope="module")
def torch_output_sizes():
    """F.conv1d's output size for every (i, k, s, p, dil) of the grid; None where it refuses."""
    sizes = {}
    for i, k, s, p, dil in GRID:
        try:
            out = F.conv1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), stride=s, padding=p, dilation=dil)
            sizes[i, k, s, p, dil] = out.shape[-1]
        except RuntimeError:
            sizes[i, k, s, p, dil] = None
    return sizes


@pytest.mark.parametrize("name", RELATIONSHIPS)
def test_chapter_4_dumoulin_visin_relationships_on_the_grid(name, torch_output_sizes):
    """Every line of the table holds on every setting of the grid it applies to, and PyTorch
    refuses exactly where the formula gives o < 1 (3,600 settings, 5,496 (line, setting) pairs)."""
    applies, formula = RELATIONSHIPS[name]
    cases = [hp for hp in GRID if applies(*hp)]
    for hp in cases:
        o = formula(*hp)
        assert torch_output_sizes[hp] == (o if o >= 1 else None), hp
        if o >= 1:
            assert convlib.conv_output_size(*hp[:3], padding=hp[3], dilation=hp[4]) == (o,), hp
    refused = sum(torch_output_sizes[hp] is None for hp in cases)
    assert (len(cases), refused) == EXPECTED_COUNTS[name]


def test_chapter_4_grid_sizes():
    assert len(GRID) == 3600
    assert sum(n for n, _ in EXPECTED_COUNTS.values()) == 5496


@pytest.mark.parametrize("i, k, dil", list(itertools.product(range(1, 13), range(1, 6), range(1, 4))))
def test_chapter_4_same_padding_keeps_the_size(i, k, dil):
    """PyTorch's padding='same' gives o = i for every kernel (even ones too) and dilation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using padding='same'")
        out = F.conv1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), padding="same", dilation=dil)
    assert out.shape[-1] == i
    pads = convlib.resolve_padding("same", (k,), (1,), (dil,))
    assert convlib.conv_output_size(i, k, 1, pads, dil) == (i,)
    assert sum(pads[0]) == dil * (k - 1) and pads[0][0] == dil * (k - 1) // 2  # smaller half before


def test_chapter_4_random_2d_layers_follow_the_formula_per_axis():
    """200 random 2-d layers, each axis with its own i, k, s, p, dilation."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        i_hw, k_hw, s_hw, p_hw, dil_hw = (tuple(torch.randint(lo, hi, (2,), generator=gen).tolist())
                                          for lo, hi in [(6, 16), (1, 4), (1, 4), (0, 3), (1, 3)])
        out = F.conv2d(torch.zeros(1, 1, *i_hw), torch.zeros(1, 1, *k_hw),
                       stride=s_hw, padding=p_hw, dilation=dil_hw)
        per_axis = tuple((i + 2 * p - k - (k - 1) * (dil - 1)) // s + 1
                         for i, k, s, p, dil in zip(i_hw, k_hw, s_hw, p_hw, dil_hw))
        assert tuple(out.shape[-2:]) == per_axis
        assert convlib.conv_output_size(i_hw, k_hw, s_hw, p_hw, dil_hw) == per_axis


def tensorflow_same_pads(i, k, s, dil=1):
    """TensorFlow's padding="SAME": o = ceil(i / s), and the zeros the last window needs, the
    smaller half before the input."""
    o = math.ceil(i / s)
    total = max((o - 1) * s + dil * (k - 1) + 1 - i, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("i, k, s", list(itertools.product(range(1, 20), [1, 3, 5, 7], range(1, 5))))
def test_chapter_4_pytorch_half_padding_has_tensorflow_same_sizes_not_always_its_values(i, k, s):
    """sec-tf-same and ex-same-stride: padding=k // 2 gives TensorFlow's sizes for every odd k
    and stride; its values differ exactly when TensorFlow pads fewer zeros before the input,
    which for k > 1 is when r = (i - 1) mod s is not 0."""
    x = torch.arange(1.0, i + 1, dtype=torch.float64)
    w = torch.arange(1.0, k + 1, dtype=torch.float64)  # not symmetric: any shift shows
    before, after = tensorflow_same_pads(i, k, s)
    r = (i - 1) % s
    assert before + after == max(k - 1 - r, 0)
    tf = F.conv1d(F.pad(x, (before, after))[None, None], w[None, None], stride=s)[0, 0]
    pt = F.conv1d(x[None, None], w[None, None], stride=s, padding=k // 2)[0, 0]
    assert tf.shape == pt.shape == (math.ceil(i / s),)
    differs = k > 1 and r != 0
    assert (before != k // 2) == differs
    assert (not torch.equal(tf, pt)) == differs


def test_chapter_4_tensorflow_same_example():
    """The chapter's case: i = 4, k = 3, s = 2 pads (0, 1) in TensorFlow, (1, 1) in PyTorch."""
    assert tensorflow_same_pads(4, 3, 2) == (0, 1)


CONV_ND = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def test_chapter_10_random_layers_in_one_two_and_three_dimensions():
    """Chapter 10, "Everything at once": 20 random layers per dimension (channels, groups,
    stride, padding including 'same', dilation), W @ vec(x) against torch in float64."""
    gen = torch.Generator().manual_seed(0)

    def draw(low, high, d):
        return tuple(torch.randint(low, high, (d,), generator=gen).tolist())

    checked = {1: 0, 2: 0, 3: 0}
    for d in (1, 2, 3):
        while checked[d] < 20:
            groups = int(torch.randint(1, 3, (), generator=gen))
            c_in = groups * int(torch.randint(1, 3, (), generator=gen))
            c_out = groups * int(torch.randint(1, 3, (), generator=gen))
            size, kernel, stride, dilation = draw(3, 8, d), draw(1, 4, d), draw(1, 3, d), draw(1, 3, d)
            padding = "same" if torch.rand((), generator=gen) < 0.2 and stride == (1,) * d else draw(0, 3, d)
            pads = convlib.resolve_padding(padding, kernel, stride, dilation)
            if min(convlib.conv_output_size(size, kernel, stride, pads, dilation)) < 1:
                continue  # the dilated kernel does not fit: draw again
            weight = torch.randn(c_out, c_in // groups, *kernel, dtype=torch.float64, generator=gen)
            x = torch.randn(c_in, *size, dtype=torch.float64, generator=gen)
            hp = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
            w = convlib.kernel_matrix(weight, size, **hp)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Using padding='same'")
                y = CONV_ND[d](x[None], weight, **hp)[0]
            torch.testing.assert_close((w @ x.flatten()).reshape(y.shape), y)
            checked[d] += 1
    assert checked == {1: 20, 2: 20, 3: 20}


# Chapter 6: im2col, col2im and the library's two forms, on the chapter's batch and every
# hyper-parameter on its own and together (the chapter shows the last one).
CHAPTER_6_SETTINGS = [dict(), dict(stride=2), dict(padding=1), dict(dilation=2),
                      dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
                      dict(stride=2, padding=(1, 2), dilation=(1, 2)), dict(padding=1, groups=2)]


def chapter_6_tensors(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-5, 6, (2, 4, 7, 8), generator=gen).double()
    weight = torch.randint(-3, 4, (6, 4, 3, 2), generator=gen).double()
    return x, weight, gen


@pytest.mark.parametrize("cfg", CHAPTER_6_SETTINGS, ids=str)
def test_chapter_6_im2col_and_col2im_are_unfold_and_fold_and_adjoint(cfg):
    """Chapter 6: im2col == F.unfold, col2im == F.fold, <S x, V> = <x, S^T V>, and
    fold(unfold(x)) == x * counts, for every hyper-parameter."""
    x, _, gen = chapter_6_tensors(0)
    cfg = {key: value for key, value in cfg.items() if key != "groups"}
    cols = convlib.im2col(x, (3, 2), **cfg)
    torch.testing.assert_close(cols, F.unfold(x, (3, 2), **cfg), rtol=0, atol=0)
    v = torch.randint(-5, 6, cols.shape, generator=gen).double()
    back = convlib.col2im(v, (7, 8), (3, 2), **cfg)
    torch.testing.assert_close(back, F.fold(v, (7, 8), (3, 2), **cfg), rtol=0, atol=0)
    torch.testing.assert_close(torch.sum(cols * v), torch.sum(x * back), rtol=0, atol=0)
    counts = F.fold(F.unfold(torch.ones(1, 1, 7, 8, dtype=torch.float64), (3, 2), **cfg), (7, 8), (3, 2), **cfg)
    torch.testing.assert_close(F.fold(cols, (7, 8), (3, 2), **cfg), x * counts, rtol=0, atol=0)


@pytest.mark.parametrize("algorithm", ["im2col", "shifted"])
@pytest.mark.parametrize("cfg", CHAPTER_6_SETTINGS, ids=str)
def test_chapter_6_both_forms_are_conv2d_and_conv_transpose2d(cfg, algorithm):
    """Chapter 6: convlib.conv2d and convlib.conv_transpose2d, each form forced (shifted falls
    back to im2col with a stride), equal torch to the last bit, with the output padding of
    convlib.transpose_output_padding."""
    x, weight, gen = chapter_6_tensors(1)
    weight = weight[:, :4 // cfg.get("groups", 1)]
    with convlib.backends.use(algorithm):
        y = convlib.conv2d(x, weight, **cfg)
    torch.testing.assert_close(y, F.conv2d(x, weight, **cfg), rtol=0, atol=0)
    hyper = {key: value for key, value in cfg.items() if key != "groups"}
    output_padding = convlib.transpose_output_padding((7, 8), (3, 2), **hyper)
    g = torch.randint(-5, 6, y.shape, generator=gen).double()
    with convlib.backends.use(algorithm):
        z = convlib.conv_transpose2d(g, weight, output_padding=output_padding, **cfg)
    torch.testing.assert_close(z, F.conv_transpose2d(g, weight, output_padding=output_padding, **cfg),
                               rtol=0, atol=0)
    assert z.shape[2:] == (7, 8)
