"""padding_matrix against F.pad, and W_valid @ P against nn.Conv{1,2}d(padding_mode=...)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convlib
from convlib.padding import PADDING_MODES, padding_matrix, padding_source_index

TORCH_MODE = {"zeros": "constant", "circular": "circular", "reflect": "reflect", "replicate": "replicate"}


def torch_pad(x, pads, mode):
    """F.pad of a (*n) array with (before, after) pairs given first dimension first."""
    flat = [p for pair in reversed(pads) for p in pair]  # torch: last dimension first
    return F.pad(x[None, None], flat, mode=TORCH_MODE[mode])[0, 0]


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("size,pads", [
    ((6,), ((2, 2),)), ((5,), ((1, 3),)), ((4,), ((3, 3),)), ((1,), ((0, 0),)),
    ((4, 5), ((1, 1), (2, 2))), ((3, 6), ((2, 0), (1, 4))), ((3, 4, 5), ((1, 1), (2, 2), (0, 3))),
])
def test_padding_matrix_equals_f_pad(mode, size, pads):
    if mode == "reflect" and any(max(p) >= n for n, p in zip(size, pads)):
        pytest.skip("torch refuses reflect padding as large as the input")
    x = torch.randn(*size, dtype=torch.float64, generator=torch.Generator().manual_seed(len(size)))
    P = padding_matrix(size, pads, mode, dtype=torch.float64)
    expected = torch_pad(x, pads, mode)
    torch.testing.assert_close((P @ x.flatten()).reshape(expected.shape), expected, rtol=0, atol=0)


def test_padding_matrix_has_one_one_per_row_except_zeros():
    for mode in PADDING_MODES:
        P = padding_matrix((4, 5), 2, mode)
        assert set(P.unique().tolist()) <= {0.0, 1.0}
        ones_per_row = P.sum(1)
        if mode == "zeros":
            assert ones_per_row.sum() == 20 and set(ones_per_row.tolist()) == {0.0, 1.0}
        else:
            assert torch.all(ones_per_row == 1)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_conv_with_padding_mode_is_valid_matrix_times_padding_matrix(mode):
    gen = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(2, 3, (3, 2), padding=(1, 1), padding_mode=mode, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, dtype=torch.float64, generator=gen))
    x = torch.randn(2, 5, 6, dtype=torch.float64, generator=gen)
    P = torch.kron(torch.eye(2, dtype=torch.float64), padding_matrix((5, 6), 1, mode, dtype=torch.float64))
    W = convlib.kernel_matrix(conv.weight.detach(), (7, 8), sparse=False) @ P
    y = conv(x[None])[0]
    torch.testing.assert_close(W @ x.flatten(), y.flatten().detach())


def test_padding_source_index_examples():
    assert padding_source_index(4, 2, 2, "circular").tolist() == [2, 3, 0, 1, 2, 3, 0, 1]
    assert padding_source_index(4, 2, 2, "reflect").tolist() == [2, 1, 0, 1, 2, 3, 2, 1]
    assert padding_source_index(4, 2, 2, "replicate").tolist() == [0, 0, 0, 1, 2, 3, 3, 3]
    assert padding_source_index(4, 2, 2, "zeros").tolist() == [-1, -1, 0, 1, 2, 3, -1, -1]


def test_bad_padding_raises():
    with pytest.raises(ValueError, match="mode"):
        padding_matrix(4, 1, "constant")
    with pytest.raises(ValueError, match="smaller"):
        padding_matrix(4, 4, "reflect")
    with pytest.raises(ValueError, match="at most"):
        padding_matrix(4, 5, "circular")
