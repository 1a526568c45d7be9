#!/usr/bin/python3
"""Reads a sluice_bench CSV and prints the packet buffer's speed targets as a Markdown table:
the one-thread cycle in at most half the spinlock baseline's time, and two producers with one
consumer at three times its packets/s or more.

The ratio is the median over rounds of the same-round ratio (the runner's ratio_to_sluice
rows), so a round that was slow for every implementation moves it little. The cycle rows also
give cas_floor's time against the spinlock's: a ring with one compare-and-swap per packet and
nothing else of a packet buffer, a floor under any multi-producer design; and
cas_floor_zeroing's: the same ring zeroing each packet's words as it is taken, the floor for a
design that keeps packets of any size with their headers in the storage and reserves them with
one read-modify-write of an index (its free words must read zero).

Given several CSVs (runs of the same build), it prints one row per case with each run's ratio,
their median and how many runs met the target: on a machine whose figures swing from run to
run, one run decides little.

usage: /usr/bin/python3 bench/packet_buffer_targets.py RESULTS.csv [MORE.csv ...]
"""
import csv
import statistics
import sys


def load(path):
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["suite"] == "packet_buffer" and row["metric"].endswith("_median"):
                rows[(row["case"], row["impl"], row["metric"])] = float(row["value"])
    return rows


def case_order(case):
    """Cycle before 2P1C, without overwrite before with, then by packet size."""
    return (case.startswith("2p1c"), case.endswith("_overwrite"),
            int(case.split("_w")[1].split("_")[0]))


def target_cases(rows):
    return {c for (c, _, _) in rows if c.startswith("cycle_") or c.startswith("2p1c_")}


def ratio_and_target(rows, case):
    """sluice against the spinlock in one run (None where either is missing), the target's
    text, and whether the ratio meets it."""
    # ratio_to_sluice: the spinlock's speed over sluice's in the same round.
    spin_ratio = rows.get((case, "spinlock", "ratio_to_sluice_median"))
    if case.startswith("cycle_"):
        # Time: sluice's over the spinlock's is the spinlock's speed over sluice's.
        return spin_ratio, "<= 0.5", lambda r: r <= 0.5
    return (1 / spin_ratio if spin_ratio else None), ">= 3", lambda r: r >= 3


def summarise(paths):
    runs = [load(path) for path in paths]
    cases = sorted(set().union(*(target_cases(rows) for rows in runs)), key=case_order)
    if not cases:
        sys.exit("no packet_buffer cycle or 2p1c case in " + ", ".join(paths))
    print(f"| case | sluice vs spinlock, runs 1..{len(runs)} | median | target | runs met |")
    print("|---|---|---|---|---|")
    for case in cases:
        found = [ratio_and_target(rows, case) for rows in runs]
        ratios = [r for r, _, _ in found if r is not None]
        _, target, meets = found[0]
        listed = ", ".join("-" if r is None else f"{r:.2f}" for r, _, _ in found)
        median = f"{statistics.median(ratios):.2f}" if ratios else "-"
        print(f"| {case} | {listed} | {median} | {target} "
              f"| {sum(1 for r in ratios if meets(r))} of {len(ratios)} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    if len(sys.argv) > 2:
        return summarise(sys.argv[1:])
    rows = load(sys.argv[1])
    cases = sorted(target_cases(rows), key=case_order)
    if not cases:
        sys.exit("no packet_buffer cycle or 2p1c case in " + sys.argv[1])
    print("| case | sluice | spinlock | sluice vs spinlock | target | met "
          "| cas_floor vs spinlock | cas_floor_zeroing vs spinlock |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        cycle = case.startswith("cycle_")
        metric = "ns_per_packet_median" if cycle else "packets_per_sec_median"
        sluice = rows.get((case, "sluice", metric))
        spin = rows.get((case, "spinlock", metric))
        ratio, target, meets = ratio_and_target(rows, case)
        if sluice is None or spin is None or ratio is None:
            print(f"| {case} | missing | | | | | | |")
            continue
        met = meets(ratio)
        if cycle:
            # A floor's time over the spinlock's, both against sluice in their rounds (the
            # cycle's ratio is the spinlock's speed over sluice's, ratio_to_sluice).
            floors = [rows.get((case, name, "ratio_to_sluice_median"))
                      for name in ("cas_floor", "cas_floor_zeroing")]
            floor_text = " | ".join(f"{ratio / f:.2f}" if f else "-" for f in floors)
            values = f"| {sluice:.1f} ns | {spin:.1f} ns"
        else:
            floor_text = "- | -"
            values = f"| {sluice / 1e6:.1f} M/s | {spin / 1e6:.1f} M/s"
        print(f"| {case} {values} | {ratio:.2f} | {target} | {'yes' if met else 'no'} "
              f"| {floor_text} |")


if __name__ == "__main__":
    main()
