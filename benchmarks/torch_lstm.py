"""The peer baseline: a plain PyTorch character-level LSTM, as people write it, trained for a
fixed number of seconds; prints its held-out loss as JSON.

    python benchmarks/torch_lstm.py --book BOOK.txt --seconds 150 [--threads 2]

An embedding of 256, one LSTM layer of 256 units, a linear head; Adam at 4e-3, batches of 32
chunks of 64 characters taken at random places, the gradient's global norm clipped to 5. The
last tenth of the book is held out and scored at the end from a zero state, in one pass with the
state carried from chunk to chunk (as `fastrnn eval` scores). Needs torch (the `bench` extra).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def held_out_loss(model, data: torch.Tensor, chunk: int = 1024) -> float:
    """Mean cross-entropy (nats/char) of predicting data[1:] from data[:-1], the state carried."""
    model.eval()
    total, state = 0.0, None
    with torch.no_grad():
        for start in range(0, len(data) - 1, chunk):
            x = data[start:start + chunk + 1]
            logits, state = model(x[:-1].unsqueeze(0), state)
            total += nn.functional.cross_entropy(logits[0], x[1:], reduction="sum").item()
    model.train()
    return total / (len(data) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", required=True)
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--embedding", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = open(args.book, encoding="utf-8").read()
    chars = sorted(set(text))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    data = torch.from_numpy(np.searchsorted(np.array([ord(c) for c in chars], np.uint32), codes).astype(np.int64))
    split = len(data) - len(data) // 10
    train, held = data[:split], data[split:]
    model = CharLSTM(len(chars), args.embedding, args.hidden, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    updates, spent = 0, 0.0
    while spent < args.seconds:
        t0 = time.perf_counter()
        starts = torch.from_numpy(rng.integers(0, len(train) - args.seq - 1, args.batch))
        idx = starts[:, None] + torch.arange(args.seq + 1)
        batch = train[idx]
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        updates += 1
        spent += time.perf_counter() - t0
    nats = held_out_loss(model, held)
    print(json.dumps({"seconds": spent, "updates": updates, "chars_per_s": updates * args.batch * args.seq / spent,
                      "held_out_nats_per_char": nats, "held_out_bits_per_char": nats / math.log(2),
                      "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()
