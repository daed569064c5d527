"""Fit y = w*x + b by gradient descent; works under `kleio` and under plain `python`.

    kleio python examples/train.py --epochs 5 --lr 0.1

Each epoch logs its statistics and saves a checkpoint; run the same command
again after a crash or a Ctrl-C and it resumes from the last checkpoint.
"""

import argparse
import io
import json
import random

from kleio_client import kleio_logger


def make_data(n=64, seed=0):
    """Synthetic, reproducible data: y = 3x - 1 plus a little noise."""
    rng = random.Random(seed)
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return [(x, 3 * x - 1 + rng.gauss(0, 0.1)) for x in xs]


def train_one_epoch(data, w, b, lr, epoch, batch_size=8):
    """One pass of mini-batch gradient descent on the mean squared error."""
    shuffled = list(data)
    random.Random(epoch).shuffle(shuffled)  # seeded by the epoch: a resumed run does the same
    for i in range(0, len(shuffled), batch_size):
        batch = shuffled[i : i + batch_size]
        errors = [(x, w * x + b - y) for x, y in batch]
        w -= lr * sum(2 * e * x for x, e in errors) / len(batch)
        b -= lr * sum(2 * e for _, e in errors) / len(batch)
    loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
    return w, b, loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument(
        "--crash-at-epoch",
        type=int,
        default=None,
        help="raise an error at this epoch (to try resuming)",
    )
    args = parser.parse_args()

    data = make_data()
    w, b, start = 0.0, 0.0, 1
    ckpt = kleio_logger.load_artifact("checkpoint.json")  # None outside kleio or on a first run
    if ckpt is not None:
        with ckpt.open() as f:
            state = json.load(f)
        w, b, start = state["w"], state["b"], ckpt.metadata["epoch"] + 1
        print(f"resuming after epoch {ckpt.metadata['epoch']}")

    for epoch in range(start, args.epochs + 1):
        if epoch == args.crash_at_epoch:
            raise RuntimeError(f"simulated crash at epoch {epoch}")
        w, b, loss = train_one_epoch(data, w, b, args.lr, epoch)
        kleio_logger.log_statistic(epoch=epoch, loss=loss, lr=args.lr)
        print(f"epoch {epoch}/{args.epochs}  loss {loss:.4f}  w {w:.3f}  b {b:.3f}")
        state = json.dumps({"w": w, "b": b}).encode()
        kleio_logger.log_artifact("checkpoint.json", io.BytesIO(state), epoch=epoch)

    print(f"done: w={w:.3f} b={b:.3f} (true values 3 and -1)")


if __name__ == "__main__":
    main()
