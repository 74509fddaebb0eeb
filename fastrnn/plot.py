"""matplotlib figures. Imported only when a plot is made; uses the Agg backend (no display)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .files import atomic_write  # noqa: E402


def plot_loss(metrics, path: str) -> None:
    """Smooth loss (and the raw chunk loss, faint) per update, from metrics rows
    (update, epoch, loss, smooth_loss); written atomically to ``path``."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if len(metrics):
        ax.plot(metrics[:, 0], metrics[:, 2], color="0.8", lw=0.5, label="chunk loss")
        ax.plot(metrics[:, 0], metrics[:, 3], color="C0", lw=1.5, label="smooth loss")
        ax.legend()
    ax.set_xlabel("update")
    ax.set_ylabel("loss per chunk (nats)")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
