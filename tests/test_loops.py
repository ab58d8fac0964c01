"""The teaching loops against torch, and the seed notebook's numbers, exactly."""

import pytest
import torch
import torch.nn.functional as F

import convlib

# The running example of the book (the seed notebook's X and K).
X = torch.arange(30.0).reshape(5, 6)
K = torch.arange(8.0).reshape(2, 4)

# Printed by the seed notebook; the book must reproduce them to the last digit.
SEED_Y = [[184, 212, 240], [352, 380, 408], [520, 548, 576], [688, 716, 744]]
SEED_Z = [
    [0, 184, 580, 1216, 1116, 720],
    [736, 2120, 4208, 5984, 4880, 2904],
    [1408, 3800, 7232, 10016, 7904, 4584],
    [2080, 5480, 10256, 14048, 10928, 6264],
    [2752, 6304, 10684, 12832, 9476, 5208],
]


def test_corr2d_gives_the_seed_numbers():
    assert convlib.corr2d(X, K).tolist() == SEED_Y


def test_kernel_matrix_times_input_gives_the_seed_numbers():
    W = convlib.kernel_matrix(K, (5, 6))
    assert (W @ X.flatten()).reshape(4, 3).tolist() == SEED_Y


def test_transpose_gives_the_seed_transposed_convolution():
    W = convlib.kernel_matrix(K, (5, 6))
    Y = torch.tensor(SEED_Y, dtype=torch.float32)
    assert (W.mT @ Y.flatten()).reshape(5, 6).tolist() == SEED_Z
    assert convlib.conv_transpose2d_loop(Y, K).tolist() == SEED_Z


def test_seed_kernel_matrix_matches_the_seed_index_formula():
    # The seed fills W[i * w_Y + j, i * w_X + j + a * w_X + b] = K[a, b]; check every entry.
    W = convlib.kernel_matrix(K, (5, 6), sparse=False)
    expected = torch.zeros(12, 30)
    for i in range(4):
        for j in range(3):
            for a in range(2):
                for b in range(4):
                    expected[i * 3 + j, i * 6 + j + a * 6 + b] = K[a, b]
    assert torch.equal(W, expected)


@pytest.mark.parametrize("h_X,w_X,h_K,w_K", [(5, 6, 2, 4), (7, 7, 3, 3), (4, 9, 4, 1), (3, 3, 3, 3), (6, 2, 1, 2)])
def test_loops_agree_with_torch(h_X, w_X, h_K, w_K):
    gen = torch.Generator().manual_seed(h_X * 100 + w_X * 10 + h_K)
    X = torch.randn(h_X, w_X, dtype=torch.float64, generator=gen)
    K = torch.randn(h_K, w_K, dtype=torch.float64, generator=gen)
    Y = F.conv2d(X[None, None], K[None, None])[0, 0]
    torch.testing.assert_close(convlib.corr2d(X, K), Y)
    torch.testing.assert_close(convlib.kernel_matrix_loop(K, (h_X, w_X)) @ X.flatten(), Y.flatten())
    Z = F.conv_transpose2d(Y[None, None], K[None, None])[0, 0]
    torch.testing.assert_close(convlib.conv_transpose2d_loop(Y, K), Z)


def test_loop_and_vectorized_kernel_matrix_agree():
    gen = torch.Generator().manual_seed(0)
    for size, ksize in [((5, 6), (2, 4)), ((8, 8), (3, 3)), ((4, 7), (4, 7)), ((6, 5), (1, 1))]:
        K = torch.randn(*ksize, generator=gen)
        assert torch.equal(convlib.kernel_matrix(K, size, sparse=False), convlib.kernel_matrix_loop(K, size))


def test_adjoint_identity_on_the_seed_shapes():
    gen = torch.Generator().manual_seed(1)
    W = convlib.kernel_matrix(K.double(), (5, 6))
    x = torch.randn(30, dtype=torch.float64, generator=gen)
    y = torch.randn(12, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(torch.dot(W @ x, y), torch.dot(x, W.mT @ y))


def test_corr2d_rejects_bad_input():
    with pytest.raises(ValueError, match="2-d"):
        convlib.corr2d(torch.zeros(2, 3, 4), K)
    with pytest.raises(ValueError, match="larger"):
        convlib.corr2d(torch.zeros(1, 3), K)
