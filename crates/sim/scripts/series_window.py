#!/usr/bin/env python3
"""Figures of a `mediamesh sim` series.csv over time windows.

Usage: series_window.py SERIES.csv FROM-TO [FROM-TO ...]   (seconds, end exclusive)

For each window: mean viewers, stalled share (stalled viewer-seconds / viewer-seconds,
sampled at each second boundary), P2P share (peer bytes / all viewer bytes) and edge
egress bytes.
"""
import csv
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1])))
    print(f"{'window':>10} {'viewers':>9} {'stalled':>9} {'p2p_share':>9} {'edge_bytes':>14}")
    for w in sys.argv[2:]:
        lo, hi = (int(x) for x in w.split("-"))
        sel = [r for r in rows if lo <= int(r["second"]) < hi]
        v = sum(float(r["viewers"]) for r in sel)
        st = sum(float(r["stalled_viewers"]) for r in sel)
        p2p = sum(float(r["p2p_bytes"]) for r in sel)
        edge = sum(float(r["edge_egress_bytes"]) for r in sel)
        n = max(len(sel), 1)
        print(f"{w:>10} {v / n:9.0f} {st / max(v, 1):9.5f} {p2p / max(p2p + edge, 1):9.3f} {edge:14.0f}")


if __name__ == "__main__":
    main()
