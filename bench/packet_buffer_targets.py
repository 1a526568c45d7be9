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

usage: /usr/bin/python3 bench/packet_buffer_targets.py RESULTS.csv
"""
import csv
import sys


def load(path):
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["suite"] == "packet_buffer" and row["metric"].endswith("_median"):
                rows[(row["case"], row["impl"], row["metric"])] = float(row["value"])
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    rows = load(sys.argv[1])
    cases = sorted({c for (c, _, _) in rows if c.startswith("cycle_") or c.startswith("2p1c_")},
                   key=lambda c: (c.startswith("2p1c"), c.endswith("_overwrite"),
                                  int(c.split("_w")[1].split("_")[0])))
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
        # ratio_to_sluice: the spinlock's speed over sluice's in the same round.
        spin_ratio = rows.get((case, "spinlock", "ratio_to_sluice_median"))
        if sluice is None or spin is None or not spin_ratio:
            print(f"| {case} | missing | | | | | | |")
            continue
        if cycle:
            # Time: sluice's over the spinlock's is the spinlock's speed over sluice's.
            ratio, target, met = spin_ratio, "<= 0.5", spin_ratio <= 0.5
            # A floor's time over the spinlock's, both against sluice in their rounds.
            floors = [rows.get((case, name, "ratio_to_sluice_median"))
                      for name in ("cas_floor", "cas_floor_zeroing")]
            floor_text = " | ".join(f"{spin_ratio / f:.2f}" if f else "-" for f in floors)
            values = f"| {sluice:.1f} ns | {spin:.1f} ns"
        else:
            ratio, target, met = 1 / spin_ratio, ">= 3", 1 / spin_ratio >= 3
            floor_text = "- | -"
            values = f"| {sluice / 1e6:.1f} M/s | {spin / 1e6:.1f} M/s"
        print(f"| {case} {values} | {ratio:.2f} | {target} | {'yes' if met else 'no'} "
              f"| {floor_text} |")


if __name__ == "__main__":
    main()
