"""Documents: the lines of a list (names, words, titles) or tweets, each read from the start.

A documents book holds each document's characters followed by the end marker
(``formats.END_OF_TEXT``). The model reads the marker from the start state (the kernels set
the state to zeros wherever the marker is the input: ``model.State.restart``), predicts a
document's first character from it, and learns to predict the marker after the document's
last character, which is makemore's count of a name's characters and its end.

Training packs the documents back to back after one leading marker, in an order shuffled every
epoch from the seed (``Documents.packed``), so that chunks of any length run at a book's speed
and a list sorted by name or frequency trains as a shuffled one does. Nothing crosses a marker,
in the forward pass or the gradient, so the packing changes what is learned only through the
order of the updates.
"""
from __future__ import annotations

import numpy as np

from .errors import FastrnnError

# the generator streams drawn from the seed: [seed, ORDER, epoch] orders the documents of an
# epoch, [seed, HOLD_OUT] picks the held-out ones
ORDER, HOLD_OUT = 3, 4


def document_lines(text: str) -> list[str]:
    """The documents of a list: its non-empty lines, without surrounding blanks (so that a
    line break CR LF, trailing spaces or indentation do not become characters)."""
    return [line for line in (raw.strip() for raw in text.split("\n")) if line]


class Documents:
    """Encoded documents, each followed by its end marker.

    encoded (N,) int: the documents as a book holds them, d_1 E d_2 E ... d_n E (E = ``marker``,
    the vocabulary index of the end marker); a book that does not end with E ends with one
    document more.
    """

    def __init__(self, encoded: np.ndarray, marker: int):
        encoded = np.asarray(encoded)
        if encoded.shape[0] and encoded[-1] != marker:
            encoded = np.concatenate([encoded, np.array([marker], encoded.dtype)])
        self.encoded, self.marker = encoded, int(marker)
        ends = np.flatnonzero(encoded == marker)
        self.starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        self.lengths = (ends + 1 - self.starts).astype(np.int64)  # with the marker

    def __len__(self) -> int:
        return self.starts.shape[0]

    @property
    def chars(self) -> int:
        """Characters of every document with its end marker: the predictions of a pass."""
        return int(self.encoded.shape[0])

    def packed(self, order: np.ndarray | None = None) -> np.ndarray:
        """The documents in ``order`` (indices; None: as they are), after one leading marker:
        E d E d E ..., each document read from the start state at its marker."""
        order = np.arange(len(self)) if order is None else np.asarray(order)
        lengths = self.lengths[order]
        out = np.empty(1 + int(lengths.sum()), self.encoded.dtype)
        out[0] = self.marker
        # out[1 + k] = encoded[start of the document k falls in + offset within it]
        starts_out = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        source = np.repeat(self.starts[order] - starts_out, lengths) + np.arange(lengths.sum())
        out[1:] = self.encoded[source]
        return out

    def packed_for_epoch(self, seed: int, epoch: int) -> np.ndarray:
        """``packed`` in the order of pass ``epoch`` over the documents, drawn from ``seed``."""
        return self.packed(np.random.default_rng([seed, ORDER, epoch]).permutation(len(self)))

    def subset(self, indices) -> Documents:
        """The documents at ``indices``, in that order."""
        return Documents(self.packed(np.asarray(indices, np.int64))[1:], self.marker)

    def split(self, fraction: float, seed: int) -> tuple[Documents, Documents]:
        """(training documents, held-out documents): a random ``fraction`` of the documents,
        drawn from ``seed``, is held out (whole documents, not the list's end: in a list sorted
        by frequency its last tenth is its rarest names, not a sample of it)."""
        count = int(round(fraction * len(self)))
        if count < 1 or count >= len(self):
            raise FastrnnError(f"holding out {fraction:g} of {len(self):,} documents leaves "
                               f"{'none to validate on' if count < 1 else 'none to train on'}")
        held = np.sort(np.random.default_rng([seed, HOLD_OUT]).permutation(len(self))[:count])
        kept = np.setdiff1d(np.arange(len(self)), held)
        return self.subset(kept), self.subset(held)

    def texts(self, vocab) -> list[str]:
        """The documents as strings (without their markers)."""
        return [vocab.decode(self.encoded[s:s + n - 1]) for s, n in zip(self.starts.tolist(), self.lengths.tolist())]


def document_starts(book: np.ndarray, marker: int, positions: np.ndarray) -> np.ndarray:
    """Each of ``positions`` moved back to the nearest document start at or before it in the
    packed ``book`` (the marker that opens the document: the state restarts there)."""
    markers = np.flatnonzero(book == marker)
    return markers[np.maximum(np.searchsorted(markers, positions, side="right") - 1, 0)].astype(np.int64)


def origin(text: str, training: set, held_out: set) -> str:
    """"training", "held_out" or "new": whether a sampled document copies a training
    document, copies a held-out one, or is new."""
    return "training" if text in training else "held_out" if text in held_out else "new"


def novelty(texts, training: set, held_out: set) -> dict:
    """How many of ``texts`` copy a training document, how many a held-out one, and how many
    are new (makemore's split of its samples)."""
    counts = {"training": 0, "held_out": 0, "new": 0}
    for text in texts:
        counts[origin(text, training, held_out)] += 1
    return counts
