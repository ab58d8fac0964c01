"""Chapters 7 and 8: the grids behind claims made in one sentence, run on the chapters' own code.

A chapter shows one illustrative case and states how many cases the tests check; the checks
are here. Functions a chapter defines are taken from the chapter itself (its stored code
cell), so the test exercises exactly the code the reader sees.
"""

import ast
import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.shapes import as_tuple

BOOK = Path(__file__).resolve().parents[1] / "book"


def chapter_functions(notebook, *names):
    """The functions `names` as `notebook` defines them in its code cells.

    From each cell that defines one, only the definitions run: the function itself and the
    cell's UPPER_CASE constants (a lookup table it uses), not the cell's example.
    """
    cells = ["".join(c["source"]) for c in json.loads((BOOK / notebook).read_text())["cells"]
             if c["cell_type"] == "code"]
    namespace = {"torch": torch, "F": F, "convlib": convlib, "as_tuple": as_tuple, "itertools": itertools}
    for name in names:
        defining = [src for src in cells if f"def {name}(" in src]
        assert len(defining) == 1, f"{notebook} should define {name} in exactly one cell"
        tree = ast.parse(defining[0])
        keep = [node for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == name
                or isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper()
                                                        for t in node.targets)]
        exec(compile(ast.Module(body=keep, type_ignores=[]), f"{notebook}:{name}", "exec"), namespace)
    return [namespace[name] for name in names]


transposed_via_W, conv_transpose_by_zero_insertion = chapter_functions(
    "07_transposed.ipynb", "transposed_via_W", "conv_transpose_by_zero_insertion")

# The output-padding rule the chapter shows (with literalinclude) is the library's.
output_padding_for = convlib.transpose_output_padding

# Chapter 7's grid: strides 1-3, padding 0-2, dilation 1-2, 1 or 2 groups, three input sizes.
GRID = list(itertools.product([1, 2, 3], [0, 1, 2], [1, 2], [1, 2], [6, 7, 8]))


def ints(*shape, gen):
    return torch.randint(-3, 4, shape, generator=gen).double()


def test_transposed_convolution_is_W_transpose_with_the_output_padding_rule():
    """Chapter 7: 108 convolutions, 60 needing output_padding; W^T y == conv_transpose2d."""
    gen = torch.Generator().manual_seed(0)
    n_cases = n_with_output_padding = 0
    for s, p, dil, g, n in GRID:
        weight = ints(3 * g, 2, 3, 2, gen=gen)
        size = (n, n + 1)
        m = convlib.conv_output_size(size, (3, 2), s, p, dil)
        y = ints(3 * g, *m, gen=gen)
        alpha = output_padding_for(size, (3, 2), s, p, dil)
        assert all(0 <= a < s for a in alpha)
        z_torch = F.conv_transpose2d(y, weight, stride=s, padding=p, output_padding=alpha, groups=g, dilation=dil)
        assert z_torch.shape[1:] == size
        z = transposed_via_W(y, weight, size, stride=s, padding=p, dilation=dil, groups=g)
        torch.testing.assert_close(z, z_torch, rtol=0, atol=0)
        n_cases += 1
        n_with_output_padding += any(alpha)
    assert (n_cases, n_with_output_padding) == (108, 60)


def test_zero_insertion_with_the_flipped_swapped_kernel_is_conv_transpose():
    """Chapter 7: 234 transposed convolutions, every allowed output padding in each dimension."""
    gen = torch.Generator().manual_seed(1)
    n_cases = 0
    for s, p, dil, g, n in GRID:
        weight = ints(3 * g, 2, 3, 2, gen=gen)
        m = convlib.conv_output_size((n, n + 1), (3, 2), s, p, dil)
        y = ints(3 * g, *m, gen=gen)
        for a0 in range(max(s, dil)):
            alpha = (a0, (a0 + 1) % max(s, dil))
            kw = dict(stride=s, padding=p, output_padding=alpha, groups=g, dilation=dil)
            torch.testing.assert_close(conv_transpose_by_zero_insertion(y, weight, **kw),
                                       F.conv_transpose2d(y, weight, **kw), rtol=0, atol=0)
            n_cases += 1
    assert n_cases == 234


@pytest.mark.parametrize("dims", [1, 3])
def test_zero_insertion_in_one_and_three_dimensions(dims):
    """The chapter's helper claims any number of spatial dimensions: check 1-d and 3-d too."""
    gen = torch.Generator().manual_seed(2)
    for s, p, dil, g in itertools.product([1, 2], [0, 1], [1, 2], [1, 2]):
        weight = ints(2 * g, 2, *[3] * dims, gen=gen)
        m = [4] * dims
        y = ints(2 * g, *m, gen=gen)
        for a in range(max(s, dil)):
            kw = dict(stride=s, padding=p, output_padding=a, groups=g, dilation=dil)
            conv_t = {1: F.conv_transpose1d, 3: F.conv_transpose3d}[dims]
            torch.testing.assert_close(conv_transpose_by_zero_insertion(y, weight, **kw), conv_t(y, weight, **kw),
                                       rtol=0, atol=0)


