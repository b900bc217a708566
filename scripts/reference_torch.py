"""A plain PyTorch eager version of gradtrace's training loop, for the benchmark only.

It trains the study's tutorial network on two circles the way `gradtrace run` does: a
2-5-5-5-5-1 MLP, every kernel drawn from normal(0, 1), biases zero, binary cross-entropy on the
logit, RMSprop, 100 epochs of batch 32 with a reshuffle every epoch and the last partial batch
used. At the first step of every epoch it copies each kernel gradient to numpy and takes its
mean and S.D., as gradtrace's gradient recorder does, and it keeps the per-epoch loss and
accuracy. Only the training loop is timed; imports, data and model set-up are not.

It is a timing reference, not a numerical one: its random streams differ from gradtrace's, and
torch's RMSprop adds epsilon outside the square root where gradtrace (as Keras) adds it inside.
It also skips the weight snapshot gradtrace takes after every epoch.

Usage: reference_torch.py [--epochs 100] [--seed 0] [--repeats 1] [--activation sigmoid]
Prints one line per run: `seconds <loop seconds> accuracy <final training-set accuracy>`.
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def two_circles(samples=1000, factor=0.5, noise=0.1, seed=0):
    """scikit-learn's make_circles: outer circle label 0, inner circle label 1, shuffled, noised."""
    rng = np.random.default_rng(seed)
    outer, inner = samples // 2, samples - samples // 2
    angles_out = np.linspace(0, 2 * np.pi, outer, endpoint=False)
    angles_in = np.linspace(0, 2 * np.pi, inner, endpoint=False)
    x = np.concatenate([
        np.stack([np.cos(angles_out), np.sin(angles_out)], axis=1),
        factor * np.stack([np.cos(angles_in), np.sin(angles_in)], axis=1),
    ])
    y = np.concatenate([np.zeros(outer), np.ones(inner)])

    # Shuffle first, then add noise, in make_circles's order.
    order = rng.permutation(samples)
    x, y = x[order], y[order]
    x = x + rng.normal(scale=noise, size=x.shape)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]


def build_model(activation, hidden=(5, 5, 5, 5)):
    """2 -> hidden... -> 1 logit, kernels from normal(0, 1), biases zero."""
    widths = [2, *hidden]
    layers = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(widths[-1], 1))
    model = nn.Sequential(*layers)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, mean=0.0, std=1.0)
            nn.init.zeros_(layer.bias)
    return model


def train(x, y, args, seed):
    """One run; returns (training-loop seconds, final accuracy on the training set)."""
    torch.manual_seed(seed)
    model = build_model(args.activation)
    kernels = [layer.weight for layer in model if isinstance(layer, nn.Linear)]
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    shuffle = torch.Generator().manual_seed(seed)
    n = len(y)
    history, gradient_stats = [], []

    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n, generator=shuffle)
        x_epoch, y_epoch = x[order], y[order]
        epoch_logits = torch.empty_like(y)

        for step, start in enumerate(range(0, n, args.batch_size)):
            xb = x_epoch[start:start + args.batch_size]
            yb = y_epoch[start:start + args.batch_size]
            optimizer.zero_grad()
            logits = model(xb)
            loss_fn(logits, yb).backward()
            epoch_logits[start:start + len(yb)] = logits.detach()
            # What a gradient recorder does: read after backward, before the update.
            if step == 0:
                for kernel in kernels:
                    grad = kernel.grad.numpy().copy()
                    gradient_stats.append((epoch, grad.mean(), grad.std()))
            optimizer.step()

        # Per epoch, as gradtrace's history keeps: loss and accuracy from the batch logits.
        loss = loss_fn(epoch_logits, y_epoch).item()
        accuracy = ((epoch_logits > 0).float() == y_epoch).float().mean().item()
        history.append((epoch, loss, accuracy))
    seconds = time.perf_counter() - started

    with torch.no_grad():
        accuracy = ((model(x) > 0).float() == y).float().mean().item()
    return seconds, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first run")
    parser.add_argument("--repeats", type=int, default=1, help="runs in this one process")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="sigmoid")
    args = parser.parse_args()
    if args.epochs < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--epochs, --batch-size and --repeats must be at least 1")

    torch.set_num_threads(1)
    x, y = two_circles()
    for repeat in range(args.repeats):
        seconds, accuracy = train(x, y, args, args.seed + repeat)
        print(f"seconds {seconds:.4f} accuracy {accuracy:.3f}", flush=True)


if __name__ == "__main__":
    main()
