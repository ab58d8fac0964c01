"""Shape arithmetic for convolutions: small pure functions, no tensors.

Every hyper-parameter of a ``d``-dimensional convolution is normalized to a tuple of
``d`` ints here, once, so the rest of the library can index it per dimension.
Padding is the one exception: it becomes ``d`` pairs ``(before, after)`` because
``padding='same'`` with an even effective kernel pads one more zero *after* the
input than before it, exactly as :func:`torch.nn.functional.conv2d` does.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[str, int, Sequence[int]]

__all__ = [
    "as_tuple",
    "conv_output_size",
    "conv_transpose_output_size",
    "resolve_padding",
]


def as_tuple(value: IntOrTuple, d: int, name: str) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ``d`` Python ints.

    An int is repeated ``d`` times; a sequence must have exactly ``d`` ints (a
    sequence of length 1 is repeated, as torch allows for ``stride=(2,)``).

    Raises:
        TypeError: if ``value`` is neither an int nor a sequence of ints.
        RuntimeError: if a sequence has the wrong length (as torch's convolutions do).
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of {d} ints, got {value!r}")
    if isinstance(value, int) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        return (int(value),) * d
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of {d} ints, got {value!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a tuple of {d} ints, got {value!r}")
    if len(items) == 1:
        return items * d
    if len(items) != d:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {d} values "
                           f"to match the convolution dimensions, but got {name}={value!r}")
    return items


def resolve_padding(
    padding: Padding,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """Padding as ``d`` pairs ``(before, after)`` of zeros added to each spatial dimension.

    * an int or tuple ``p``: ``(p, p)`` in each dimension;
    * ``'valid'``: no padding, ``(0, 0)``;
    * ``'same'``: the output has the input's size. The effective kernel spans
      :math:`t = \\text{dilation} \\times (k - 1)` extra positions, so ``t`` zeros are
      needed in all; ``t // 2`` go before and the rest after (torch's convention).

    Raises:
        RuntimeError: for an unknown padding string, ``'same'`` with a stride other than 1, or
            a negative padding (the class torch's functional convolutions raise).
    """
    d = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total = [dil * (k - 1) for k, dil in zip(kernel_size, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)
        raise RuntimeError(f"Invalid padding string {padding!r}: padding must be an int, a tuple, "
                           "'valid' or 'same'")
    pads = as_tuple(padding, d, "padding")
    if any(p < 0 for p in pads):
        raise RuntimeError(f"negative padding is not supported, got padding={padding!r}")
    return tuple((p, p) for p in pads)


def conv_output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: Union[IntOrTuple, Sequence[tuple[int, int]]] = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    r"""Spatial output size of a convolution, per dimension.

    .. math::

        n_\text{out} = \left\lfloor \frac{n + p_\text{before} + p_\text{after}
                       - \text{dilation}\,(k - 1) - 1}{\text{stride}} \right\rfloor + 1

    The floor is there because a window that would hang over the padded input is
    simply not taken: the last ``(n_padded - span) mod stride`` positions are never
    the start of a window.

    Args:
        input_size: ``n`` per dimension (an int for 1-d, or a tuple).
        kernel_size, stride, dilation: ints or tuples of the same length.
        padding: an int or tuple (the same on both sides), or pairs ``(before, after)``
            as returned by :func:`resolve_padding`.

    Returns:
        A tuple of ints. A non-positive entry means the kernel does not fit.
    """
    n = as_tuple(input_size, len(input_size) if not isinstance(input_size, int) else 1, "input_size")
    d = len(n)
    k = as_tuple(kernel_size, d, "kernel_size")
    s = as_tuple(stride, d, "stride")
    dil = as_tuple(dilation, d, "dilation")
    pads = _pairs(padding, d)
    return tuple(
        (ni + pb + pa - di * (ki - 1) - 1) // si + 1
        for ni, ki, si, (pb, pa), di in zip(n, k, s, pads, dil)
    )


def conv_transpose_output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    r"""Spatial output size of a transposed convolution, per dimension.

    .. math::

        n_\text{out} = (n - 1)\,\text{stride} - 2\,\text{padding}
                       + \text{dilation}\,(k - 1) + \text{output padding} + 1

    This inverts :func:`conv_output_size` only up to the floor there: every
    ``m`` in ``[n_out, n_out + stride - 1]`` convolves down to ``n``, and
    ``output_padding`` (smaller than the stride or the dilation) picks which one.
    """
    n = as_tuple(input_size, len(input_size) if not isinstance(input_size, int) else 1, "input_size")
    d = len(n)
    k = as_tuple(kernel_size, d, "kernel_size")
    s = as_tuple(stride, d, "stride")
    p = as_tuple(padding, d, "padding")
    op = as_tuple(output_padding, d, "output_padding")
    dil = as_tuple(dilation, d, "dilation")
    return tuple(
        (ni - 1) * si - 2 * pi + di * (ki - 1) + opi + 1
        for ni, ki, si, pi, opi, di in zip(n, k, s, p, op, dil)
    )


def _pairs(padding, d: int) -> tuple[tuple[int, int], ...]:
    """Accept an int, a tuple of ints, or a tuple of (before, after) pairs."""
    if not isinstance(padding, int) and len(padding) == d and all(
        not isinstance(p, int) for p in padding
    ):
        return tuple((int(a), int(b)) for a, b in padding)
    return tuple((p, p) for p in as_tuple(padding, d, "padding"))


def numel(size: Sequence[int]) -> int:
    """Product of a size tuple (1 for the empty tuple)."""
    return math.prod(size)
