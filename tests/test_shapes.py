"""Shape arithmetic against the shapes torch actually produces."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from convlib import conv_output_size, conv_transpose_output_size, resolve_padding
from convlib.shapes import as_tuple

GRID = list(itertools.product((1, 4, 7), (1, 2, 3), (1, 2, 3), (0, 1, 2), (1, 2)))  # n, k, s, p, dil


@pytest.mark.parametrize("n, k, s, p, dil", GRID)
def test_conv_output_size_matches_torch(n, k, s, p, dil):
    x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, k)
    if n + 2 * p < dil * (k - 1) + 1:
        assert conv_output_size(n, k, s, p, dil)[0] < 1
        with pytest.raises(RuntimeError):
            F.conv1d(x, w, None, s, p, dil)
        return
    assert conv_output_size(n, k, s, p, dil) == tuple(F.conv1d(x, w, None, s, p, dil).shape[2:])


@pytest.mark.parametrize("n, k, s, p, dil", GRID)
@pytest.mark.parametrize("op", [0, 1, 2])
def test_conv_transpose_output_size_matches_torch(n, k, s, p, dil, op):
    if op >= s and op >= dil:
        return  # torch refuses; tested in test_errors
    size = conv_transpose_output_size(n, k, s, p, op, dil)
    if size[0] < 1:
        return
    y = F.conv_transpose1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), None, s, p, op, 1, dil)
    assert size == tuple(y.shape[2:])


def test_sizes_per_dimension_2d_3d():
    x, w = torch.zeros(1, 1, 9, 8, 7), torch.zeros(1, 1, 3, 2, 4)
    s, p, dil = (2, 1, 3), (1, 0, 2), (1, 2, 1)
    assert conv_output_size((9, 8, 7), (3, 2, 4), s, p, dil) == F.conv3d(x, w, None, s, p, dil).shape[2:]
    y = torch.zeros(1, 1, 4, 3)
    assert conv_transpose_output_size((4, 3), (3, 2), (2, 3), (1, 0), (1, 2), (2, 1)) == \
        F.conv_transpose2d(y, torch.zeros(1, 1, 3, 2), None, (2, 3), (1, 0), (1, 2), 1, (2, 1)).shape[2:]


@pytest.mark.parametrize("n, k, dil", list(itertools.product((4, 5), (1, 2, 3, 4), (1, 2, 3))))
def test_same_padding_matches_torch(n, k, dil):
    """'same' keeps the size, and the odd zero goes after the input, as in torch."""
    (before, after), = resolve_padding("same", (k,), (1,), (dil,))
    assert before + after == dil * (k - 1) and after - before in (0, 1)
    x, w = torch.randn(1, 1, n, dtype=torch.float64), torch.randn(1, 1, k, dtype=torch.float64)
    same = F.conv1d(x, w, None, 1, "same", dil)
    explicit = F.conv1d(F.pad(x, [before, after]), w, None, 1, 0, dil)
    torch.testing.assert_close(same, explicit)
    assert conv_output_size(n, k, 1, ((before, after),), dil) == (n,)


def test_valid_and_int_padding():
    assert resolve_padding("valid", (3, 3), (2, 2), (1, 1)) == ((0, 0), (0, 0))
    assert resolve_padding(2, (3, 3), (1, 1), (1, 1)) == ((2, 2), (2, 2))
    assert resolve_padding((1, 2), (3, 3), (1, 1), (1, 1)) == ((1, 1), (2, 2))


@pytest.mark.parametrize("padding, stride", [("same", 2), ("full", 1), (-1, 1)])
def test_resolve_padding_errors_like_torch(padding, stride):
    """Same exception class as torch's conv1d for the same padding and stride."""
    with pytest.raises(Exception) as theirs:
        torch.nn.functional.conv1d(torch.zeros(1, 1, 5), torch.zeros(1, 1, 3), stride=stride, padding=padding)
    with pytest.raises(type(theirs.value), match="padding"):
        resolve_padding(padding, (3,), (stride,), (1,))


def test_as_tuple():
    assert as_tuple(2, 3, "stride") == (2, 2, 2)
    assert as_tuple((2,), 3, "stride") == (2, 2, 2)
    assert as_tuple([1, 2], 2, "stride") == (1, 2)
    with pytest.raises(RuntimeError, match="stride"):  # as torch: "expected stride to be ..."
        as_tuple((1, 2), 3, "stride")
    with pytest.raises(TypeError, match="stride"):
        as_tuple(1.5, 2, "stride")
    with pytest.raises(TypeError, match="stride"):
        as_tuple(True, 2, "stride")


def test_arguments_in_every_form_torch_takes():
    import numpy as np
    for value in (2, np.int64(2), np.int32(2), torch.tensor(2), torch.tensor([2])):
        assert as_tuple(value, 2, "stride") == (2, 2)
    assert as_tuple(torch.Size([2, 3]), 2, "stride") == (2, 3)
    assert as_tuple((np.int32(2), torch.tensor(3)), 2, "stride") == (2, 3)
    for bad in (2.0, True, "2", torch.tensor(2.0), torch.tensor([1, 2]), np.array([1, 2]), None):
        with pytest.raises(TypeError, match="stride"):
            as_tuple(bad, 2, "stride")


@pytest.mark.parametrize("n, k, s, p, dil", GRID)
def test_transpose_output_padding_inverts_the_floor(n, k, s, p, dil):
    """conv_transpose with transpose_output_padding returns exactly the input size n."""
    from convlib import transpose_output_padding
    out = conv_output_size(n, k, s, p, dil)
    if out[0] < 1:
        return
    op = transpose_output_padding(n, k, s, p, dil)
    assert conv_transpose_output_size(out, k, s, p, op, dil) == (n,)
    assert 0 <= op[0] < s


def test_geometry():
    from convlib import Geometry
    g = Geometry((2, 1), ((1, 1), (0, 1)), (1, 2), 2)
    assert g.output_size((7, 6), (3, 2)) == conv_output_size((7, 6), (3, 2), (2, 1), ((1, 1), (0, 1)), (1, 2))
    back = g.transposed_to((7, 6), (3, 2))
    assert back.transpose_output_size(g.output_size((7, 6), (3, 2)), (3, 2)) == (7, 6)
    assert Geometry.from_flat(*g.flat()) == Geometry(g.stride, g.padding, g.dilation, 2, (0, 0))
    assert not g.unit_stride and g.padded


@pytest.mark.parametrize("size, padding", [((5,), ((0, 0),)), ((4, 6), ((1, 2), (0, 3))),
                                           ((3, 1, 2), ((2, 0), (1, 1), (0, 4)))])
def test_geometry_padded_size_and_interior_are_those_of_torch_pad(size, padding):
    """``padded_size`` is the shape F.pad gives, and ``interior`` is where the input lies in it."""
    import convlib
    d = len(size)
    geometry = convlib.Geometry((1,) * d, padding, (1,) * d)
    x = torch.arange(1.0, 1 + 2 * torch.Size(size).numel()).reshape(1, 2, *size)
    pad = [p for pair in reversed(padding) for p in pair]  # F.pad: last dimension first
    padded = F.pad(x, pad)
    assert geometry.padded_size(size) == padded.shape[2:]
    assert torch.equal(padded[(Ellipsis, *geometry.interior(size))], x)
    assert padded.sum() == x.sum()  # nothing else but zeros
