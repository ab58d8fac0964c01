"""convlib: every convolution as a matrix.

The teaching loops (:func:`corr2d`), the kernel matrix (:func:`kernel_matrix`) and
the shape arithmetic, backed by tests against :mod:`torch.nn.functional`.
"""

from .loops import conv_transpose2d_loop, corr2d, kernel_matrix_loop
from .matrix import DEFAULT_MAX_DENSE_BYTES, kernel_matrix, kernel_matrix_indices
from .shapes import conv_output_size, conv_transpose_output_size, resolve_padding

__version__ = "0.1.0"

__all__ = [
    "corr2d",
    "kernel_matrix_loop",
    "conv_transpose2d_loop",
    "kernel_matrix",
    "kernel_matrix_indices",
    "DEFAULT_MAX_DENSE_BYTES",
    "conv_output_size",
    "conv_transpose_output_size",
    "resolve_padding",
]
