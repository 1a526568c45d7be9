#!/usr/bin/python3
"""Plots a sluice_bench CSV: one panel per case, a bar per implementation (its median), a dot
per round, and the median same-round ratio to its sluice baseline written beside the bar.

usage: /usr/bin/python3 bench/plot.py RESULTS.csv OUT.png
"""
import csv
import math
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SLUICE = "#1f77b4"
SLUICE_BLOCK = "#6baed6"
PEER = "#ff7f0e"
PEER_BLOCK = "#fdae6b"


def load(path):
    cases = OrderedDict()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["suite"], row["case"])
            case = cases.setdefault(
                key,
                {"impls": OrderedDict(), "metric": None, "unit": row["unit"],
                 "shape": (row["producers"], row["consumers"])},
            )
            impl = case["impls"].setdefault(
                row["impl"], {"rounds": [], "median": None, "ratio": None, "baseline": None})
            metric, value = row["metric"], float(row["value"])
            # A case's first plain metric is the one it is measured in; a
            # derived one (words_per_sec beside packets_per_sec) is not drawn.
            plain = metric[:-len("_median")] if metric.endswith("_median") else metric
            if not metric.startswith("ratio_to_") and case["metric"] not in (None, plain):
                continue
            if metric.startswith("ratio_to_"):
                if metric.endswith("_median"):
                    impl["ratio"] = value
                    impl["baseline"] = metric[len("ratio_to_"):-len("_median")]
            elif metric.endswith("_median"):
                impl["median"] = value
            else:
                case["metric"] = metric
                case["unit"] = row["unit"]
                impl["rounds"].append(value)
    return cases


LABELS = {
    "rtt_ns": "ns per round trip (lower is better)",
    "ns_per_item": "ns per item (lower is better)",
}


def scale(unit, values, metric=None):
    if unit == "ops/s":
        return [v / 1e6 for v in values], "million items / s (higher is better)"
    return values, LABELS.get(metric, f"{metric} ({unit})")


def colour(name, impl):
    # An impl waits the way its sluice baseline does (spin or blocking).
    group = impl["baseline"] or name
    blocking = "blocking" in group or (impl["baseline"] is None and name.startswith("mutex"))
    if name.startswith("sluice"):
        return SLUICE_BLOCK if blocking else SLUICE
    return PEER_BLOCK if blocking else PEER


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cases = load(sys.argv[1])
    if not cases:
        sys.exit("plot.py: no rows in " + sys.argv[1])
    cols = min(3, len(cases))
    rows = math.ceil(len(cases) / cols)
    most = max(len(c["impls"]) for c in cases.values())
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 0.42 * most * rows + 1.6 * rows),
                             squeeze=False)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)

    for ax, ((suite, case_name), case) in zip(axes.flat, cases.items()):
        impls = list(case["impls"].items())
        medians, label = scale(case["unit"], [i["median"] or 0.0 for _, i in impls],
                               case["metric"])
        ys = list(range(len(impls)))[::-1]
        ax.barh(ys, medians, color=[colour(n, i) for n, i in impls], height=0.7)
        for y, (_, impl) in zip(ys, impls):
            pts, _ = scale(case["unit"], impl["rounds"])
            ax.plot(pts, [y] * len(pts), "k.", markersize=3, alpha=0.6)
        right = max(max(scale(case["unit"], i["rounds"])[0] or [0.0]) for _, i in impls) or 1.0
        positive = [m for m in medians if m > 0]
        log = bool(positive) and max(positive) / min(positive) > 20
        for y, (name, impl) in zip(ys, impls):
            if impl["ratio"] is not None:
                text = f"{impl['ratio']:.2f}"
            else:
                text = "ref" if name.startswith("sluice") else ""
            ax.text(right * (1.15 if log else 1.02), y, text, va="center", fontsize=8)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(min(positive) / 2, right * 2.5)
            label += ", log scale"
        else:
            ax.set_xlim(0, right * 1.18)
        ax.set_yticks(ys)
        ax.set_yticklabels([n for n, _ in impls], fontsize=8)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        p, c = case["shape"]
        ax.set_title(f"{suite}/{case_name}  ({p}P{c}C)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)

    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(color=SLUICE, label="sluice, try-spin"),
                        Patch(color=SLUICE_BLOCK, label="sluice, blocking"),
                        Patch(color=PEER, label="peer, try-spin"),
                        Patch(color=PEER_BLOCK, label="peer, blocking")],
               loc="upper right", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("sluice_bench: bars = median, dots = rounds, text = same-round ratio to the "
                 "sluice baseline (speed; < 1 means sluice is faster)", fontsize=10, x=0.02,
                 ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
