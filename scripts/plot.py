"""Draws the weight and gradient histories of gradtrace runs, one PNG per view, beside each JSON.

For every run it writes:
  <stem>.weights.png    mean and S.D. of each layer's kernel after every epoch (epoch 0 is the
                        initialization), to see whether the weights move at all and which layers do;
  <stem>.gradients.png  mean and S.D. of each layer's kernel gradient at the recorded steps, and
                        the loss at those steps, to see gradients vanish layer by layer towards the
                        input. Drawn only when the run recorded gradients.

Runs that recorded diagnostics (a top-level "saturation" object and per-layer "activations",
"backprop" and "histogram" in the gradient records; not with --record kernels, nor in files
written before they existed) also get:
  <stem>.saturation.png  each hidden layer's activation mean with a band of one S.D. over the
                         batch, and each layer's share of saturated outputs by the run's rule:
                         Glorot & Bengio's (2010) saturation figure;
  <stem>.backprop.png    the S.D. of the back-propagated signal dLoss/dz per layer over training,
                         and per layer at the first, middle and last record (or the epochs of
                         --epochs), input side first, to see where the signal shrinks;
  <stem>.histograms.png  per layer, the kernel-gradient and activation histograms at the first,
                         middle and last record (or the epochs of --epochs), overlaid.
Each is skipped silently when its data is absent.

A gradient record is placed at epoch + step / steps per epoch, so a record at the first step of
epoch e sits at e, and the record taken over the whole training set after the last step sits one
epoch past the last. Positive quantities (S.D., loss) get a log scale when they span more than
two decades, the gradient S.D. always; means change sign and stay linear, since a symmetric log
scale makes every sign flip look like a jump of decades. Missing values (null in the JSON,
written for non-finite numbers) leave gaps in the lines.

Everything comes from the JSON alone. Usage: plot.py [--epochs E,E,...] PATH... where a PATH is a
run JSON or a folder of them (other JSON files in a folder, such as a sweep summary, are
skipped); --epochs picks, for the per-record views, each epoch's first record during training.
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


def record_epochs(run, records):
    """Each gradient record's place on the epoch axis: epoch + step / steps per epoch."""
    samples = run["data"]["samples"]
    steps_per_epoch = math.ceil(samples / min(run["config"]["batch_size"], samples))
    return np.array([r["epoch"] + r["step"] / steps_per_epoch for r in records], dtype=float)


def plot_gradients(path, run, names):
    records = run["gradients"]
    x = record_epochs(run, records)
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


def diagnostic_records(run):
    """The gradient records that carry activation and back-propagated statistics: those taken
    during training (the record after training has only histograms). Empty for runs written
    without diagnostics."""
    if not isinstance(run.get("saturation"), dict):
        return []
    return [r for r in run["gradients"]
            if all("activations" in layer and "backprop" in layer for layer in r["layers"])]


def nested(rows, group, key):
    """A [record, layer] array of one statistic inside each layer's `group` object."""
    return np.array([[layer[group][key] for layer in row["layers"]] for row in rows], dtype=float)


