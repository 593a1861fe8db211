#!/usr/bin/env python3
"""Print the README's timeline table from a full replay.

    dlhist replay --budget full --json > replay.json
    dlhist list --json > list.json
    python3 scripts/timeline.py list.json replay.json

One row per claim, in timeline order: year, name, paper (first clause), the claim, the measured
detail, the verdict and the claim's own training seconds (runs shared between claims are trained
once, in the first claim that needs them).
"""
import json
import sys


def main():
    entries = json.load(open(sys.argv[1]))
    results = {r["name"]: r for r in json.load(open(sys.argv[2]))}
    print("| year | name | paper | claim (full budget) | measured | verdict | seconds |")
    print("|---|---|---|---|---|---|---|")
    for e in entries:
        r = results.get(e["name"])
        if r is None:
            continue
        paper = e["paper"].split(",")[0] if "," in e["paper"] else e["paper"]
        verdict = "PASS" if r["pass"] else "**FAIL**"
        secs = f'{r["seconds"]:.1f}' if r["seconds"] >= 0.05 else "(shared)"
        detail = r["detail"].replace("|", "/")
        print(f'| {e["year"]} | `{e["name"]}` | {paper} | {r["claim"]} | {detail} | {verdict} | {secs} |')


if __name__ == "__main__":
    main()
