"""convlib: every convolution as a matrix.

The teaching loops (:func:`corr2d`), the kernel matrix (:func:`kernel_matrix`), the
shape arithmetic, and drop-ins for the six :mod:`torch.nn.functional` convolutions
computed through factorizations of the kernel matrix (:mod:`convlib.functional`, with
layers in :mod:`convlib.nn`), registered as PyTorch operators (:mod:`convlib.ops`) and
backed by tests against torch.
"""

from . import backends, nn, ops
from .functional import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,
                         conv_transpose3d)
from .loops import conv_transpose2d_loop, corr2d, kernel_matrix_loop
from .matrix import DEFAULT_MAX_DENSE_BYTES, kernel_matrix, kernel_matrix_indices
from .pooling import avg_pool_matrix, max_pool_matrix, pool_output_size
from .selection import col2im, im2col
from .shapes import (Geometry, conv_output_size, conv_transpose_output_size, resolve_padding,
                     transpose_output_padding)
from .stacks import ComposedConv, compose_conv, receptive_field
from .upsampling import checkerboard_score, upsample_matrix, upsampling_kernel

__version__ = "0.2.0"

__all__ = [
    "corr2d",
    "kernel_matrix_loop",
    "conv_transpose2d_loop",
    "kernel_matrix",
    "kernel_matrix_indices",
    "DEFAULT_MAX_DENSE_BYTES",
    "Geometry",
    "conv_output_size",
    "conv_transpose_output_size",
    "transpose_output_padding",
    "resolve_padding",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "im2col",
    "col2im",
    "backends",
    "nn",
    "ops",
    "compose_conv",
    "ComposedConv",
    "receptive_field",
    "pool_output_size",
    "avg_pool_matrix",
    "max_pool_matrix",
    "upsampling_kernel",
    "upsample_matrix",
    "checkerboard_score",
]
