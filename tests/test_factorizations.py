"""The explicit factors of the fast algorithms multiply out to the kernel matrix."""

import itertools
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.factorizations import phase_matrix, tile_matrix, toom_cook, winograd_points
from convlib.padding import padding_matrix

DT = torch.float64


def test_winograd_points_are_small_numbers_and_reciprocals():
    assert winograd_points(7) == [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)]
    assert len(set(winograd_points(12))) == 12


@pytest.mark.parametrize("mu,k", list(itertools.product([1, 2, 3, 4, 6], [1, 2, 3, 5])))
def test_toom_cook_is_the_correlation_of_one_tile_exactly(mu, k):
    # In exact arithmetic: A^T diag(G K) B^T is the mu x (mu + k - 1) kernel matrix of K
    AT, G, BT = toom_cook(mu, k, exact=True)
    K = [Fraction(v) for v in torch.randint(-9, 10, (k,), generator=torch.Generator().manual_seed(mu * 10 + k)).tolist()]
    nu = mu + k - 1
    GK = [sum(g * c for g, c in zip(row, K)) for row in G]
    W = [[sum(AT[u][q] * GK[q] * BT[q][v] for q in range(nu)) for v in range(nu)] for u in range(mu)]
    expected = [[K[v - u] if 0 <= v - u < k else 0 for v in range(nu)] for u in range(mu)]
    assert W == expected
    assert all(v.denominator == 1 for row in BT for v in row)  # the fractions live in G


@pytest.mark.parametrize("mu", [2, 4, 6])
def test_toom_cook_in_float64_and_in_two_dimensions(mu):
    AT, G, BT = toom_cook(mu, 3)
    K = torch.randn(3, 3, dtype=DT, generator=torch.Generator().manual_seed(mu))
    W1 = AT @ torch.diag(G @ K[0]) @ BT
    torch.testing.assert_close(W1, convlib.kernel_matrix(K[0], (mu + 2,), sparse=False), rtol=0, atol=1e-13)
    A2, G2, B2 = (torch.kron(m, m) for m in (AT, G, BT))
    W2 = A2 @ torch.diag(G2 @ K.flatten()) @ B2
    torch.testing.assert_close(W2, convlib.kernel_matrix(K, (mu + 2, mu + 2), sparse=False), rtol=0, atol=1e-12)


def test_toom_cook_matches_lavin_and_gray_up_to_signs():
    # F(2, 3) as printed by Lavin and Gray (2016); the point at infinity's row differs in sign
    AT, G, BT = toom_cook(2, 3)
    lavin_AT = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=DT)
    lavin_G = torch.tensor([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], dtype=DT)
    lavin_BT = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=DT)
    E = torch.diag(torch.tensor([1, 1, 1, -1], dtype=DT))
    assert torch.equal(AT @ E, lavin_AT) and torch.equal(G, lavin_G) and torch.equal(E @ BT, lavin_BT)


def test_toom_cook_rejects_bad_points():
    with pytest.raises(ValueError, match="distinct"):
        toom_cook(2, 3, points=[0, 1, 1])
    with pytest.raises(ValueError, match="at least 1"):
        toom_cook(0, 3)


@pytest.mark.parametrize("n,s", [(7, 2), (8, 2), (9, 3), (5, 4)])
def test_phase_matrices_are_the_rows_of_a_permutation(n, s):
    phases = [phase_matrix(n, s, phi) for phi in range(s)]
    x = torch.arange(n, dtype=DT)
    for phi, Pi in enumerate(phases):
        assert torch.equal(Pi @ x, x[phi::s])
    stacked = torch.cat(phases)
    assert torch.equal(stacked.T @ stacked, torch.eye(n, dtype=DT))


@pytest.mark.parametrize("n,tile,step", [(6, 4, 2), (10, 6, 4), (8, 3, 1), (9, 3, 3)])
def test_tile_matrix_is_the_im2col_selection(n, tile, step):
    one_hot = torch.eye(n, dtype=DT).reshape(n, 1, n)
    S = convlib.im2col(one_hot, tile, stride=step).reshape(n, tile, -1)  # (input, j, q)
    assert torch.equal(tile_matrix(n, tile, step), S.permute(2, 1, 0).reshape(-1, n))


@pytest.mark.parametrize("n,k,s,p", [(9, 3, 2, 1), (10, 4, 2, 1), (11, 5, 3, 2), (8, 1, 2, 0), (9, 2, 3, 0)])
def test_polyphase_and_sub_pixel_identities(n, k, s, p):
    # W_s = sum over phases of (stride-1 W of the sub-kernel) (phase) (padding); W_s^T its transpose
    K = torch.randint(-5, 6, (k,), generator=torch.Generator().manual_seed(n + k + s)).to(DT)
    W = convlib.kernel_matrix(K, (n,), stride=s, padding=p, sparse=False)
    P = padding_matrix(n, p, dtype=DT)
    o = W.shape[0]
    total = torch.zeros_like(W)
    for phi in range(min(s, k)):
        Pi = phase_matrix(n + 2 * p, s, phi)
        T = convlib.kernel_matrix(K[phi::s], (Pi.shape[0],), sparse=False)
        total += T[:o] @ Pi @ P
    assert torch.equal(total, W)
    y = torch.randint(-5, 6, (1, 1, o), generator=torch.Generator().manual_seed(1)).to(DT)
    z = F.conv_transpose1d(y, K[None, None], stride=s, padding=p,
                           output_padding=n - ((o - 1) * s - 2 * p + k))
    assert torch.equal(total.T @ y.flatten(), z.flatten())
