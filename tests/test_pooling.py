"""Pooling matrices and output sizes against torch's pooling functions."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.pooling import avg_pool_matrix, max_pool_matrix, pool_output_size

POOL_CASES = [(n, k, s, p, dl, cm) for n, k, s, p, dl, cm in itertools.product(
    [1, 2, 5, 6, 7, 10], [1, 2, 3, 4], [1, 2, 3], [0, 1, 2], [1, 2], [False, True])
    if p <= k // 2]


def torch_size(n, k, s, p, dl, cm):
    try:
        return F.max_pool1d(torch.zeros(1, 1, n), k, s, p, dl, ceil_mode=cm).shape[-1]
    except RuntimeError:
        return None


def test_pool_output_size_matches_torch():
    for n, k, s, p, dl, cm in POOL_CASES:
        expected = torch_size(n, k, s, p, dl, cm)
        if expected is None:
            with pytest.raises(RuntimeError, match="Output size is too small"):
                pool_output_size(n, k, s, p, dl, cm)
        else:
            assert pool_output_size(n, k, s, p, dl, cm) == (expected,), (n, k, s, p, dl, cm)


def test_ceil_mode_keeps_one_more_window_unless_it_starts_in_the_padding():
    assert pool_output_size(12, 4, 3) == (3,) and pool_output_size(12, 4, 3, ceil_mode=True) == (4,)
    # 5 + 2 * 1 = 7 padded, k = 2, s = 2: a 4th window would start at 6, in the right padding
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == (3,)
    assert F.max_pool1d(torch.zeros(1, 1, 5), 2, 2, 1, ceil_mode=True).shape[-1] == 3


def test_pool_output_size_defaults_stride_to_kernel_and_handles_tuples():
    assert pool_output_size((8, 9), (2, 3)) == (4, 3)
    assert pool_output_size((8, 9), 2, stride=()) == (4, 4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(kernel_size=3, padding=2), "pad should be at most half"),
    (dict(kernel_size=0), "kernel_size must be greater than zero"),
    (dict(kernel_size=2, stride=0), "stride"),
    (dict(kernel_size=2, dilation=0), "dilation"),
    (dict(kernel_size=2, padding=-1), "padding"),
])
def test_bad_pooling_arguments_raise_like_torch(kwargs, message):
    with pytest.raises(RuntimeError, match=message):
        pool_output_size(6, **kwargs)
    with pytest.raises(RuntimeError):
        F.max_pool1d(torch.zeros(1, 1, 6), **kwargs)


@pytest.mark.parametrize("size", [(7,), (5, 6), (4, 3, 5)])
def test_avg_pool_matrix_equals_avg_pool(size):
    d = len(size)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[d]
    gen = torch.Generator().manual_seed(d)
    x = torch.randn(1, 1, *size, dtype=torch.float64, generator=gen)
    for k, s, p, cm, cip in itertools.product([1, 2, 3], [1, 2, 3], [0, 1], [False, True], [False, True]):
        if p > k // 2:
            continue
        kwargs = dict(ceil_mode=cm, count_include_pad=cip)
        expected = pool(x, k, s, p, **kwargs)
        A = avg_pool_matrix(size, k, s, p, **kwargs, dtype=torch.float64)
        torch.testing.assert_close(A @ x.flatten(), expected.flatten(), msg=lambda m: f"{k, s, p, cm, cip}: {m}")
    if d == 2:  # divisor_override, only in the 2-d and 3-d torch functions
        A = avg_pool_matrix(size, 2, 1, 1, divisor_override=3, dtype=torch.float64)
        torch.testing.assert_close(A @ x.flatten(), F.avg_pool2d(x, 2, 1, 1, divisor_override=3).flatten())


def test_avg_pool_is_a_convolution_with_a_constant_kernel_and_its_transpose_is_the_gradient():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1, 6, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    A = avg_pool_matrix((6, 8), 2, dtype=torch.float64)
    W = convlib.kernel_matrix(torch.full((2, 2), 0.25, dtype=torch.float64), (6, 8), stride=2, sparse=False)
    torch.testing.assert_close(A, W, rtol=0, atol=0)
    G = torch.randn(1, 1, 3, 4, dtype=torch.float64, generator=gen)
    F.avg_pool2d(x, 2).backward(G)
    torch.testing.assert_close(A.T @ G.flatten(), x.grad.flatten())


def test_avg_pool_with_count_include_pad_false_is_not_a_convolution():
    A = avg_pool_matrix(5, 3, 1, 1, count_include_pad=False, dtype=torch.float64)
    # rows at the border average 2 entries, inside 3: not the rows of one kernel matrix
    assert A.sum(1).tolist() == [1.0] * 5
    assert (A != 0).sum(1).tolist() == [2, 3, 3, 3, 2]
    assert A[0, 0].item() == 0.5 and A[1, 0].item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("k,s,p,dl,cm", [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 0, 1, True),
                                         (2, 1, 0, 2, False), (3, 3, 1, 1, True), (1, 1, 0, 1, False)])
def test_max_pool_matrix_is_the_jacobian_and_routes_the_gradient(k, s, p, dl, cm, device):
    gen = torch.Generator().manual_seed(k * 10 + s)
    x = torch.randn(2, 7, 6, dtype=torch.float64, generator=gen).to(device)
    P = max_pool_matrix(x, k, s, p, dl, cm)
    y, indices = F.max_pool2d(x[None], k, s, p, dl, cm, return_indices=True)
    torch.testing.assert_close(P @ x.flatten(), y.flatten(), rtol=0, atol=0)
    J = torch.autograd.functional.jacobian(lambda t: F.max_pool2d(t[None], k, s, p, dl, cm).flatten(), x)
    torch.testing.assert_close(P, J.reshape(P.shape), rtol=0, atol=0)
    assert torch.equal(P.nonzero()[:, 1] % 42, indices.flatten())  # one 1 per row, where torch's index says
    leaf = x.clone().requires_grad_()
    G = torch.randn(y.shape, dtype=torch.float64, generator=gen).to(device)
    F.max_pool2d(leaf[None], k, s, p, dl, cm).backward(G)
    torch.testing.assert_close(P.T @ G.flatten(), leaf.grad.flatten())


def test_max_pool_ties_go_to_the_first_entry_as_in_torch():
    gen = torch.Generator().manual_seed(2)
    for k, s, p, dl, cm in itertools.product([2, 3], [1, 2], [0, 1], [1, 2], [False, True]):
        x = torch.randint(0, 3, (3, 6, 7), generator=gen).double()
        _, indices = F.max_pool2d(x[None], k, s, p, dl, cm, return_indices=True)
        P = max_pool_matrix(x, k, s, p, dl, cm)
        assert torch.equal(P.nonzero()[:, 1] % 42, indices.flatten()), (k, s, p, dl, cm)


def test_max_unpool_is_the_transpose_only_without_overlap():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 6, 6, dtype=torch.float64, generator=gen)
    for k, s, overlap in [(2, 2, False), (3, 3, False), (3, 2, True)]:
        y, indices = F.max_pool2d(x[None], k, s, return_indices=True)
        G = torch.ones_like(y)
        P = max_pool_matrix(x, k, s)
        unpooled = F.max_unpool2d(G, indices, k, s, output_size=x.shape[-2:]).flatten()
        shares = bool((P.sum(0) > 1).any())
        assert shares == torch.any(P.T @ G.flatten() != unpooled).item()
        if not overlap:
            torch.testing.assert_close(unpooled, P.T @ G.flatten(), rtol=0, atol=0)


def test_max_pool_matrix_in_one_and_three_dims():
    gen = torch.Generator().manual_seed(4)
    x1 = torch.randn(2, 9, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(max_pool_matrix(x1, 3, 2, 1) @ x1.flatten(), F.max_pool1d(x1[None], 3, 2, 1).flatten())
    x3 = torch.randn(1, 4, 5, 4, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(max_pool_matrix(x3, 2, ceil_mode=True) @ x3.flatten(),
                               F.max_pool3d(x3[None], 2, ceil_mode=True).flatten())