def chosen(records, epochs):
    """The first record of each of `epochs`, or without them the first, middle and last record
    (fewer when there are fewer), to compare over time."""
    if not epochs:
        picks = sorted({0, len(records) // 2, len(records) - 1})
        return [records[i] for i in picks]
    picks = []
    for epoch in epochs:
        found = [r for r in records if r["epoch"] == epoch]
        if not found:
            have = sorted({r["epoch"] for r in records})
            raise RunError(f"--epochs {epoch}: no record with diagnostics in that epoch (they "
                           f"cover epochs {have[0]} to {have[-1]}); choose epochs it recorded")
        picks.append(found[0])
    return picks


def chosen_text(epochs):
    """How the per-record views chose their records, for a title."""
    if not epochs:
        return "the first, middle and last record"
    return "epoch" + ("s " if len(epochs) > 1 else " ") + ", ".join(map(str, epochs))


def record_label(run, record):
    where = record_epochs(run, [record])[0]
    return f"epoch {where:.4g}"


def rule_text(rule):
    """A saturation rule for a title: its words, or why there is none."""
    if rule["rule"] == "none":
        return f"{rule['activation']}: no saturation rule (no flat region)"
    return f"{rule['activation']}: {rule['rule']}"


def plot_saturation(path, run, names, records):
    x = record_epochs(run, records)
    mean = nested(records, "activations", "mean")
    sd = nested(records, "activations", "sd")
    share = nested(records, "activations", "saturated")
    hidden, output = run["saturation"]["hidden"], run["saturation"]["output"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    last = len(names) - 1

    # Left: the hidden layers only, as in Glorot & Bengio; the output is a probability, another
    # quantity, and would squeeze the hidden layers' bands.
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True)
    for i in range(last):
        colour = colours[i % len(colours)]
        left.plot(x, mean[:, i], marker=".", markersize=3, color=colour, label=names[i])
        left.fill_between(x, mean[:, i] - sd[:, i], mean[:, i] + sd[:, i], color=colour,
                          alpha=0.15, linewidth=0)
    bounds = [b for b in (hidden["below"], hidden["above"], hidden["equals"]) if b is not None]
    for k, bound in enumerate(bounds):
        left.axhline(bound, linestyle=":", color="grey",
                     label="saturation threshold" if k == 0 else None)
    left.set(title="hidden activations: mean, band of ±1 S.D. over the batch", xlabel="epoch",
             ylabel=f"activation a = {hidden['activation']}(z) (unitless)")
    left.grid(True, alpha=0.3)
    left.legend(fontsize="small", loc="best", framealpha=0.6)

    # Right: every layer that has a rule; the output layer dashed, its rule may differ.
    drawn = 0
    for i in range(last + 1):
        if np.all(np.isnan(share[:, i])):
            continue
        label = f"{run['layers'][i]['name']} (output, sigmoid(logit))" if i == last else names[i]
        right.plot(x, share[:, i], marker=".", markersize=3, color=colours[i % len(colours)],
                   linestyle="--" if i == last else "-", label=label)
        drawn += 1
    right.set_ylim(-0.03, 1.03)
    right.set(title=f"saturated share; hidden {rule_text(hidden)}\noutput {rule_text(output)}",
              xlabel="epoch", ylabel="share of the layer's outputs saturated (0..1)")
    right.title.set_fontsize("medium")
    right.grid(True, alpha=0.3)
    if drawn:
        right.legend(fontsize="small", loc="best", framealpha=0.6)
    figure.suptitle(title(run))
    return save(figure, path, "saturation")


def plot_backprop(path, run, names, records, epochs):
    x = record_epochs(run, records)
    sd = nested(records, "backprop", "sd")
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True)
    draw_layers(left, x, sd, names, "S.D. of dLoss/dz (nats per unit of z, log)",
                always_log=True)
    left.set_title("back-propagated signal dLoss/dz, S.D. over the batch and units")

    # Right: one line per chosen record across the layers, so a signal that shrinks toward the
    # input slopes up from left to right.
    layers = np.arange(1, len(names) + 1)
    picks = chosen(records, epochs)
    colours = plt.cm.viridis(np.linspace(0, 0.85, len(picks)))
    for record, colour in zip(picks, colours):
        values = np.array([layer["backprop"]["sd"] for layer in record["layers"]], dtype=float)
        right.plot(layers, values, marker="o", markersize=4, color=colour,
                   label=record_label(run, record))
    right.set_yscale("log")
    right.set_xticks(layers, [name.replace(" ", "\n") for name in names], fontsize="small")
    right.set(title=f"S.D. of dLoss/dz per layer at {chosen_text(epochs)}",
              xlabel="layer (input side first)",
              ylabel="S.D. of dLoss/dz (nats per unit of z, log)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize="small", loc="best", framealpha=0.6)
    figure.suptitle(title(run))
    return save(figure, path, "backprop")


MAX_HISTOGRAM_COLUMNS = 8


def histogram_columns(count):
    """Which layers get a column: all of them up to 8, else 8 spread from first to last."""
    if count <= MAX_HISTOGRAM_COLUMNS:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, MAX_HISTOGRAM_COLUMNS)})


