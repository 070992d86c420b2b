"""How many training seeds the registered effect would need: stage 2's power simulation beyond its rule.

    python results/flatness-vs-loss/power_seeds.py -o results/flatness-vs-loss/power-seeds.json

A diagnostic, not a decision: the power rule of stage 2 (n <= 200, seeds <= 5) already fixed the
design. This reruns the same simulation (``stage2_select.power``: the same pool, the same 200
selected architectures, the same beta, 200 studies x 1,000 resamples, seed 0) with more seeds per
architecture, down to almost no training noise, to show where the power comes from.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage2_select import pool_table, power, select  # noqa: E402

SEEDS = (5, 20, 80, 320, 100_000)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--selection", default=str(Path(__file__).resolve().parent / "stage2"))
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    if Path(a.output).exists():
        print(f"power_seeds.py: error: {a.output} exists", file=sys.stderr)
        return 2
    selection = json.loads((Path(a.selection) / "selection.json").read_text())
    archs, table = pool_table(selection["prefix"])
    sel = select(archs, table, selection["n_select"])[0]
    rows = []
    for seeds in SEEDS:
        rows.append(power(archs, table, sel, 200, 1000, train_seeds=seeds))
        print(f"n = {len(sel)}, {seeds} seeds: power {rows[-1]['power']:.3f} (mean CI width {rows[-1]['mean_ci_width']:.3f})",
              flush=True)
    Path(a.output).write_text(json.dumps(dict(prefix=selection["prefix"], rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
