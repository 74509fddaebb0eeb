"""The GRU cell's step, one timestep of one layer for G streams (PyTorch's ``torch.nn.GRU``):

    r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

The products are ``stack.py``'s; this module holds the gates, as a step pair of the signatures
every cell's has (``cells.py`` states the contract). Backward, with dh = dL/dh_t and
q = W_hn h_{t-1} + b_hn (kept from the forward step in aux):

    da_n = dh (1 - z) (1 - n^2),   da_z = dh (h_{t-1} - n) z (1 - z),   da_r = da_n q r (1 - r)
    the input product's gradient (da_r, da_z, da_n); the recurrent one's (da_r, da_z, da_n r)
    dh_next <- dh z   (the caller adds W_hh^T of the recurrent gradient)
"""
from numba import njit

from .config import JIT
from .mathfn import sigmoid_inplace, tanh_inplace


@njit(**JIT)
def gru_forward_step(h, c, a, aux, hh, b_hh, h_prev, c_prev, scratch):
    """h (G, m): written with h_t.   c, c_prev: unused (the signature is every cell's).
    a (G, 3m): read as W_ih x_t + b_ih, written with the activated gates (r, z, n).   aux (G, m):
    written with q = W_hn h_{t-1} + b_hn.   hh (G, 3m): W_hh h_{t-1}, read.   b_hh (3m,),
    h_prev (G, m): read.   scratch (3, >= 2m): workspace."""
    G, m = h.shape
    for s in range(G):
        for k in range(2 * m):
            a[s, k] += hh[s, k] + b_hh[k]
        for i in range(m):
            aux[s, i] = hh[s, 2 * m + i] + b_hh[2 * m + i]
        sigmoid_inplace(a[s, :2 * m], scratch)
        for i in range(m):
            a[s, 2 * m + i] += a[s, i] * aux[s, i]
        tanh_inplace(a[s, 2 * m:], scratch)
        for i in range(m):
            z = a[s, m + i]
            h[s, i] = (1.0 - z) * a[s, 2 * m + i] + z * h_prev[s, i]


@njit(**JIT)
def gru_backward_step(dg_ih, dg_hh, dh_next, dc_next, dh_above, a, aux, h_prev, c_prev, h):
    """dg_ih, dg_hh (G, 3m): written with the gradients of the input and recurrent products'
    outputs.   dh_next (G, m): read as dL/dh_t through step t+1, written with its direct part
    dh z.   dc_next, c_prev, h: unused.   dh_above (G, m): dL/dh_t from above, read.   a, aux:
    the step's gates and q, read.   h_prev (G, m): read."""
    G, m = dh_next.shape
    for s in range(G):
        for i in range(m):
            dh = dh_above[s, i] + dh_next[s, i]
            r, z, n = a[s, i], a[s, m + i], a[s, 2 * m + i]
            dan = dh * (1.0 - z) * (1.0 - n * n)
            daz = dh * (h_prev[s, i] - n) * z * (1.0 - z)
            dar = dan * aux[s, i] * r * (1.0 - r)
            dg_ih[s, i], dg_ih[s, m + i], dg_ih[s, 2 * m + i] = dar, daz, dan
            dg_hh[s, i], dg_hh[s, m + i], dg_hh[s, 2 * m + i] = dar, daz, dan * r
            dh_next[s, i] = dh * z
