"""Draws paper.png beside the paper.json that `gradtrace paper` writes.

Two panels, one line per experiment: each hidden layer's activation variance (left) and the
variance of the gradient with respect to its pre-activations (right), both on a log scale since
they span decades. Measured values are solid with markers; the prediction is dashed, starting
from the measured value where the signal enters (the first layer going forward, the last layer
going backward) and multiplied by the predicted ratio at every layer after it.

Usage: plot_paper.py PAPER_JSON
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

FORMAT = "gradtrace-paper"


def fail(message):
    print(f"plot_paper.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def draw(ax, experiment, key, forward, colour):
    """Measured and predicted variance per layer for one experiment on one panel."""
    measured = experiment[key]
    layers = list(range(1, len(measured) + 1))
    ratio = experiment["predicted_ratio"]
    if forward:
        predicted = [measured[0] * ratio ** (layer - 1) for layer in layers]
    else:
        last = len(measured)
        predicted = [measured[-1] * ratio ** (last - layer) for layer in layers]
    label = f"{experiment['name']} (ratio {ratio:.3g})"
    ax.plot(layers, measured, "o-", color=colour, markersize=3, label=f"{label}, measured")
    ax.plot(layers, predicted, "--", color=colour, alpha=0.7, label=f"{label}, predicted")


def main():
    if len(sys.argv) != 2:
        fail("usage: plot_paper.py PAPER_JSON")
    path = Path(sys.argv[1])
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"{path}: cannot read it as JSON ({error})")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        fail(f"{path}: not a {FORMAT} file")

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for experiment, colour in zip(document["experiments"], colours):
        draw(left, experiment, "activation_variance", True, colour)
        draw(right, experiment, "gradient_variance", False, colour)
    for ax, what in ((left, "activation variance (forward)"),
                     (right, "back-propagated gradient variance (toward the input)")):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("hidden layer (1 = next to the input)")
        ax.set_ylabel("variance (log scale)")
        ax.set_title(what)
        ax.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7, framealpha=0.6, loc="lower right")
    figure.suptitle("Variance per layer at initialization: Glorot & Bengio (2010) and "
                    "He et al. (2015), measured against their predictions")
    figure.tight_layout()
    target = path.with_suffix(".png")
    figure.savefig(target, dpi=120)
    print(target)


if __name__ == "__main__":
    main()
