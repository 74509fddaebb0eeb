"""The LSTM cell's step, one timestep of one layer for G streams (PyTorch's ``torch.nn.LSTM``):

    (i, f, g, o) = the four blocks of a = (W_ih x_t + b_ih) + (W_hh h_{t-1} + b_hh)
    i, f, o = sigmoid(.),   g = tanh(.)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

The products are ``stack.py``'s (all cells share them); this module holds what is the LSTM's
own: the gates' nonlinearities and their derivatives, as a step pair of the signatures every
cell's has (``cells.py`` states the contract: what a step reads and writes). Backward, with
dh = dL/dh_t:

    dc = dc_next + dh o (1 - tanh(c_t)^2)
    da_i = dc g i (1 - i),   da_f = dc c_{t-1} f (1 - f),   da_g = dc i (1 - g^2),
    da_o = dh tanh(c_t) o (1 - o),   dc_next <- dc f
"""
from numba import njit

from .config import JIT
from .mathfn import sigmoid_inplace, tanh_inplace


@njit(**JIT)
def lstm_forward_step(h, c, a, aux, hh, b_hh, h_prev, c_prev, scratch):
    """h, c (G, m): written with h_t, c_t.   a (G, 4m): read as W_ih x_t + b_ih, written with the
    activated gates (i, f, g, o).   aux (G, m): written with tanh(c_t).   hh (G, 4m): W_hh h_{t-1},
    read.   b_hh (4m,), h_prev (G, m), c_prev (G, m): read.   scratch (3, >= G m): workspace."""
    G, m = h.shape
    for s in range(G):
        for k in range(4 * m):
            a[s, k] += hh[s, k] + b_hh[k]
        sigmoid_inplace(a[s, :2 * m], scratch)
        tanh_inplace(a[s, 2 * m:3 * m], scratch)
        sigmoid_inplace(a[s, 3 * m:], scratch)
        # c_t = f c_{t-1} + i g
        for i in range(m):
            c[s, i] = a[s, m + i] * c_prev[s, i] + a[s, i] * a[s, 2 * m + i]
            aux[s, i] = c[s, i]
    tanh_inplace(aux.reshape(G * m), scratch)
    # h_t = o tanh(c_t)
    for s in range(G):
        for i in range(m):
            h[s, i] = a[s, 3 * m + i] * aux[s, i]


@njit(**JIT)
def lstm_backward_step(dg_ih, dg_hh, dh_next, dc_next, dh_above, a, aux, h_prev, c_prev, h):
    """dg_ih, dg_hh (G, 4m): written with dL/da (the same for both products).   dh_next (G, m):
    read as dL/dh_t through h_{t+1}, written with 0 (the caller adds W_hh^T da).   dc_next
    (G, m): read as dL/dc_t through c_{t+1}, written with dL/dc_{t-1}.   dh_above (G, m): dL/dh_t
    from the output or the layer above, read.   a, aux: the step's gates and tanh(c_t), read.
    h_prev, h: unused (the signature is every cell's).   c_prev (G, m): read."""
    G, m = dh_next.shape
    for s in range(G):
        for i in range(m):
            dh = dh_above[s, i] + dh_next[s, i]
            ig, fg, gg, og = a[s, i], a[s, m + i], a[s, 2 * m + i], a[s, 3 * m + i]
            tc = aux[s, i]
            dc = dc_next[s, i] + dh * og * (1.0 - tc * tc)
            di = dc * gg * ig * (1.0 - ig)
            df = dc * c_prev[s, i] * fg * (1.0 - fg)
            dg = dc * ig * (1.0 - gg * gg)
            do = dh * tc * og * (1.0 - og)
            dg_ih[s, i], dg_ih[s, m + i], dg_ih[s, 2 * m + i], dg_ih[s, 3 * m + i] = di, df, dg, do
            dg_hh[s, i], dg_hh[s, m + i], dg_hh[s, 2 * m + i], dg_hh[s, 3 * m + i] = di, df, dg, do
            dc_next[s, i] = dc * fg
            dh_next[s, i] = 0.0
