"""convlib.gradients against torch autograd: input, weight and bias gradients, 1-d to 3-d."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import convlib
from convlib.gradients import conv_bias_grad, conv_input_grad, conv_weight_grad

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def torch_grads(x, weight, bias, grad_output, **kw):
    """(dL/dx, dL/dweight, dL/dbias) from autograd for L = <conv(x), grad_output>."""
    x, weight, bias = (t.detach().requires_grad_(True) for t in (x, weight, bias))
    y = CONV[x.dim() - 2](x, weight, bias, **kw)
    return torch.autograd.grad(y, (x, weight, bias), grad_outputs=grad_output)


def check(size, kernel, c_in=2, c_out=4, n=3, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    groups = kw.get("groups", 1)
    x = torch.randn(n, c_in, *size, dtype=torch.float64, generator=gen)
    weight = torch.randn(c_out, c_in // groups, *kernel, dtype=torch.float64, generator=gen)
    bias = torch.randn(c_out, dtype=torch.float64, generator=gen)
    y = CONV[len(size)](x, weight, bias, **kw)
    G = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    gx, gw, gb = torch_grads(x, weight, bias, G, **kw)
    torch.testing.assert_close(conv_input_grad(G, weight, size, **kw), gx)
    torch.testing.assert_close(conv_weight_grad(x, G, kernel, **kw), gw)
    torch.testing.assert_close(conv_bias_grad(G), gb)


# torch refuses padding='same' with a stride other than 1.
GRID_2D = [(s, p, d, g) for s, p, d, g in
           itertools.product([1, 2, 3], [0, 1, (2, 0), "same"], [1, 2], [1, 2])
           if not (p == "same" and s != 1)]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("stride,padding,dilation,groups", GRID_2D)
def test_2d_grid(stride, padding, dilation, groups):
    check((7, 8), (3, 2), stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_every_dimension(d):
    check((7, 6, 5)[:d], (3, 2, 2)[:d], stride=(2, 1, 3)[:d], padding=(1, 0, 1)[:d],
          dilation=(1, 2, 1)[:d], groups=2)


def test_running_example_weight_gradient_is_corr2d_of_input_and_output_gradient():
    X = torch.arange(30.0).reshape(5, 6)
    G = torch.arange(12.0).reshape(4, 3)
    expected = convlib.corr2d(X, G)
    got = conv_weight_grad(X[None, None], G[None, None], (2, 4))[0, 0]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_matches_torch_nn_grad():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64, generator=gen)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, generator=gen)
    kw = dict(stride=2, padding=1, dilation=2, groups=2)
    G = torch.randn(F.conv2d(x, w, **kw).shape, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(conv_input_grad(G, w, (9, 8), **kw),
                               torch.nn.grad.conv2d_input(x.shape, w, G, **kw))
    torch.testing.assert_close(conv_weight_grad(x, G, (3, 3), **kw),
                               torch.nn.grad.conv2d_weight(x, w.shape, G, **kw))


def test_input_grad_rejects_a_grad_output_of_the_wrong_size():
    w = torch.ones(1, 1, 3, 3)
    with pytest.raises(ValueError, match="does not fit"):
        conv_input_grad(torch.ones(1, 1, 4, 4), w, (5, 5))
