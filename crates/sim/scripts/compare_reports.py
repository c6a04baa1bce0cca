#!/usr/bin/env python3
"""Compares report.json files of `mediamesh sim` metric by metric against the first.

Usage: compare_reports.py REFERENCE.json OTHER.json [OTHER.json ...]

Prints a Markdown table: the reference value of every numeric figure, then each
other report's value and its difference in per cent of the reference. Used to
measure what sampling (`--max-detailed`) costs against a full run.
"""
import json
import sys


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, name + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = v
    return out


def main(paths):
    if len(paths) < 2:
        sys.exit(__doc__)
    reports = [flat(json.load(open(p))) for p in paths]
    ref = reports[0]
    head = ["metric", paths[0]] + [c for p in paths[1:] for c in (p, "diff")]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, base in ref.items():
        row = [key, f"{base:g}"]
        for r in reports[1:]:
            v = r.get(key)
            if v is None:
                row += ["—", ""]
                continue
            diff = "" if base == 0 else f"{(v - base) / base * 100:+.1f} %"
            row += [f"{v:g}", diff]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
