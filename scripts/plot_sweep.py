"""Draws a gradtrace sweep's figures into its folder, from its index lines and run JSON alone.

For every sweep folder it writes:
  sweep.heatmaps.png  final training accuracy and median vanishing index (first layer's
                      kernel-gradient S.D. over the output layer's; log colour scale) per
                      activation x initializer, one panel per hidden layout (depth), each cell
                      the median over its runs (seeds) and annotated with it. An axis with one
                      value is not drawn; its value goes into the title. The vanishing-index row
                      is left out when no run recorded gradients;
  sweep.accuracy.png  per configuration (every knob equal but the seed), the median training
                      accuracy of each epoch over seeds with its 10-90% band, one line per
                      configuration, the legend naming the knobs that differ.

A finished run is one whose index line says completed or diverged and whose runs/<id>.json
exists; failed runs are left out. Knobs other than activation, initializer and layout that vary
in the sweep (learning rate, say) are pooled into the heatmap cells, and the title says so; the
accuracy figure keeps them apart.

Usage: plot_sweep.py FOLDER...
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Knobs that tell runs of one configuration apart, not configurations.
PER_RUN = ("name", "seed")
# The heatmaps' own axes and panels.
DRAWN = ("activation", "init", "hidden")
# Rows and columns in the order `gradtrace run --help` lists the choices.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky-relu", "elu", "selu", "gelu", "softplus",
               "softsign", "linear")
INITS = ("normal", "uniform", "glorot-uniform", "glorot-normal", "he-uniform", "he-normal",
         "lecun-normal")


class SweepError(Exception):
    """A folder that cannot be drawn as a sweep; the message names it and says what to do."""


def index_entries(folder):
    """The last line of every run id over all index files (shards), failed runs left out."""
    entries = {}
    for path in sorted(folder.glob("index*.jsonl")):
        text = path.read_text()
        # A line without its newline is a torn write of a killed sweep: not yet a line.
        for line in text[: text.rfind("\n") + 1].splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "id" in entry and "config" in entry:
                entries[entry["id"]] = entry
    return [e for e in entries.values() if e.get("status") in ("completed", "diverged")]


def finished_runs(folder):
    """Index entries of the runs whose JSON is in runs/, in index order."""
    if not folder.is_dir():
        raise SweepError(f"{folder}: no such folder; give a sweep folder (outputs/<sweep>)")
    runs = [e for e in index_entries(folder) if (folder / "runs" / f"{e['id']}.json").exists()]
    if not runs:
        raise SweepError(f"{folder}: no finished runs in this sweep yet; run `gradtrace sweep` "
                         "into it, or wait until some of its runs have finished")
    return runs


def flatten(config, prefix=""):
    """A config as {dotted knob: text}, nested objects flattened (optimizer.learning_rate)."""
    knobs = {}
    for key, value in config.items():
        if isinstance(value, dict):
            knobs.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            knobs[prefix + key] = "-".join(str(v) for v in value)
        elif isinstance(value, float):
            knobs[prefix + key] = f"{value:g}"
        else:
            knobs[prefix + key] = str(value)
    return knobs


def varying(knob_sets, leave_out=()):
    """The knobs that take more than one value over these runs, in config order."""
    names = [k for k in knob_sets[0] if k not in PER_RUN and k not in leave_out]
    return [k for k in names if len({knobs.get(k) for knobs in knob_sets}) > 1]


def in_order(values, known):
    """The distinct values, those in `known` in its order, any others after them sorted."""
    values = set(values)
    return [v for v in known if v in values] + sorted(values.difference(known))


def knob_order(text):
    """Sorts a knob's values as a reader expects: choices as `--help` lists them, layouts by
    depth, numbers by size."""
    known = ACTIVATIONS + INITS
    if text in known:
        return (0, known.index(text), text)
    try:
        return (text.count("-"), float(text), text)
    except ValueError:
        return (text.count("-"), float("inf"), text)


def median_of(values):
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(finite)) if finite else np.nan


def layout_label(hidden):
    return f"depth {len(hidden)}: 2-{'-'.join(str(w) for w in hidden)}-1"


def heatmap_panel(ax, grid, rows, columns, norm, cmap, text_of):
    """One panel: the cells coloured by `grid`, each annotated by `text_of(row, column)`."""
    image = ax.imshow(np.ma.masked_invalid(grid), norm=norm, cmap=cmap, aspect="auto")
    for r in range(len(rows)):
        for c in range(len(columns)):
            value = grid[r, c]
            dark = np.isfinite(value) and norm(value) < 0.55
            ax.text(c, r, text_of(r, c), ha="center", va="center", fontsize="small",
                    color="white" if dark else "black")
    ax.set_xticks(range(len(columns)), columns if len(columns) > 1 else [""])
    ax.set_yticks(range(len(rows)), rows if len(rows) > 1 else [""])
    if len(columns) > 1:
        ax.set_xlabel("initializer")
    if len(rows) > 1:
        ax.set_ylabel("activation")
    return image


def plot_heatmaps(folder, runs):
    configs = [e["config"] for e in runs]
    activations = in_order((c["activation"] for c in configs), ACTIVATIONS)
    inits = in_order((c["init"] for c in configs), INITS)
    layouts = sorted({tuple(c["hidden"]) for c in configs}, key=lambda h: (len(h), h))
    pooled = varying([flatten(c) for c in configs], leave_out=DRAWN)

    # Per layout, per (activation, initializer): the runs' final accuracies and indexes.
    cells = {}
    for entry in runs:
        c = entry["config"]
        cells.setdefault((tuple(c["hidden"]), c["activation"], c["init"]), []).append(entry)
    shape = (len(activations), len(inits))
    accuracy = {h: np.full(shape, np.nan) for h in layouts}
    vanishing = {h: np.full(shape, np.nan) for h in layouts}
    for (hidden, activation, init), members in cells.items():
        where = (activations.index(activation), inits.index(init))
        accuracy[hidden][where] = median_of([m.get("final_accuracy") for m in members])
        vanishing[hidden][where] = median_of([m.get("median_vanishing_index") for m in members])
    metrics = [("final training accuracy", "accuracy (fraction)", accuracy, "viridis", False)]
    if any(np.isfinite(v).any() for v in vanishing.values()):
        metrics.append(("median vanishing index", "vanishing index (log)", vanishing, "magma",
                        True))

    # Sized for the cells, but wide enough for the titles whatever the grid.
    width = max(8.0, 2.5 + 1.9 * len(inits) * len(layouts))
    height = max(2.4, 1.0 + 0.9 * len(activations)) * len(metrics) + 0.8
    figure, axes = plt.subplots(len(metrics), len(layouts), squeeze=False,
                                figsize=(width, height), constrained_layout=True)
    for row, (what, short, values, cmap, log) in enumerate(metrics):
        finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
        if log:
            positive = finite[finite > 0]
            low, high = (positive.min(), positive.max()) if positive.size else (0.1, 10.0)
            # One value (or all equal) still needs a range for the colour bar.
            norm = LogNorm(low, high) if high > low * 1.01 else LogNorm(low / 2, high * 2)
        else:
            norm = Normalize(min(0.5, finite.min()) if finite.size else 0.5, 1.0)
        for column, hidden in enumerate(layouts):
            grid = values[hidden]

            def text_of(r, c, grid=grid, hidden=hidden):
                members = cells.get((hidden, activations[r], inits[c]), [])
                if not members:
                    return ""
                number = "n/a" if not np.isfinite(grid[r, c]) else (
                    f"{grid[r, c]:.2e}" if log else f"{grid[r, c]:.3f}")
                diverged = sum(m.get("status") == "diverged" for m in members)
                note = f"\n{diverged}/{len(members)} diverged" if diverged else ""
                return f"{number}\n{len(members)} runs{note}"

            ax = axes[row][column]
            image = heatmap_panel(ax, grid, activations, inits, norm, cmap, text_of)
            ax.set_title(f"{layout_label(hidden)}\n{what}, median over seeds", fontsize="medium")
        bar = figure.colorbar(image, ax=list(axes[row]), shrink=0.9)
        bar.set_label(short, fontsize="small")

    fixed = []
    if len(activations) == 1:
        fixed.append(f"activation {activations[0]}")
    if len(inits) == 1:
        fixed.append(f"init {inits[0]}")
    notes = [", ".join(fixed)] if fixed else []
    if pooled:
        notes.append(f"cells pool the runs of every {', '.join(pooled)}")
    subtitle = f"\n{'; '.join(notes)}" if notes else ""
    figure.suptitle(f"sweep {folder.resolve().name}: final accuracy and vanishing index, "
                    f"{len(runs)} finished runs{subtitle}")
    return save(figure, folder, "heatmaps")


def epoch_accuracy(folder, entry):
    """A run's accuracy per epoch (null, as in a diverged epoch, becomes NaN)."""
    path = folder / "runs" / f"{entry['id']}.json"
    try:
        run = json.loads(path.read_text())
        return np.array([e["accuracy"] for e in run["epochs"]], dtype=float)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise SweepError(f"{path}: not a readable run JSON ({error}); delete it and rerun the "
                         "sweep to train it again") from None


