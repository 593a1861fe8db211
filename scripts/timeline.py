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


def authors(paper):
    """The author list of "A, B & C, Title, Venue year": up to the segment with the '&'."""
    head = paper.split(";")[0].split(" (")[0]
    segments = head.split(", ")
    for i, seg in enumerate(segments[:8]):
        if "&" in seg:
            return ", ".join(segments[: i + 1])
    return segments[0]


def main():
    entries = json.load(open(sys.argv[1]))
    results = {r["name"]: r for r in json.load(open(sys.argv[2]))}
    print("| year | name | paper | claim (full budget) | measured | verdict | seconds |")
    print("|---|---|---|---|---|---|---|")
    for e in entries:
        r = results.get(e["name"])
        if r is None:
            continue
        paper = authors(e["paper"])
        verdict = "PASS" if r["pass"] else "**FAIL**"
        secs = f'{r["seconds"]:.1f}' if r["seconds"] >= 0.05 else "(shared)"
        detail = r["detail"].replace("|", "/")
        if r.get("seeds", 1) > 1:
            # the replay's seed sentence is long: the table keeps the per-seed values and the noise
            head, _, tail = detail.partition("; verdict on the mean of")
            noise = tail.split(": ")[-1] if tail else ""
            per = " / ".join(f'{p["value"]:.4g}' for p in r["per_seed"])
            detail = (
                f'{head} (means of {r["seeds"]} seeds; value per seed {per}; '
                f'margin {r["margin"]:+.4g} vs seed sd {r["margin_sd"]:.2g}: {noise})'
            )
        print(f'| {e["year"]} | `{e["name"]}` | {paper} | {r["claim"]} | {detail} | {verdict} | {secs} |')


if __name__ == "__main__":
    main()
