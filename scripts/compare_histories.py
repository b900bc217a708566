"""Compares gradtrace run histories against reference runs of the same names, matrix by matrix.

Typical use: the same seeds trained on two devices or by two engines, e.g. CUDA against CPU. For
each pair of runs it takes, per epoch, the worst relative difference over every weight and
gradient kernel and bias matrix recorded in that epoch:

    max |candidate - reference| / max |reference|      (per matrix, then the worst matrix)

counting as well the activation and back-propagated signal statistics of every gradient record
(mean and S.D., relative to |mean| + S.D.), and judges the run on four figures, with the bounds
that tests/ensemble.rs uses for the ensemble engine against the single engine on the CPU:

    typical   median over epochs 1-10 of the per-epoch worst       < 2e-5
    early     worst over epochs 1-10                                < 1e-3
    all       worst over every epoch, the initial weights included  < 2e-2
    accuracy  final accuracies differ by at most                      0.01

The median is the upper one of an even count, as in the test. float32 rounding differs between
libraries and devices by about one ulp per product; training amplifies it, so later epochs drift
further, and a pre-activation sitting on a ReLU kink can land on either side of it.

Usage:
  compare_histories.py REFERENCE CANDIDATE            two folders (or two run files)
  compare_histories.py --reference A.json B.json --candidate A.json B.json

Runs are matched by file name; a name found on one side only fails. Other JSON files in a folder
(a sweep's summary) are skipped. The runs must be recorded with --record full: the stats level
keeps no matrices. Exit status: 0 when every run passes, 1 when any fails, 2 on unusable input.
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

RUN_FORMAT = "gradtrace-run"
EARLY_EPOCHS = 10
BOUND_TYPICAL = 2e-5
BOUND_EARLY = 1e-3
BOUND_ALL = 2e-2
BOUND_ACCURACY = 0.01


class InputError(Exception):
    """Input that cannot be compared; the message names the file and what is wrong."""


def load_run(path):
    try:
        run = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read it as JSON ({error})") from None
    if not isinstance(run, dict) or run.get("format") != RUN_FORMAT:
        raise InputError(f"{path}: not a gradtrace run (no \"format\": \"{RUN_FORMAT}\")")
    return run


def run_files(paths):
    """{file name: path} for the runs named directly or found directly inside a named folder."""
    found = {}
    for path in map(Path, paths):
        if path.is_dir():
            # A folder may also hold a sweep's summary files: keep only the runs.
            candidates = []
            for file in sorted(path.glob("*.json")):
                try:
                    load_run(file)
                    candidates.append(file)
                except InputError:
                    pass
        elif path.is_file():
            candidates = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        for file in candidates:
            if file.name in found:
                raise InputError(f"{file.name} is given twice ({found[file.name]} and {file})")
            found[file.name] = file
    return found


def flatten(matrix):
    """The entries of a nested list as floats, with null (a non-finite number) as NaN."""
    if isinstance(matrix, list):
        return [x for row in matrix for x in flatten(row)]
    return [math.nan if matrix is None else float(matrix)]


def matrix_difference(candidate, reference):
    """max |c - r| / max |r|; an entry non-finite on one side only makes it infinite."""
    c, r = flatten(candidate), flatten(reference)
    if len(c) != len(r):
        return math.inf
    scale = max((abs(x) for x in r if not math.isnan(x)), default=0.0)
    worst = 0.0
    for x, y in zip(c, r):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return math.inf
            continue
        worst = max(worst, abs(x - y))
    return worst / max(scale, 1e-30)


def epoch_differences(candidate, reference, path):
    """Per epoch (index = epoch, 0 the initial weights), the worst difference of any matrix."""
    worst = [0.0] * len(reference["weights"])
    for key in ("weights", "gradients"):
        if len(candidate[key]) != len(reference[key]):
            raise InputError(f"{path}: {len(candidate[key])} {key} records against "
                             f"{len(reference[key])} in the reference")
        for c, r in zip(candidate[key], reference[key]):
            epoch = r["epoch"]
            if epoch >= len(worst):
                worst.extend([0.0] * (epoch + 1 - len(worst)))
            for c_layer, r_layer in zip(c["layers"], r["layers"]):
                for matrix in ("kernel", "bias"):
                    if matrix not in r_layer or matrix not in c_layer:
                        raise InputError(f"{path}: no {matrix} matrices in its {key}; record "
                                         "the runs with --record full")
                    d = matrix_difference(c_layer[matrix], r_layer[matrix])
                    worst[epoch] = max(worst[epoch], d)
                if key == "gradients":
                    d = diagnostics_difference(c_layer, r_layer, path)
                    worst[epoch] = max(worst[epoch], d)
    return worst


def diagnostics_difference(candidate, reference, path):
    """The worst difference of a layer's activation and back-propagated signal mean and S.D.,
    relative to |mean| + S.D. in the reference; 0 where neither run recorded them."""
    worst = 0.0
    for key in ("activations", "backprop"):
        if (key in candidate) != (key in reference):
            raise InputError(f"{path}: {key} recorded on one side only; record both runs at the "
                             "same --record level")
        if key not in reference:
            continue
        stats = [(candidate[key][s], reference[key][s]) for s in ("mean", "sd")]
        if any(c is None or r is None for c, r in stats):
            if any((c is None) != (r is None) for c, r in stats):
                return math.inf
            continue
        scale = max(abs(reference[key]["mean"]) + reference[key]["sd"], 1e-30)
        worst = max([worst] + [abs(c - r) / scale for c, r in stats])
    return worst


def accuracy(run):
    value = run["evaluation"]["after"]["accuracy"]
    return math.nan if value is None else value


def compare(name, reference_path, candidate_path):
    """One row of the table: the figures and the verdict for one pair of runs."""
    reference, candidate = load_run(reference_path), load_run(candidate_path)
    if reference["config"] != candidate["config"]:
        keys = sorted(k for k in reference["config"].keys() | candidate["config"].keys()
                      if reference["config"].get(k) != candidate["config"].get(k))
        raise InputError(f"{candidate_path}: its config differs from {reference_path}'s in "
                         f"{', '.join(keys)}; compare runs of the same settings")
    worst = epoch_differences(candidate, reference, candidate_path)

    early = sorted(worst[1:EARLY_EPOCHS + 1]) or [0.0]
    typical, early_worst, all_worst = early[len(early) // 2], early[-1], max(worst)
    acc_ref, acc_cand = accuracy(reference), accuracy(candidate)
    accuracies_agree = (abs(acc_ref - acc_cand) <= BOUND_ACCURACY
                        or (math.isnan(acc_ref) and math.isnan(acc_cand)))

    failures = []
    if reference["status"] != candidate["status"]:
        failures.append(f"status {candidate['status']} vs {reference['status']}")
    if not typical < BOUND_TYPICAL:
        failures.append("typical")
    if not early_worst < BOUND_EARLY:
        failures.append("early")
    if not all_worst < BOUND_ALL:
        failures.append("all")
    if not accuracies_agree:
        failures.append("accuracy")
    return {
        "run": name.removesuffix(".json"),
        "initial": worst[0],
        "typical_1_10": typical,
        "worst_1_10": early_worst,
        "worst_all": all_worst,
        "accuracy_reference": acc_ref,
        "accuracy_candidate": acc_cand,
        "verdict": "PASS" if not failures else "FAIL (" + ", ".join(failures) + ")",
    }


def print_table(rows, label):
    """A fixed-width table on stdout, the bound of each column in its heading."""
    first = [("set", 9)] if label else []
    columns = first + [("run", max([30] + [len(r["run"]) for r in rows])), ("initial", 10),
                       ("typ 1-10", 10), ("max 1-10", 10), ("max all", 10), ("acc ref", 8),
                       ("acc cand", 9), ("", 0)]
    print("  ".join(f"{h:<{w}}" for h, w in columns).rstrip())
    bounds = [""] * len(first) + ["", "", f"<{BOUND_TYPICAL:.0e}", f"<{BOUND_EARLY:.0e}",
                                  f"<{BOUND_ALL:.0e}", f"+-{BOUND_ACCURACY}", "", ""]
    print("  ".join(f"{b:<{w}}" for b, (_, w) in zip(bounds, columns)).rstrip())
    for r in rows:
        cells = [label] if label else []
        cells += [r["run"], f"{r['initial']:.2e}", f"{r['typical_1_10']:.2e}",
                  f"{r['worst_1_10']:.2e}", f"{r['worst_all']:.2e}",
                  f"{r['accuracy_reference']:.3f}", f"{r['accuracy_candidate']:.3f}", r["verdict"]]
        print("  ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, columns)).rstrip())


def write_csv(rows, path, label):
    """The table's figures at full precision, one line per run."""
    fields = ["set"] if label else []
    fields += ["run", "initial", "typical_1_10", "worst_1_10", "worst_all", "accuracy_reference",
               "accuracy_candidate", "verdict"]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(({"set": label} if label else {}) | r)