def draw_bands(ax, folder, groups, differs):
    """One median line and 10-90% band per configuration on one panel."""
    palette = plt.cm.tab10 if len(groups) <= 10 else plt.cm.tab20
    for n, (knobs, members) in enumerate(groups):
        histories = [epoch_accuracy(folder, m) for m in members]
        # Diverged runs stop early: pad with NaN so each epoch's statistics use the runs that
        # reached it.
        table = np.full((len(histories), max(len(h) for h in histories)), np.nan)
        for row, history in enumerate(histories):
            table[row, : len(history)] = history
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch no run reached
            low, middle, high = np.nanpercentile(table, [10, 50, 90], axis=0)
        epochs = np.arange(1, table.shape[1] + 1)
        label = ", ".join(f"{k}={knobs[k]}" for k in differs) or "all runs"
        diverged = sum(m.get("status") == "diverged" for m in members)
        count = f"{len(members)} seeds" + (f", {diverged} diverged" if diverged else "")
        colour = palette(n % palette.N)
        ax.plot(epochs, middle, color=colour, label=f"{label} ({count})")
        ax.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylim(top=1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", framealpha=0.6, loc="best")


def plot_accuracy(folder, runs):
    # Configurations: runs equal in everything but the seed; one panel per hidden layout when
    # the layouts vary, since depth changes the curves most and twenty bands on one panel blur.
    knob_sets = [flatten(e["config"]) for e in runs]
    differs = varying(knob_sets)
    panels = {}
    for entry, knobs in zip(runs, knob_sets):
        key = tuple(sorted((k, v) for k, v in knobs.items() if k not in PER_RUN))
        panel = knobs["hidden"] if "hidden" in differs else ""
        panels.setdefault(panel, {}).setdefault(key, []).append(entry)
    order = [k for k in differs if k != "hidden"]
    layouts = sorted(panels, key=knob_order)

    figure, axes = plt.subplots(1, len(layouts), squeeze=False, sharey=True,
                                figsize=(1 + 6.5 * len(layouts), 5.5), constrained_layout=True)
    for ax, layout in zip(axes[0], layouts):
        groups = [(dict(key), members) for key, members in panels[layout].items()]
        groups.sort(key=lambda g: [knob_order(g[0][k]) for k in order])
        draw_bands(ax, folder, groups, order)
        if layout:
            ax.set_title(layout_label([int(w) for w in layout.split("-")]), fontsize="medium")
    axes[0][0].set_ylabel("training accuracy (fraction of points, Keras fit history)")
    figure.suptitle(f"sweep {folder.resolve().name}: median training accuracy and its 10-90% "
                    f"band over seeds, {len(runs)} finished runs")
    return save(figure, folder, "accuracy")


def save(figure, folder, view):
    target = folder / f"sweep.{view}.png"
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target


def plot_sweep(folder):
    """Writes the sweep's PNGs into its folder and returns their paths."""
    runs = finished_runs(folder)
    try:
        return [plot_heatmaps(folder, runs), plot_accuracy(folder, runs)]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        plt.close("all")
        raise SweepError(f"{folder}: an index line or run JSON is not as gradtrace writes it "
                         f"({type(error).__name__}: {error})") from None


def main():
    parser = argparse.ArgumentParser(prog="plot_sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="sweep folder")
    args = parser.parse_args()
    try:
        for folder in map(Path, args.folders):
            for target in plot_sweep(folder):
                print(target)
    except SweepError as error:
        print(f"plot_sweep.py: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
