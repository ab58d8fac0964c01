"""convlib.nn layers against torch.nn: initialization, state_dict, forward, backward."""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import convlib.nn
from helpers import assert_matches_torch

NAMES = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


def pair(name, *args, seed=0, **kwargs):
    """The torch layer and ours, built from the same random state."""
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    ours = getattr(convlib.nn, name)(*args, **kwargs)
    return ours, theirs


def assert_same_layer(ours, theirs, x, **forward_kwargs):
    """Same parameters, then the reference check on ``forward`` as a function of
    (input, weight, bias): same outputs and gradients."""
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert p.shape == q.shape and p.dtype == q.dtype and p.device == q.device
        torch.testing.assert_close(p, q, rtol=0, atol=0)

    def as_function(layer):
        def forward(input, weight, bias=None):
            params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
            return torch.func.functional_call(layer, params, (input,), forward_kwargs)
        return forward

    assert_matches_torch(as_function(ours), as_function(theirs), x, theirs.weight, theirs.bias)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bias", [True, False])
def test_same_init_and_outputs(name, bias, device):
    d = int(name[-2])
    ours, theirs = pair(name, 4, 6, 3, stride=2, padding=1, groups=2, bias=bias, device=device,
                        dtype=torch.float64)
    assert repr(ours).split("(", 1)[1] == repr(theirs).split("(", 1)[1]
    x = torch.randn(2, 4, *[5] * d, dtype=torch.float64, device=device)
    assert_same_layer(ours, theirs, x)
    assert_same_layer(ours, theirs, x[0])  # unbatched


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, "same", "valid"])
def test_padding_modes(d, padding_mode, padding, device):
    ours, theirs = pair(f"Conv{d}d", 2, 4, 3, padding=padding, dilation=1 if padding == 1 else 2,
                        padding_mode=padding_mode, device=device, dtype=torch.float64)
    assert_same_layer(ours, theirs, torch.randn(2, 2, *[6] * d, dtype=torch.float64, device=device))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_output_size(d, device):
    ours, theirs = pair(f"ConvTranspose{d}d", 3, 2, 3, stride=3, padding=1, device=device,
                        dtype=torch.float64)
    x = torch.randn(2, 3, *[4] * d, dtype=torch.float64, device=device)
    for extra in range(3):  # every size a stride-3 convolution maps back to 4
        size = [10 + extra] * d
        assert_same_layer(ours, theirs, x, output_size=size)
        assert ours(x, output_size=[2, 2] + size).shape[2:] == tuple(size)
    for bad in ([9] * d, [13] * d, [10] * (d + 3)):
        with pytest.raises(ValueError):
            theirs(x, output_size=bad)
        with pytest.raises(ValueError):
            ours(x, output_size=bad)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_moves_between_torch_and_convlib(name):
    d = int(name[-2])
    ours, theirs = pair(name, 4, 4, 2, groups=4, seed=1)
    torch.manual_seed(2)
    ours.reset_parameters()  # now different ...
    ours.load_state_dict(theirs.state_dict())  # ... and the same again
    assert_same_layer(ours, theirs, torch.randn(3, 4, *[4] * d))
    theirs.load_state_dict(getattr(convlib.nn, name)(4, 4, 2, groups=4).state_dict())
    ours.load_state_dict(theirs.state_dict())
    assert_same_layer(ours, theirs, torch.randn(3, 4, *[4] * d))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_transposed_padding_mode_refused_like_torch(d):
    with pytest.raises(ValueError):
        getattr(torch.nn, f"ConvTranspose{d}d")(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode|zeros"):
        getattr(convlib.nn, f"ConvTranspose{d}d")(2, 2, 3, padding_mode="reflect")


@pytest.mark.parametrize("kwargs", [dict(groups=3), dict(padding="same", stride=2),
                                    dict(padding_mode="mirror"), dict(padding="full")])
def test_bad_constructor_arguments_like_torch(kwargs):
    with pytest.raises(Exception) as theirs:
        torch.nn.Conv2d(4, 6, 3, **kwargs)
    with pytest.raises(type(theirs.value)):
        convlib.nn.Conv2d(4, 6, 3, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dtype_argument(dtype):
    ours, theirs = pair("Conv2d", 2, 3, 3, dtype=dtype)
    assert ours.weight.dtype == dtype
    x = torch.randn(1, 2, 6, 6, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(ours(x), theirs(x), rtol=tol, atol=tol)


@given(st.sampled_from(NAMES), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), st.booleans(), st.integers(0, 2**16))
def test_random_layers(name, groups, c_in_g, c_out_g, k, stride, padding, bias, seed):
    d = int(name[-2])
    ours, theirs = pair(name, groups * c_in_g, groups * c_out_g, k, stride=stride,
                        padding=min(padding, k - 1), groups=groups, bias=bias, seed=seed,
                        dtype=torch.float64)
    x = torch.randn(2, groups * c_in_g, *[k + 2] * d, dtype=torch.float64)
    assert_same_layer(ours, theirs, x)


@pytest.mark.parametrize("name", NAMES)
def test_signatures_match_torch(name):
    def params(f):
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]
    assert params(getattr(convlib.nn, name).__init__) == params(getattr(torch.nn, name).__init__)
    assert params(getattr(convlib.nn, name).forward) == params(getattr(torch.nn, name).forward)


# ---------------------------------------------------------------- torch's layers, only computed here

@pytest.mark.parametrize("name", NAMES)
def test_is_a_torch_layer(name):
    """A subclass: isinstance holds, and the only method it defines is the computation."""
    ours = getattr(convlib.nn, name)
    assert issubclass(ours, getattr(torch.nn, name))
    own = {k for k, v in vars(ours).items() if callable(v) and not k.startswith("__")}
    assert own == ({"forward"} if "Transpose" in name else {"_conv_forward"})


def test_fuse_conv_bn_eval():
    """torch's own fusion sees our layer as a Conv2d and folds the batch norm into it."""
    torch.manual_seed(0)
    conv = convlib.nn.Conv2d(3, 4, 3, padding=1).double().eval()
    bn = torch.nn.BatchNorm2d(4).double().eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
    assert isinstance(fused, convlib.nn.Conv2d)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(fused(x), bn(conv(x)))


def test_init_loops_and_hooks():
    """Code that tests the type (an init loop) and forward hooks see our layers."""
    net = torch.nn.Sequential(convlib.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), convlib.nn.ConvTranspose2d(4, 2, 3))
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.zeros_(m.weight)
            torch.nn.init.ones_(m.bias)
    seen = []
    net[2].register_forward_hook(lambda m, inp, out: seen.append(out.shape))
    out = net(torch.randn(1, 3, 5, 5))
    assert seen == [out.shape] and torch.equal(out, torch.ones_like(out))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_layer(name):
    """A channels-last layer (``.to(memory_format=...)``) gives torch's layout and values."""
    d = int(name[-2])
    if d == 1:
        pytest.skip("no channels-last format in 1-d")
    fmt = torch.channels_last if d == 2 else torch.channels_last_3d
    ours, theirs = pair(name, 4, 6, 3, padding=1, dtype=torch.float32)
    ours, theirs = ours.to(memory_format=fmt), theirs.to(memory_format=fmt)
    x = torch.randn(2, 4, *[5] * d).to(memory_format=fmt)
    y, t = ours(x), theirs(x)
    torch.testing.assert_close(y, t)
    assert y.is_contiguous(memory_format=fmt) == t.is_contiguous(memory_format=fmt)
