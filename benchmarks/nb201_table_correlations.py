"""External sanity check of ``genas correlate``: rank correlations on the public NB201 tables.

Joins, on the NB201 arch string (``ArchitectureString`` in file 1, ``arch_str`` elsewhere):

* ground truth: file 1 ``nats_tss_test_acc_200ep.csv`` (NATS test accuracy after 200 epochs on CIFAR-10,
  CIFAR-100, ImageNet16-120; 15,625 archs) plus ``val_acc`` of file 2 (NB201 ``cifar10-valid`` validation
  accuracy, 200 epochs on the 25k train split; 9,445 archs);
* proxies: file 5 ``nb201_supernet_acc_fewshotnas_cifar10.csv`` (one-shot / few-shot supernet accuracy,
  15,625 archs) and file 2 ``nb201_zc_proxies_cifar10.csv`` (NAS-Bench-Suite-Zero zero-cost proxies on
  CIFAR-10, 9,445 archs, plus its ``val_acc`` as a proxy of the test accuracy).

The all-``none`` cell's sentinel -1e8 (epe_nas, jacov, nwot, zen) is kept as an ordinary (worst) score,
exactly as in SOURCE.md's quick check. It then asserts that the numbers match the anchors stated in
shared/data/nb201/SOURCE.md to 3 decimals and prints PASS/FAIL (exit code 1 on FAIL):

    .venv/bin/python benchmarks/nb201_table_correlations.py --bootstrap 200
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from genas.analysis.correlation import correlate, load_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/nb201"
GT = "nats_tss_test_acc_200ep.csv"
ZC = "nb201_zc_proxies_{}.csv"
SUPERNET = "nb201_supernet_acc_fewshotnas_cifar10.csv"
C10, C100, IMN = "CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs"
ZC_COLUMNS = ("jacov", "nwot", "epe_nas", "params_M", "synflow", "l2_norm", "flops_M", "snip", "grad_norm",
              "fisher", "grasp", "zen", "plain")
SUPERNETS = ("one_shot_supernet_acc", "few_shot_supernet_acc")

# SOURCE.md, file 5 "Rank correlation against file 1 CIFAR-10 test accuracy": (nets, proxy) -> (tau, rho, n)
SUPERNET_ANCHORS = {("all", "one_shot_supernet_acc"): (0.484, 0.676, 15625),
                    ("all", "few_shot_supernet_acc"): (0.550, 0.741, 15625),
                    ("connected", "one_shot_supernet_acc"): (0.465, 0.656, 15284),
                    ("connected", "few_shot_supernet_acc"): (0.532, 0.724, 15284)}
# SOURCE.md, file 2 quick check: Spearman of each column vs val_acc over the 9,445 nets (CIFAR-10, ImageNet16-120)
ZC_ANCHORS = {"jacov": (.818, .781), "nwot": (.792, .795), "epe_nas": (.787, .319), "params_M": (.747, .718),
              "synflow": (.732, .725), "l2_norm": (.720, .737), "flops_M": (.714, .690), "snip": (.552, .542),
              "grad_norm": (.550, .543), "fisher": (.501, .485), "grasp": (.491, .521), "zen": (.101, .112),
              "plain": (-.367, -.340)}
VAL_VS_TEST_ANCHOR = 0.977  # SOURCE.md: Spearman of file-2 val_acc (CIFAR-10) against file-1 CIFAR-10 test accuracy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "results/nb201-tables")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()

    nats = load_table(args.data / GT, key="ArchitectureString", columns=[C10, C100, IMN])
    zc = {ds: load_table(args.data / ZC.format(ds), key="arch_str", columns=["val_acc", *ZC_COLUMNS])
          for ds in ("cifar10", "ImageNet16-120")}
    sn = load_table(args.data / SUPERNET, key="arch_str", columns=SUPERNETS)
    # one key name for all tables; the ground truth is file 1 plus file 2's val_acc (merged on the key)
    gt_rows = [{"arch_str": r["ArchitectureString"], C10: r[C10], C100: r[C100], IMN: r[IMN]} for r in nats]
    gt_rows += [{"arch_str": r["arch_str"], "val_acc": r["val_acc"]} for r in zc["cifar10"]]
    proxy_rows = sn + zc["cifar10"]
    gt_columns = [C10, C100, IMN, "val_acc"]
    proxy_columns = [*SUPERNETS, "val_acc", *ZC_COLUMNS]
    split = ("NATS-Bench/NB201 test accuracy after 200 epochs (CIFAR-10: trained on all 50k, tested on the 10k "
             "test set; CIFAR-100 and ImageNet16-120: NB201 test split), mean over training seeds; val_acc (GT) = "
             "NB201 cifar10-valid validation accuracy after 200 epochs (25k train split)")
    sources = {"ground_truth": f"{GT} (15,625 archs) + val_acc of {ZC.format('cifar10')} (9,445 archs)",
               "proxies": f"{SUPERNET} (15,625 archs) + {ZC.format('cifar10')} (9,445 archs; the all-none "
                          "cell's sentinel -1e8 for epe_nas, jacov, nwot, zen kept as a valid worst score)",
               "data_dir": "shared/data/nb201 (see its SOURCE.md)"}
    res = correlate(gt_rows, proxy_rows, gt_columns, proxy_columns, key="arch_str", out_dir=args.out,
                    bootstrap=args.bootstrap, seed=args.seed, split=split, sources=sources)
    t_main = time.time() - t0

    # anchor checks: point estimates only (bootstrap=0)
    checks = []

    def check(name: str, got: float | None, want: float, n: int | None = None, want_n: int | None = None):
        ok = got is not None and abs(got - want) < 0.0005 + 1e-12 and (want_n is None or n == want_n)
        checks.append({"check": name, "ours": None if got is None else round(got, 4), "anchor": want,
                        "n": n, "anchor_n": want_n, "pass": bool(ok)})

    connected = [r for r in gt_rows if C10 in r and r[C10] != 10.0]  # exactly the 341 disconnected cells have 10.0
    assert len(connected) == 15284, len(connected)
    sub = correlate(connected, sn, [C10], list(SUPERNETS), key="arch_str", bootstrap=0)
    for (nets, col), (tau, rho, n) in SUPERNET_ANCHORS.items():
        r = (res if nets == "all" else sub)["results"][C10][col]
        check(f"{col} vs {C10}, {nets} archs: Kendall tau", r["kendall_tau"]["estimate"], tau, r["n"], n)
        check(f"{col} vs {C10}, {nets} archs: Spearman rho", r["spearman_rho"]["estimate"], rho, r["n"], n)
    r = res["results"][C10]["val_acc"]
    check(f"val_acc (cifar10-valid) vs {C10}: Spearman rho", r["spearman_rho"]["estimate"], VAL_VS_TEST_ANCHOR,
          r["n"], 9445)
    for col, (want_c10, _) in ZC_ANCHORS.items():
        r = res["results"]["val_acc"][col]
        check(f"CIFAR-10 {col} vs val_acc: Spearman rho", r["spearman_rho"]["estimate"], want_c10, r["n"], 9445)
    inet = zc["ImageNet16-120"]
    inet_res = correlate([{"arch_str": r["arch_str"], "val_acc": r["val_acc"]} for r in inet], inet,
                         ["val_acc"], list(ZC_COLUMNS), key="arch_str", bootstrap=0)
    for col, (_, want_inet) in ZC_ANCHORS.items():
        r = inet_res["results"]["val_acc"][col]
        check(f"ImageNet16-120 {col} vs val_acc: Spearman rho", r["spearman_rho"]["estimate"], want_inet,
              r["n"], 9445)

    passed = all(c["pass"] for c in checks)
    width = max(len(c["check"]) for c in checks)
    for c in checks:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']:<{width}}  ours {c['ours']:+.4f}  "
              f"anchor {c['anchor']:+.3f}  n {c['n']}")
    elapsed = time.time() - t0
    summary = {"passed": passed, "checks": checks, "bootstrap": args.bootstrap, "seed": args.seed,
               "seconds_total": round(elapsed, 1), "seconds_main_correlate": round(t_main, 1),
               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}, "
                          f"python {platform.python_version()}"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "anchors.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'PASS' if passed else 'FAIL'}: {sum(c['pass'] for c in checks)}/{len(checks)} anchors of SOURCE.md "
          f"reproduced to 3 decimals ({elapsed:.0f} s; outputs in {args.out})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