def main():
    parser = argparse.ArgumentParser(prog="compare_histories.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="REFERENCE CANDIDATE",
                        help="two folders of runs (or two run files): reference first")
    parser.add_argument("--reference", nargs="+", metavar="PATH", default=[],
                        help="reference run files or folders, instead of the positional pair")
    parser.add_argument("--candidate", nargs="+", metavar="PATH", default=[],
                        help="candidate run files or folders, matched to --reference by name")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV to FILE")
    parser.add_argument("--label", default="",
                        help="a name for this comparison, put in a first column (e.g. the engine)")
    args = parser.parse_args()

    if args.reference or args.candidate:
        if args.paths or not (args.reference and args.candidate):
            parser.error("give --reference and --candidate together, without positional paths")
        reference_paths, candidate_paths = args.reference, args.candidate
    elif len(args.paths) == 2:
        reference_paths, candidate_paths = [args.paths[0]], [args.paths[1]]
    else:
        parser.error(f"expected REFERENCE and CANDIDATE, got {len(args.paths)} paths")

    try:
        if len(args.paths) == 2 and all(Path(p).is_file() for p in args.paths):
            # Two files named on their own are a pair whatever their names.
            name = Path(args.paths[0]).name
            references, candidates = {name: Path(args.paths[0])}, {name: Path(args.paths[1])}
        else:
            references, candidates = run_files(reference_paths), run_files(candidate_paths)
        if not references:
            raise InputError(f"no gradtrace runs in {' '.join(reference_paths)}")
        unmatched = sorted(set(references) ^ set(candidates))
        rows = [compare(name, references[name], candidates[name])
                for name in sorted(set(references) & set(candidates))]
    except InputError as error:
        print(f"compare_histories: {error}", file=sys.stderr)
        sys.exit(2)

    print_table(rows, args.label)
    for name in unmatched:
        side = "reference" if name in references else "candidate"
        print(f"FAIL {name}: found among the {side} runs only")
    if args.csv:
        write_csv(rows, args.csv, args.label)

    failed = sum(not r["verdict"].startswith("PASS") for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} runs within bounds"
          + (f"; {len(unmatched)} without a partner" if unmatched else ""))
    sys.exit(1 if failed or unmatched else 0)


if __name__ == "__main__":
    main()
