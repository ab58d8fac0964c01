"""The teaching versions: plain Python loops, slow and obviously right.

Each one has a fast twin elsewhere in the library and a test that they agree.
They work on single-channel 2-d tensors, stride 1 and no padding, which is all the
first chapters need.
"""

from __future__ import annotations

import torch

__all__ = ["corr2d", "kernel_matrix_loop", "conv_transpose2d_loop"]


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    r"""2-d cross-correlation of ``X`` with ``K``, one output entry at a time.

    .. math::

        Y[i, j] = \sum_{a=0}^{h_K - 1} \sum_{b=0}^{w_K - 1} X[i + a,\, j + b]\; K[a, b]

    This is what deep-learning libraries call a convolution (a true convolution
    would flip ``K``).

    Shape:
        - X: :math:`(h_X, w_X)`
        - K: :math:`(h_K, w_K)`
        - Output: :math:`(h_X - h_K + 1,\; w_X - w_K + 1)`, dtype of ``X * K``.
    """
    if X.dim() != 2 or K.dim() != 2:
        raise ValueError(f"corr2d expects 2-d X and K, got X of shape {tuple(X.shape)} "
                         f"and K of shape {tuple(K.shape)}")
    h_K, w_K = K.shape
    h_Y, w_Y = X.shape[0] - h_K + 1, X.shape[1] - w_K + 1
    if h_Y < 1 or w_Y < 1:
        raise ValueError(f"K of shape {tuple(K.shape)} is larger than X of shape {tuple(X.shape)}")
    Y = torch.zeros(h_Y, w_Y, dtype=torch.result_type(X, K), device=X.device)
    for i in range(h_Y):
        for j in range(w_Y):
            Y[i, j] = (X[i:i + h_K, j:j + w_K] * K).sum()
    return Y


def kernel_matrix_loop(K: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    r"""The dense kernel matrix of ``K``, filled in by four nested loops.

    Output position :math:`(i, j)` is row :math:`r = i\,w_Y + j`; input position
    :math:`(i + a, j + b)` is column :math:`c = (i + a)\,w_X + (j + b)`, and there
    the row holds :math:`K[a, b]`:

    .. math::

        W[i\,w_Y + j,\; (i + a)\,w_X + j + b] = K[a, b]

    Shape:
        - K: :math:`(h_K, w_K)`
        - Output: :math:`(h_Y w_Y,\; h_X w_X)` with :math:`h_Y = h_X - h_K + 1`,
          :math:`w_Y = w_X - w_K + 1`.
    """
    h_X, w_X = input_size
    h_K, w_K = K.shape
    h_Y, w_Y = h_X - h_K + 1, w_X - w_K + 1
    W = torch.zeros(h_Y * w_Y, h_X * w_X, dtype=K.dtype, device=K.device)
    for i in range(h_Y):
        for j in range(w_Y):
            for a in range(h_K):
                for b in range(w_K):
                    W[i * w_Y + j, (i + a) * w_X + (j + b)] = K[a, b]
    return W


def conv_transpose2d_loop(Y: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    r"""2-d transposed convolution by scattering: each input entry stamps a scaled ``K``.

    .. math::

        Z[i + a,\, j + b] \mathrel{+}= Y[i, j]\; K[a, b]

    This is :math:`W^\top \operatorname{vec}(Y)` written as a loop over the entries
    of ``Y``: column :math:`(i, j)` of :math:`W^\top` is a copy of ``K`` placed at
    :math:`(i, j)`.

    Shape:
        - Y: :math:`(h_Y, w_Y)`
        - K: :math:`(h_K, w_K)`
        - Output: :math:`(h_Y + h_K - 1,\; w_Y + w_K - 1)`
    """
    h_Y, w_Y = Y.shape
    h_K, w_K = K.shape
    Z = torch.zeros(h_Y + h_K - 1, w_Y + w_K - 1, dtype=torch.result_type(Y, K), device=Y.device)
    for i in range(h_Y):
        for j in range(w_Y):
            Z[i:i + h_K, j:j + w_K] += Y[i, j] * K
    return Z