def draw_histogram(ax, histogram, colour, label):
    counts = np.array(histogram["counts"], dtype=float)
    low, high = histogram["low"], histogram["high"]
    if low is None or high is None:
        return counts
    if high <= low:
        # Every finite value sits in bin 0 (all equal); give the bar a visible width.
        high = low + (abs(low) * 1e-3 or 1e-12)
    edges = np.linspace(low, high, len(counts) + 1)
    ax.stairs(counts, edges, color=colour, linewidth=1.4, label=label)
    ax.stairs(counts, edges, color=colour, alpha=0.12, fill=True)
    return counts


def plot_histograms(path, run, names, records, epochs):
    picks = chosen(records, epochs)
    columns = histogram_columns(len(names))
    colours = plt.cm.viridis(np.linspace(0, 0.85, len(picks)))
    figure, axes = plt.subplots(2, len(columns), figsize=(3.3 * len(columns) + 1, 6.6),
                                constrained_layout=True, squeeze=False)
    rows = (("kernel gradient", lambda layer: layer["histogram"],
             "dLoss/dkernel entry (nats per unit weight)"),
            ("activations", lambda layer: layer["activations"]["histogram"],
             "activation a (unitless)"))
    for row, (what, histogram_of, xlabel) in enumerate(rows):
        for column, layer in enumerate(columns):
            ax = axes[row][column]
            counts = [draw_histogram(ax, histogram_of(record["layers"][layer]), colour,
                                     record_label(run, record))
                      for record, colour in zip(picks, colours)]
            # Log counts only where a few bins would otherwise hide the rest.
            positive = np.concatenate(counts)
            positive = positive[positive > 0]
            if positive.size and positive.max() / positive.min() > 50:
                ax.set_yscale("log")
            if row == 1 and layer == len(names) - 1:
                what = "probability sigmoid(logit)"
            ax.set_title(f"{names[layer]}: {what}", fontsize="medium")
            ax.set_xlabel(xlabel, fontsize="small")
            ax.tick_params(labelsize="small")
            ax.grid(True, alpha=0.3)
        axes[row][0].set_ylabel("count per bin (32 bins)")
    axes[0][-1].legend(fontsize="small", loc="best", framealpha=0.6)
    shown = "" if len(columns) == len(names) else f" ({len(columns)} of {len(names)} layers)"
    figure.suptitle(f"{title(run)}\nhistograms at {chosen_text(epochs)} during training{shown}")
    return save(figure, path, "histograms")


def save(figure, path, view):
    target = path.with_name(f"{path.stem}.{view}.png")
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target


def plot_run(path, run, epochs):
    """Writes the run's PNGs and returns their paths; `epochs` picks the per-record views'
    records (None: first, middle and last)."""
    try:
        names = [f"{layer['name']} ({layer['activation']})" for layer in run["layers"]]
        written = [plot_weights(path, run, names)]
        if run["gradients"]:
            written.append(plot_gradients(path, run, names))
        records = diagnostic_records(run)
        if records:
            written.append(plot_saturation(path, run, names, records))
            written.append(plot_backprop(path, run, names, records, epochs))
            written.append(plot_histograms(path, run, names, records, epochs))
        return written
    except RunError as error:
        plt.close("all")
        raise RunError(f"{path}: {error}")
    except (KeyError, TypeError, ValueError, IndexError) as error:
        plt.close("all")
        raise RunError(f"{path}: not a valid {FORMAT} file ({type(error).__name__}: {error})")


def epoch_list(text):
    """`1,50,100` as [1, 50, 100]: epochs counted from 1."""
    try:
        epochs = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give epochs as whole numbers, e.g. 1,50,100")
    if any(e < 1 for e in epochs):
        raise argparse.ArgumentTypeError(f"{text!r}: epochs count from 1")
    return epochs


def main():
    parser = argparse.ArgumentParser(prog="plot.py", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=epoch_list, default=None, metavar="E,E,...",
                        help="epochs (from 1) whose first record the histogram and per-layer "
                             "signal views show [default: the first, middle and last record]")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run JSON file or folder")
    args = parser.parse_args()
    try:
        runs = find_runs(args.paths)
        if not runs:
            raise RunError(f"no {FORMAT} JSON found in: {' '.join(args.paths)}")
        for path, run in runs:
            for target in plot_run(path, run, args.epochs):
                print(target)
    except RunError as error:
        print(f"plot.py: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
