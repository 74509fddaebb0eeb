"""An input embedding, folded into the one-hot input weights the stack's kernels read.

With an embedding E (K, D) before layer 0 (PyTorch's ``nn.Embedding``), layer 0's input
product is W_ih E[x_t] for W_ih (gm, D): column x_t of M = W_ih E^T (gm, K). So once per
update the model is folded into the one-hot model whose layer-0 input weights are M, the
kernels run on that unchanged, and the chain rule takes the gradient back:

    M^T = E W_ih^T (K, gm),   dE = dM^T W_ih (K, D),   dW_ih^T = E^T dM^T (D, gm)

Folding costs 3 K D gm multiply-adds per update, on one thread (an LSTM 256 with D = 256 and
K = 65, 32 chunks of 64 characters, float32: 6 % of its speed, measured), far less than the
per-character input products a gather of E[x_t] would run through W_ih. A row of dM^T that no
chunk's input reached is zero, and so is that character's row of dE, as the optimizer's
passing over rows of characters not held requires.

The flat buffer of such a model starts with E (K, D) and W_ih.T (D, gm) of layer 0, then holds
what the one-hot model holds after its W_ih.T (K, gm) (``cells.Layout``); the folded buffer
is that one-hot model's.
"""
import numpy as np
from numba import njit

from .config import JIT
from .linalg import copy_into, matmul_add, matmul_add_transposed, transpose_into


@njit(**JIT)
def embedding_fold_into(folded, params, K, D, gm):
    """folded (P - (K + gm) D + K gm,) <- the one-hot model of params (P,): W_ih.T of layer 0
    = E W_ih.T (K, gm), every later array copied."""
    E = params[:K * D].reshape((K, D))
    W_ihT = params[K * D:(K + gm) * D].reshape((D, gm))
    MT = folded[:K * gm].reshape((K, gm))
    MT[:] = 0.0
    matmul_add(MT, E, W_ihT)
    copy_into(folded[K * gm:], params[(K + gm) * D:])


@njit(**JIT)
def embedding_grads_into(grads, folded_grads, params, K, D, gm):
    """grads (P,) <- the gradient of the embedding model's params (P,) from folded_grads, that
    of its one-hot fold: dE = dM.T W_ih, dW_ih.T = E.T dM.T, every later array copied."""
    E = params[:K * D].reshape((K, D))
    W_ihT = params[K * D:(K + gm) * D].reshape((D, gm))
    dMT = folded_grads[:K * gm].reshape((K, gm))
    W_ih = np.empty((gm, D), params.dtype)
    transpose_into(W_ih, W_ihT)
    dE = grads[:K * D].reshape((K, D))
    dE[:] = 0.0
    matmul_add(dE, dMT, W_ih)
    dW_ihT = grads[K * D:(K + gm) * D].reshape((D, gm))
    dW_ihT[:] = 0.0
    matmul_add_transposed(dW_ihT, E, dMT)
    copy_into(grads[(K + gm) * D:], folded_grads[K * gm:])