def test_the_primed_quantities_of_dumoulin_and_visin():
    """Chapter 7's table: 567 convolutions (i <= 9, k <= 4, s <= 3, p <= 2, dilation <= 2)."""
    n_cases = 0
    for i, k, s, p, dil in itertools.product(range(1, 10), range(1, 5), range(1, 4), range(3), range(1, 3)):
        k_hat = dil * (k - 1) + 1
        if i + 2 * p < k_hat:
            continue  # the kernel does not fit: no convolution to transpose
        (o,) = convlib.conv_output_size(i, k, s, p, dil)
        i_p, s_p, p_p = o, 1, k_hat - p - 1
        i_tilde = i_p + (i_p - 1) * (s - 1)
        alpha = (i + 2 * p - k_hat) % s
        assert (alpha,) == output_padding_for(i, k, s, p, dil)
        o_p = s * (i_p - 1) + alpha + k_hat - 2 * p
        out = F.conv_transpose1d(torch.zeros(1, i_p), torch.zeros(1, 1, k), stride=s, padding=p,
                                 output_padding=alpha, dilation=dil)
        assert o_p == out.shape[-1] == i
        assert o_p == (i_tilde + 2 * p_p + alpha - k_hat) // s_p + 1
        n_cases += 1
    assert n_cases == 567


def test_output_padding_cuts_less_at_the_end():
    """Chapter 7: 93 cases; conv_transpose = all stamps, cut p at the start and p - alpha at the end."""
    gen = torch.Generator().manual_seed(3)
    y = ints(2, 4, 5, gen=gen)
    w = ints(2, 3, 3, 2, gen=gen)
    n_cases = 0
    for s, p, dil in itertools.product([1, 2, 3], [0, 1, 2], [1, 2]):
        full = F.conv_transpose2d(y, w, stride=s, dilation=dil)
        for alpha in itertools.product(range(max(s, dil)), repeat=2):
            z = F.conv_transpose2d(y, w, stride=s, padding=p, output_padding=alpha, dilation=dil)
            torch.testing.assert_close(z, F.pad(full, (-p, alpha[1] - p, -p, alpha[0] - p)), rtol=0, atol=0)
            n_cases += 1
    assert n_cases == 93


def test_a_wrong_chapter_function_would_fail():
    """The checks above can fail: a zero insertion that forgets the flip is caught at once."""
    gen = torch.Generator().manual_seed(4)
    weight, y = ints(2, 2, 3, 2, gen=gen), ints(2, 4, 4, gen=gen)

    def unflipped(y, weight, **kw):
        return conv_transpose_by_zero_insertion(y, weight.flip(2, 3), **kw)

    assert not torch.equal(unflipped(y, weight, stride=2), F.conv_transpose2d(y, weight, stride=2))


# Chapter 8 shows one layer with everything switched on (the last one); these are the others.
CHAPTER_8_LAYERS = [
    dict(stride=1, padding=0, dilation=1, groups=1),
    dict(stride=2, padding=1, dilation=1, groups=1),
    dict(stride=(2, 3), padding=(0, 2), dilation=1, groups=2),
    dict(stride=1, padding=2, dilation=2, groups=1),
    dict(stride=3, padding=(1, 0), dilation=(2, 1), groups=4),
]


@pytest.mark.parametrize("algorithm", ["im2col", "shifted"])
@pytest.mark.parametrize("seed, cfg", list(enumerate(CHAPTER_8_LAYERS)), ids=str)
def test_chapter_8_gradients_on_five_layers(seed, cfg, algorithm):
    """Chapter 8: x.grad == W^T G (samples as columns), the adjoint identity, the VJP is
    conv_transpose2d with convlib.transpose_output_padding, the teaching gradients and
    convlib.conv2d's own (each form forced) match autograd through F.conv2d."""
    from convlib.gradients import conv_bias_grad, conv_input_grad, conv_weight_grad

    n, c_in, c_out, size, k = 3, 4, 8, (9, 10), (3, 2)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, *size, dtype=torch.float64, generator=gen)
    w = torch.randn(c_out, c_in // cfg["groups"], *k, dtype=torch.float64, generator=gen)
    b = torch.randn(c_out, dtype=torch.float64, generator=gen)
    g = torch.randn(F.conv2d(x, w, **cfg).shape, dtype=torch.float64, generator=gen)
    leaves = [t.clone().requires_grad_(True) for t in (x, w, b)]
    grad_x, grad_w, grad_b = torch.autograd.grad(F.conv2d(*leaves, **cfg), leaves, grad_outputs=g)

    W = convlib.kernel_matrix(w, size, **cfg)
    x_cols, g_cols = x.reshape(n, -1).T, g.reshape(n, -1).T
    torch.testing.assert_close((W.mT @ g_cols).T.reshape(x.shape), grad_x)
    torch.testing.assert_close((W @ x_cols * g_cols).sum(), (x_cols * (W.mT @ g_cols)).sum())
    output_padding = convlib.transpose_output_padding(size, k, cfg["stride"], cfg["padding"], cfg["dilation"])
    torch.testing.assert_close(F.conv_transpose2d(g, w, **cfg, output_padding=output_padding), grad_x)
    torch.testing.assert_close(conv_input_grad(g, w, size, **cfg), grad_x)
    torch.testing.assert_close(conv_weight_grad(x, g, k, **cfg), grad_w)
    torch.testing.assert_close(conv_bias_grad(g), grad_b)
    leaves = [t.clone().requires_grad_(True) for t in (x, w, b)]
    with convlib.backends.use(algorithm):
        ours = torch.autograd.grad(convlib.conv2d(*leaves, **cfg), leaves, grad_outputs=g)
    for got, expected in zip(ours, (grad_x, grad_w, grad_b)):
        torch.testing.assert_close(got, expected)
