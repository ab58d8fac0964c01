"""compose_conv against two stacked F.conv{1,2,3}d, and receptive_field against W_L ... W_1."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import convlib
from convlib.stacks import compose_conv, receptive_field

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@given(d=st.sampled_from([1, 2]), k1=st.integers(1, 3), k2=st.integers(1, 3), s1=st.integers(1, 3),
       s2=st.integers(1, 3), d1=st.integers(1, 3), d2=st.integers(1, 3), p1=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_two_convolutions_are_one(d, k1, k2, s1, s2, d1, d2, p1, seed):
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(3, 2, *(k1,) * d, dtype=torch.float64, generator=gen)
    w2 = torch.randn(2, 3, *(k2,) * d, dtype=torch.float64, generator=gen)
    x = torch.randn(1, 2, *(17,) * d, dtype=torch.float64, generator=gen)
    conv = CONV[d]
    y = conv(conv(x, w1, stride=s1, padding=p1, dilation=d1), w2, stride=s2, dilation=d2)
    c = compose_conv(w1, w2, stride1=s1, padding1=p1, dilation1=d1, stride2=s2, dilation2=d2)
    torch.testing.assert_close(conv(x, c.weight, stride=c.stride, padding=c.padding, dilation=c.dilation), y)


@pytest.mark.parametrize("s1,d1,s2,d2", [(1, 1, 1, 1), (2, 1, 1, 1), (2, 1, 2, 1), (1, 2, 1, 2), (1, 2, 1, 4),
                                         (3, 2, 1, 1), (2, 3, 1, 1), (1, 1, 2, 3)])
def test_closed_form_hyper_parameters(s1, d1, s2, d2):
    w1, w2 = torch.ones(1, 1, 3), torch.ones(1, 1, 2)
    c = compose_conv(w1, w2, stride1=s1, dilation1=d1, stride2=s2, dilation2=d2)
    delta = __import__("math").gcd(d1, s1 * d2)
    assert c.stride == (s1 * s2,) and c.dilation == (delta,) and c.padding == (0,)
    assert c.weight.shape[-1] == (d1 * 2 + s1 * d2 * 1) // delta + 1
    # the kernel matrix of the composition is the product of the kernel matrices
    n = 40
    W1 = convlib.kernel_matrix(w1, n, stride=s1, dilation=d1, sparse=False)
    (n1,) = convlib.conv_output_size(n, 3, s1, 0, d1)
    W2 = convlib.kernel_matrix(w2, n1, stride=s2, dilation=d2, sparse=False)
    W = convlib.kernel_matrix(c.weight, n, stride=c.stride, dilation=c.dilation, sparse=False)
    torch.testing.assert_close(W, W2 @ W1, rtol=0, atol=0)


def test_composed_kernel_is_the_true_convolution_of_the_kernels():
    k1, k2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 10.0])
    c = compose_conv(k1.view(1, 1, 3), k2.view(1, 1, 2))
    assert c.weight.flatten().tolist() == [1.0, 12.0, 23.0, 30.0]  # np.convolve([1, 2, 3], [1, 10])


def test_padding_between_the_layers_breaks_it_only_at_the_border():
    gen = torch.Generator().manual_seed(0)
    k1, k2 = torch.randn(3, dtype=torch.float64, generator=gen), torch.randn(3, dtype=torch.float64, generator=gen)
    n = 12
    W1 = convlib.kernel_matrix(k1, n, padding=1, sparse=False)
    W2 = convlib.kernel_matrix(k2, n, padding=1, sparse=False)
    c = compose_conv(k1.view(1, 1, 3), k2.view(1, 1, 3))
    W = convlib.kernel_matrix(c.weight, n, padding=2, sparse=False)
    differs = (W - W2 @ W1).abs().amax(1) > 1e-12
    assert differs.tolist() == [True] + [False] * (n - 2) + [True]


def test_compose_conv_refuses_mismatched_channels():
    with pytest.raises(RuntimeError, match="expects 3 input channels"):
        compose_conv(torch.ones(2, 1, 3), torch.ones(1, 3, 3))


def support_span(row):
    cols = row.nonzero().flatten()
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("ks,ss,ds", [
    ([3] * 5, [1] * 5, [1] * 5), ([3, 3, 3, 3], [2, 1, 2, 1], [1] * 4), ([2] * 5, [1] * 5, [1, 2, 4, 8, 16]),
    ([3, 2, 5], [2, 3, 1], [1, 1, 2]), ([1, 1], [1, 1], [1, 1]), ([4, 3, 3], [4, 2, 1], [1, 3, 2]),
])
def test_receptive_field_is_the_span_of_a_row_of_the_product(ks, ss, ds):
    n = 300
    product = torch.eye(n, dtype=torch.float64)
    size = n
    for k, s, dl in zip(ks, ss, ds):
        W = convlib.kernel_matrix(torch.ones(k, dtype=torch.float64), size, stride=s, dilation=dl, sparse=False)
        product = W @ product
        (size,) = convlib.conv_output_size(size, k, s, 0, dl)
    assert support_span(product[size // 2]) == receptive_field(ks, ss, ds)


def test_receptive_field_of_prefixes():
    assert [receptive_field([3] * L) for L in range(5)] == [1, 3, 5, 7, 9]
    assert [receptive_field([3] * L, [2] * L) for L in range(5)] == [1, 3, 7, 15, 31]
    assert [receptive_field([2] * L, dilations=[2**j for j in range(L)]) for L in range(6)] == [1, 2, 4, 8, 16, 32]


def test_receptive_field_refuses_bad_input():
    with pytest.raises(ValueError, match="same length"):
        receptive_field([3, 3], [1])
    with pytest.raises(ValueError, match="positive"):
        receptive_field([0])


def test_three_dims_and_the_product_of_matrices():
    gen = torch.Generator().manual_seed(5)
    w1 = torch.randn(2, 1, 2, 2, 2, dtype=torch.float64, generator=gen)
    w2 = torch.randn(1, 2, 2, 1, 2, dtype=torch.float64, generator=gen)
    n = (6, 5, 7)
    for s1, p1 in itertools.product([1, 2], [0, 1]):
        W1 = convlib.kernel_matrix(w1, n, stride=s1, padding=p1, sparse=False)
        n1 = convlib.conv_output_size(n, 2, s1, p1)
        W2 = convlib.kernel_matrix(w2, n1, sparse=False)
        c = compose_conv(w1, w2, stride1=s1, padding1=p1)
        W = convlib.kernel_matrix(c.weight, n, stride=c.stride, padding=c.padding, dilation=c.dilation, sparse=False)
        torch.testing.assert_close(W, W2 @ W1)
