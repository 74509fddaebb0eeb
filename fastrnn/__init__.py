"""fastrnn: train a vanilla character-level RNN on a book, fast, on a CPU."""

__version__ = "0.1.0"
