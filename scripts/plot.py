"""Draws the weight and gradient histories of gradtrace runs, one PNG per view, beside each JSON.

For every run it writes:
  <stem>.weights.png    mean and S.D. of each layer's kernel after every epoch (epoch 0 is the
                        initialization), to see whether the weights move at all and which layers do;
  <stem>.gradients.png  mean and S.D. of each layer's kernel gradient at the recorded steps, and
                        the loss at those steps, to see gradients vanish layer by layer towards the
                        input. Drawn only when the run recorded gradients.

A gradient record is placed at epoch + step / steps per epoch, so a record at the first step of
epoch e sits at e, and the record taken over the whole training set after the last step sits one
epoch past the last. Positive quantities (S.D., loss) get a log scale when they span more than
two decades, the gradient S.D. always; means change sign and stay linear, since a symmetric log
scale makes every sign flip look like a jump of decades. Missing values (null in the JSON,
written for non-finite numbers) leave gaps in the lines.

Everything comes from the JSON alone. Usage: plot.py PATH... where a PATH is a run JSON or a
folder of them (other JSON files in a folder, such as a sweep summary, are skipped).
"""

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

FORMAT = "gradtrace-run"


class RunError(Exception):
    """A file that should be a run and cannot be read as one; the message names the file."""


def read_json(path):
    """The parsed file, or RunError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{path}: cannot read it as JSON ({error})") from None


def is_run(document):
    return isinstance(document, dict) and document.get("format") == FORMAT


def find_runs(paths):
    """(path, run) pairs for every run named directly or found in a named folder."""
    runs = []
    for path in map(Path, paths):
        if path.is_dir():
            for candidate in sorted(path.glob("*.json")):
                document = read_json(candidate)
                if is_run(document):
                    runs.append((candidate, document))
        elif not path.exists():
            raise RunError(f"{path}: no such file or folder")
        else:
            document = read_json(path)
            if not is_run(document):
                print(f"plot.py: skipping {path}: not a {FORMAT} file", file=sys.stderr)
                continue
            runs.append((path, document))
    return runs


def series(rows, key):
    """A [record, layer] array of one statistic; null becomes NaN."""
    return np.array([[layer[key] for layer in row["layers"]] for row in rows], dtype=float)


def title(run):
    config = run["config"]
    optimizer = config["optimizer"]
    hidden = "-".join(str(width) for width in config["hidden"])
    text = (f"{config['name']}: {config['activation']} / {config['init']} init / "
            f"{optimizer['kind']} (lr {optimizer['learning_rate']:g}), hidden {hidden}")
    return text if run.get("status") == "completed" else f"{text} [{run.get('status')}]"


def scale_to_fit(ax, values, always_log=False):
    """Log y scale for positive values spanning over two decades (or when asked); else linear."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or not np.all(finite > 0):
        return
    if always_log or finite.max() / finite.min() > 100:
        ax.set_yscale("log")


def draw_layers(ax, x, values, names, ylabel, always_log=False):
    for index, name in enumerate(names):
        ax.plot(x, values[:, index], marker=".", markersize=3, label=name)
    scale_to_fit(ax, values, always_log)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best", framealpha=0.6)


def plot_weights(path, run, names):
    weights = run["weights"]
    epochs = np.array([snapshot["epoch"] for snapshot in weights], dtype=float)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    draw_layers(left, epochs, series(weights, "mean"), names, "kernel mean")
    draw_layers(right, epochs, series(weights, "sd"), names, "kernel S.D.")
    left.set_title("mean of kernel entries (epoch 0 = init)")
    right.set_title("S.D. of kernel entries (epoch 0 = init)")
    figure.suptitle(title(run))
    return save(figure, path, "weights")


def plot_gradients(path, run, names):
    records = run["gradients"]
    samples = run["data"]["samples"]
    steps_per_epoch = math.ceil(samples / min(run["config"]["batch_size"], samples))
    x = np.array([r["epoch"] + r["step"] / steps_per_epoch for r in records], dtype=float)
    loss = np.array([r["loss"] for r in records], dtype=float)

    figure, axes = plt.subplots(1, 3, figsize=(17, 4.5), constrained_layout=True)
    draw_layers(axes[0], x, series(records, "mean"), names, "gradient mean (d loss / d kernel)")
    draw_layers(axes[1], x, series(records, "sd"), names, "gradient S.D. (log)", always_log=True)
    axes[0].set_title("mean of kernel gradient entries")
    axes[1].set_title("S.D. of kernel gradient entries")
    axes[2].plot(x, loss, marker=".", markersize=3, color="black", label="loss at the record")
    scale_to_fit(axes[2], loss)
    axes[2].set(title="loss on the recorded batch (last: full set)", xlabel="epoch",
                ylabel="binary cross-entropy (nats)")
    axes[2].grid(True, alpha=0.3)
    axes[2].legend(fontsize="small")
    figure.suptitle(title(run))
    return save(figure, path, "gradients")


def save(figure, path, view):
    target = path.with_name(f"{path.stem}.{view}.png")
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target


def plot_run(path, run):
    """Writes the run's PNGs and returns their paths."""
    try:
        names = [f"{layer['name']} ({layer['activation']})" for layer in run["layers"]]
        written = [plot_weights(path, run, names)]
        if run["gradients"]:
            written.append(plot_gradients(path, run, names))
        return written
    except (KeyError, TypeError, ValueError, IndexError) as error:
        plt.close("all")
        raise RunError(f"{path}: not a valid {FORMAT} file ({type(error).__name__}: {error})")


def main():
    parser = argparse.ArgumentParser(prog="plot.py", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run JSON file or folder")
    args = parser.parse_args()
    try:
        runs = find_runs(args.paths)
        if not runs:
            raise RunError(f"no {FORMAT} JSON found in: {' '.join(args.paths)}")
        for path, run in runs:
            for target in plot_run(path, run):
                print(target)
    except RunError as error:
        print(f"plot.py: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
