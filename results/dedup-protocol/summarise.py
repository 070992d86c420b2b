"""The table of results/dedup-protocol/README.md from the searches' own records.

    python results/dedup-protocol/summarise.py results/dedup-protocol

For each ``protocol-<mode>-s0.json`` summary (written by dedup_protocol.py from its search folder
``search-protocol-<mode>-s0/``): candidates scored, distinct functions under both rules among them,
scorings of a function already scored (strict rule), strings skipped as copies, wall and scoring
seconds, and the winner's NB201 CIFAR-10 accuracy (string and function-class mean).
"""
import json
import sys
from pathlib import Path


def main(folder: Path) -> None:
    print("| mode | scored | distinct (NB201 rule) | distinct (strict) | repeats scored (strict) | copies skipped | wall s | "
          "scoring s | winner | C10 (string) | C10 (class mean) | top-5 distinct (strict) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for mode in ("off", "default", "strict"):
        summary = folder / f"protocol-{mode}-s0.json"
        if not summary.exists():
            continue
        s = json.loads(summary.read_text())
        repeats = s["scored"] - s["distinct_scored_strict"]  # scorings of a function already scored
        winner = s["best"]["genotype"].replace("|", "\\|")  # escaped: a bar splits a Markdown table cell
        print(f"| {mode} | {s['scored']} | {s['distinct_scored']} | {s['distinct_scored_strict']} | "
              f"{repeats} | {s['copies']} | {s['wall_s']:.0f} | {s['scoring_s']:.0f} | `{winner}` | "
              f"{s['best_c10']:.2f} | {s['best_c10_class_mean']:.2f} | {s['top5_distinct_strict']} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
