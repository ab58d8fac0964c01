r"""Shape arithmetic for convolutions: small pure functions, no tensors.

Every hyper-parameter of a ``d``-dimensional convolution is normalized here, once, into a
:class:`Geometry`: ``d`` strides, ``d`` pairs ``(before, after)`` of zero padding, ``d``
dilations, the number of groups and, for a transposed convolution, ``d`` output paddings.
Padding is a pair because ``padding='same'`` with an even effective kernel pads one more
zero *after* the input than before it, exactly as :func:`torch.nn.functional.conv2d` does.

Each output size has one function: :func:`conv_output_size` (with its floor),
:func:`conv_transpose_output_size`, and :func:`transpose_output_padding`, the inverse of the
floor: which ``output_padding`` takes a transposed convolution back to a given size.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from torch import SymInt  # a size under torch.compile with dynamic shapes

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[str, int, Sequence[int]]
Pairs = tuple[tuple[int, int], ...]

__all__ = [
    "Geometry",
    "as_int",
    "as_tuple",
    "conv_output_size",
    "conv_transpose_output_size",
    "transpose_output_padding",
    "resolve_padding",
]


def _scalar(value) -> bool:
    """An int-like scalar: anything with ``__index__`` that is not an array of several
    values (torch also takes a tensor holding exactly one integer)."""
    if isinstance(value, (int, SymInt)):
        return True
    if not hasattr(value, "__index__"):
        return False
    numel = getattr(value, "numel", None)
    return getattr(value, "ndim", 0) == 0 or (callable(numel) and numel() == 1)


def as_int(value, name: str) -> int:
    """``value`` as a Python int, accepting what torch accepts for an int argument.

    Python ints, NumPy integers and integer tensors holding one value pass; ``bool``,
    floats and tensors of other sizes or dtypes raise :class:`TypeError`, as torch's
    argument parser does.
    """
    if isinstance(value, SymInt) or (isinstance(value, int) and not isinstance(value, bool)):
        return value  # the common case, and a symbolic size under torch.compile
    if isinstance(value, bool) or not _scalar(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if getattr(value, "dtype", None) is not None and getattr(value, "ndim", 0) != 0:
        value = value.reshape(())  # a tensor holding one value
    try:
        return operator.index(value)
    except TypeError:  # a floating tensor has __index__ but refuses it
        raise TypeError(f"{name} must be an int, got {value!r}") from None


def check_int_or_ints(value, name: str) -> None:
    """Raise :class:`TypeError` unless ``value`` is an int or a sequence of ints (torch's
    argument parser checks every argument's type before any value)."""
    if _scalar(value):
        as_int(value, name)
    elif isinstance(value, (tuple, list)):
        for v in value:
            as_int(v, name)
    else:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")


def as_tuple(value: IntOrTuple, d: int, name: str) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ``d`` Python ints.

    An int (or NumPy integer, or integer tensor holding one value) is repeated ``d``
    times; a sequence (tuple, list, :class:`torch.Size`) must hold ``d`` of them, or one,
    which is repeated, as torch allows for ``stride=(2,)``.

    Raises:
        TypeError: if ``value`` is neither an int nor a sequence of ints.
        RuntimeError: if a sequence has the wrong length (as torch's convolutions do).
    """
    if _scalar(value):
        return (as_int(value, name),) * d
    if not isinstance(value, (tuple, list)):  # torch.Size is a tuple
        raise TypeError(f"{name} must be an int or a tuple of {d} ints, got {value!r}")
    items = tuple(as_int(v, name) for v in value)
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
) -> Pairs:
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
            before = [int(t / 2) for t in total]  # as torch's C++: rounded toward zero
            if any(b < 0 for b in before):  # an empty kernel
                raise RuntimeError("negative padding is not supported (padding='same' for a "
                                   f"kernel of size {list(kernel_size)})")
            return tuple((b, t - b) for b, t in zip(before, total))
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
    padding: Union[IntOrTuple, Pairs] = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    r"""Spatial output size of a convolution, per dimension.

    .. math::

        n_\text{out} = \left\lfloor \frac{n + p_\text{before} + p_\text{after}
                       - \text{dilation}\,(k - 1) - 1}{\text{stride}} \right\rfloor + 1

    The floor is there because a window that would hang over the padded input is
    simply not taken: the last ``(n_padded - span) mod stride`` positions of the padded
    input are never read.

    Args:
        input_size: ``n`` per dimension (an int for 1-d, or a tuple).
        kernel_size, stride, dilation: ints or tuples of the same length.
        padding: an int or tuple (the same on both sides), or pairs ``(before, after)``
            as returned by :func:`resolve_padding`.

    Returns:
        A tuple of ints. A non-positive entry means the kernel does not fit.
    """
    n = sizes(input_size, "input_size")
    d = len(n)
    k = as_tuple(kernel_size, d, "kernel_size")
    geometry = Geometry(as_tuple(stride, d, "stride"), _pairs(padding, d),
                        as_tuple(dilation, d, "dilation"))
    return geometry.output_size(n, k)


def conv_transpose_output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: Union[IntOrTuple, Pairs] = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    r"""Spatial output size of a transposed convolution, per dimension.

    .. math::

        n_\text{out} = (n - 1)\,\text{stride} - 2\,\text{padding}
                       + \text{dilation}\,(k - 1) + \text{output padding} + 1

    This inverts :func:`conv_output_size` only up to the floor there: every
    ``m`` in ``[n_out, n_out + stride - 1]`` convolves down to ``n``, and
    ``output_padding`` (smaller than the stride or the dilation) picks which one
    (:func:`transpose_output_padding`). ``padding`` may also be pairs ``(before, after)``.
    """
    n = sizes(input_size, "input_size")
    d = len(n)
    k = as_tuple(kernel_size, d, "kernel_size")
    geometry = Geometry(as_tuple(stride, d, "stride"), _pairs(padding, d),
                        as_tuple(dilation, d, "dilation"), 1,
                        as_tuple(output_padding, d, "output_padding"))
    return geometry.transpose_output_size(n, k)


def transpose_output_padding(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: Union[IntOrTuple, Pairs] = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    r"""The ``output_padding`` that takes a transposed convolution back to ``input_size``.

    A convolution maps every size ``n`` with the same floor in :func:`conv_output_size`
    to the same output size; its transpose must be told which one to return. The answer
    is the number of positions of the padded input that the last window does not reach:

    .. math::

        \text{output padding} = (n + p_\text{before} + p_\text{after}
                                 - \text{dilation}\,(k - 1) - 1) \bmod \text{stride},

    so that ``conv_transpose_output_size(conv_output_size(n, ...), ..., output_padding) == n``.
    This is what the gradient of a convolution with respect to its input needs, and what
    ``nn.ConvTranspose2d(...)(y, output_size=...)`` computes.
    """
    n = sizes(input_size, "input_size")
    d = len(n)
    k = as_tuple(kernel_size, d, "kernel_size")
    geometry = Geometry(as_tuple(stride, d, "stride"), _pairs(padding, d),
                        as_tuple(dilation, d, "dilation"))
    return geometry.transpose_output_padding(n, k)


@dataclass(frozen=True)
class Geometry:
    """Everything about a convolution but its tensors: the hyper-parameters, normalized.

    Attributes:
        stride, dilation: ``d`` ints each.
        padding: ``d`` pairs ``(before, after)`` of zeros around the input of the
            convolution (for a transposed convolution: of the convolution it transposes,
            i.e. what it crops off its output).
        groups: the number of groups.
        output_padding: ``d`` ints: positions a transposed convolution adds at the end of
            each dimension (zeros for a convolution).
    """

    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]
    groups: int = 1
    output_padding: tuple[int, ...] = ()

    @property
    def d(self) -> int:
        return len(self.stride)

    @property
    def unit_stride(self) -> bool:
        return all(s == 1 for s in self.stride)

    @property
    def padded(self) -> bool:
        return any(p for pair in self.padding for p in pair)

    def padded_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial size of the zero-padded input: :math:`n + p_\text{before} + p_\text{after}`."""
        return tuple(n + a + b for n, (a, b) in zip(input_size, self.padding))

    def interior(self, input_size: Sequence[int]) -> tuple[slice, ...]:
        """Where the input lies in its zero-padded grid: one slice per dimension."""
        return tuple(slice(a, a + n) for n, (a, _) in zip(input_size, self.padding))

    # The size formulas, on sizes already checked (the functions above check theirs first):
    # they run on every call, so they do no more than the arithmetic.
    def output_size(self, input_size: Sequence[int], kernel_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial size of the convolution's output (:func:`conv_output_size`)."""
        return tuple((n + pb + pa - dl * (k - 1) - 1) // s + 1 for n, k, s, (pb, pa), dl
                     in zip(input_size, kernel_size, self.stride, self.padding, self.dilation))

    def transpose_output_size(self, input_size: Sequence[int],
                              kernel_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial size of the transposed convolution's output
        (:func:`conv_transpose_output_size`, with :attr:`output_padding`)."""
        op = self.output_padding or (0,) * self.d
        return tuple((n - 1) * s - pb - pa + dl * (k - 1) + o + 1 for n, k, s, (pb, pa), o, dl
                     in zip(input_size, kernel_size, self.stride, self.padding, op, self.dilation))

    def transpose_output_padding(self, input_size: Sequence[int],
                                 kernel_size: Sequence[int]) -> tuple[int, ...]:
        """The ``output_padding`` that takes the transpose back to ``input_size``
        (:func:`transpose_output_padding`)."""
        return tuple((n + pb + pa - dl * (k - 1) - 1) % s for n, k, s, (pb, pa), dl
                     in zip(input_size, kernel_size, self.stride, self.padding, self.dilation))

    def transposed_to(self, input_size: Sequence[int], kernel_size: Sequence[int],
                      output_size: Optional[Sequence[int]] = None) -> Geometry:
        """The same geometry with the ``output_padding`` that maps an output of
        ``output_size`` (by default, this convolution's) back to ``input_size``: the
        geometry of the input gradient (:func:`transpose_output_padding`)."""
        if output_size is None:
            op = self.transpose_output_padding(input_size, kernel_size)
        else:  # fewer windows than the convolution has: the rest of the input is padding
            op = tuple(n + pb + pa - ((o - 1) * s + dl * (k - 1) + 1) for n, k, o, s, (pb, pa), dl
                       in zip(input_size, kernel_size, output_size, self.stride, self.padding,
                              self.dilation))
        return Geometry(self.stride, self.padding, self.dilation, self.groups, op)

    # The flat form custom operators take (their schemas allow only lists of ints).
    def flat(self) -> tuple[list[int], list[int], list[int], int, list[int]]:
        return (list(self.stride), [p for pair in self.padding for p in pair],
                list(self.dilation), self.groups, list(self.output_padding or (0,) * self.d))

    @classmethod
    def from_flat(cls, stride, padding, dilation, groups, output_padding) -> Geometry:
        pads = tuple((padding[2 * j], padding[2 * j + 1]) for j in range(len(stride)))
        return cls(tuple(stride), pads, tuple(dilation), groups, tuple(output_padding))


def sizes(size: IntOrTuple, name: str) -> tuple[int, ...]:
    """A size: one int (1-d) or a sequence of ints."""
    if _scalar(size):
        return (as_int(size, name),)
    return tuple(as_int(v, name) for v in size)


def _pairs(padding, d: int) -> Pairs:
    """Accept an int, a tuple of ints, or a tuple of (before, after) pairs."""
    if isinstance(padding, (tuple, list)) and len(padding) == d and all(
            isinstance(p, (tuple, list)) for p in padding):
        return tuple((int(a), int(b)) for a, b in padding)
    return tuple((p, p) for p in as_tuple(padding, d, "padding"))


def per_chunk(count: int, item_bytes: int, budget: int) -> int:
    """How many of ``count`` items of ``item_bytes`` bytes each fit in ``budget`` bytes: at
    least one, at most ``count`` (the chunk sizes of convlib's forms, each with its own
    budget)."""
    return max(1, min(count, budget // max(1, item_bytes)))


def numel(size: Sequence[int]) -> int:
    """Product of a size tuple (1 for the empty tuple)."""
    return math.prod(size)
