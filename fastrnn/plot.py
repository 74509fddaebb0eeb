"""matplotlib figures, made without pyplot: no backend is switched and no global state is
touched, so the same figure serves a PNG file and a notebook's output."""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from .files import atomic_write


class NotebookFigure(Figure):
    """A Figure that shows itself as a PNG in a notebook's output, whatever backend is active."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def loss_figure(metrics, validation=None) -> Figure:
    """Smooth loss (and the raw chunk loss, faint) per update from metrics rows (update, epoch,
    loss, smooth_loss), the start of each epoch dotted; with validation rows (update,
    nats/char, bits/char), their bits per character on a second axis."""
    fig = NotebookFigure(figsize=(8, 4.5), dpi=100)
    ax = fig.subplots()
    metrics = np.asarray(metrics).reshape(-1, 4)
    if len(metrics):
        ax.plot(metrics[:, 0], metrics[:, 2], color="0.8", lw=0.5, label="chunk loss")
        ax.plot(metrics[:, 0], metrics[:, 3], color="C0", lw=1.5, label="smooth loss")
        # a dotted line where each epoch starts
        for start in metrics[1:, 0][np.diff(metrics[:, 1]) > 0]:
            ax.axvline(start, color="0.6", lw=0.8, ls=":")
        ax.legend(loc="upper left")
    ax.set_xlabel("update")
    ax.set_ylabel("loss per chunk (nats)")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    if validation is not None and len(validation):
        val = np.asarray(validation).reshape(-1, 3)
        right = ax.twinx()
        right.plot(val[:, 0], val[:, 2], color="C1", marker="o", ms=3, lw=1.2, label="validation")
        right.set_ylabel("validation bits per character")
        right.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_loss(metrics, path: str, validation=None) -> None:
    """``loss_figure`` written atomically to ``path`` as PNG."""
    fig = loss_figure(metrics, validation)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
