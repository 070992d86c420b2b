"""The one prepared GPU check (issue #18): run it whenever a GPU is available; ``--dry-run`` checks it on CPU.

Steps, each timed and recorded in ``OUT/summary.json`` as soon as it finishes (a killed check keeps
what it measured); ``benchmarks/gpu_check.sh`` tees the output to ``OUT/gpu_check.log``:

1. ``cuda_tests``: ``pytest -m cuda tests/test_cuda.py`` (junit XML in ``OUT/cuda_tests.xml``);
2. ``training``: SPOS supernet training img/s and final sampled-subnet validation accuracy, fp32 vs
   bf16 (and bf16 + channels-last, fp16) at the ``quick`` shape, at the ``default`` shape and with a
   large batch, and the CPU figure of the quick shape on the same host;
3. ``flatness``: ``benchmarks/bench_flatness.py`` (our scorer vs the official algorithm: speedup,
   ``floor_ratio``, score agreement) exact fp32, with TF32 on, and with bf16 autocast;
4. ``ranking``: our scorer on 100 candidates exact vs TF32 vs bf16: Kendall tau and relative score
   differences (the measurement that would allow reduced-precision scoring: tau >= 0.99);
5. ``search``: wall time of the ``quick`` preset's search (100 candidates) on the GPU.

The data is Fashion-MNIST when found (``--data-dir``, ``.gpu-data/fashion-mnist`` in the checkout, or
the usual places), else a learnable synthetic set written in its file format (recorded as such).

    benchmarks/gpu_check.sh              # on a GPU machine: writes results/gpu/
    benchmarks/gpu_check.sh --dry-run    # on CPU, tiny sizes, a temp folder, < 1 minute
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genas.engine.precision import exact_fp32, tf32, tf32_state  # noqa: E402
from genas.io import save_json  # noqa: E402

DATA_DIRS = (ROOT / ".gpu-data" / "fashion-mnist", Path("/usr/share/datasets/fashion-mnist"),
             Path.home() / ".cache" / "genas" / "fashion-mnist")
FMNIST = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# sizes: the real check, and the dry run (CPU, tiny, end to end)
SIZES = {
    "gpu": dict(budget_s=470, tests_timeout_s=210, quick=dict(epochs=5, max_train_images=10000, val_images=5000),
                default=dict(epochs=2, max_train_images=10000, val_images=1000), big_batch=256, cpu_images=2000,
                bench=["--candidates", "8", "--val-images", "5120"], rank_candidates=100, rank_val_images=3000,
                search=None, synthetic=(20000, 5000)),
    "dry": dict(budget_s=float("inf"), tests_timeout_s=120, quick=dict(epochs=1, max_train_images=256, val_images=128, channels=4),
                default=dict(epochs=1, max_train_images=128, val_images=64, channels=4), big_batch=64, cpu_images=128,
                bench=["--candidates", "2", "--val-images", "128", "--bn-images", "64", "--chunk", "64"],
                rank_candidates=4, rank_val_images=128,
                search=dict(population=4, topk=2, mutations=2, crossovers=2, generations=2), synthetic=(640, 320)),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, into a temp folder (checks the script)")
    p.add_argument("--out", type=Path, help="where summary.json goes (default results/gpu; dry run: a temp folder)")
    p.add_argument("--work", type=Path, help="scratch folder for the run folders (default: a temp folder)")
    p.add_argument("--data-dir", type=Path, help="Fashion-MNIST folder (default: the first of "
                                                 f"{', '.join(str(d) for d in DATA_DIRS)} that has it)")
    p.add_argument("--skip", default="", help="comma-separated steps to leave out")
    args = p.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA device: run on a GPU machine, or use --dry-run to check the script on CPU")
    return args


class Check:
    """The summary being built, written after every step."""

    def __init__(self, out: Path, dry: bool):
        self.out, self.dry, self.t0 = out, dry, time.perf_counter()
        self.size = SIZES["dry" if dry else "gpu"]
        self.device = "cpu" if dry else "cuda"
        self.summary: dict = dict(issue=18, dry_run=dry, device=self.device, steps={}, targets={})

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def save(self) -> None:
        self.summary["elapsed_s"] = round(self.elapsed(), 1)
        save_json(self.summary, self.out / "summary.json")

    def step(self, name: str, fn, skip: set[str]) -> None:
        record = self.summary["steps"].setdefault(name, {})
        if name in skip:
            record.update(status="skipped", reason="--skip")
        elif self.elapsed() > self.size["budget_s"]:
            record.update(status="skipped", reason=f"time budget of {self.size['budget_s']} s spent")
        else:
            print(f"== {name} (at {self.elapsed():.0f} s)", flush=True)
            t0 = time.perf_counter()
            try:
                self.summary[name] = fn()
                record.update(status="ok")
            except Exception as exc:  # one failing step must not lose the others' results
                traceback.print_exc()
                record.update(status="error", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            record["seconds"] = round(time.perf_counter() - t0, 1)
        self.save()


# --- data -----------------------------------------------------------------------------------------

def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = (0x0803 if array.ndim == 3 else 0x0801).to_bytes(4, "big")
    with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
        f.write(magic + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.astype(np.uint8).tobytes())


def resolve_data(args, work: Path, n_train: int, n_test: int) -> tuple[str, dict]:
    """A Fashion-MNIST folder (found, or a synthetic stand-in written in its format) and its facts."""
    candidates = [args.data_dir] if args.data_dir else ([] if args.dry_run else list(DATA_DIRS))
    for d in candidates:
        if d and all((d / f).exists() or (d / (f + ".gz")).exists() for f in FMNIST):
            return str(d), dict(data="fashion-mnist", data_dir=str(d))
    from genas.data.sources import make_synthetic

    d = work / "synthetic-fmnist"
    d.mkdir(parents=True, exist_ok=True)
    tx, ty, vx, vy = make_synthetic(size=28, n_train=n_train, n_test=n_test)
    for name, arr in zip(FMNIST, (tx[:, 0], ty, vx[:, 0], vy)):
        _write_idx(d / name, arr.numpy())
    why = "dry run" if args.dry_run else "Fashion-MNIST not found"
    return str(d), dict(data=f"synthetic 28x28 ({n_train} train / {n_test} test) in Fashion-MNIST format ({why})",
                        data_dir=str(d))


# --- steps ----------------------------------------------------------------------------------------

def env_info() -> dict:
    info = dict(torch=torch.__version__, python=platform.python_version(), cuda=torch.version.cuda,
                cuda_available=torch.cuda.is_available(), cpu_count=os.cpu_count(), tf32_defaults=tf32_state())
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    bf16_supported=torch.cuda.is_bf16_supported())
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                        timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


def cuda_tests(check: Check, work: Path) -> dict:
    xml = check.out / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider",
           f"--basetemp={work / 'pytest'}", f"--junitxml={xml}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=check.size["tests_timeout_s"])
    print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", flush=True)
    out = dict(returncode=proc.returncode, command=" ".join(cmd[1:]))
    if xml.exists():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None
                  or c.find("error") is not None]
        passed = [c.get("name") for c in suite.iter("testcase") if not list(c)]
        out.update(counts, passed=counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
                   failed_tests=failed, passed_tests=passed)
    return out


def _train(work: Path, data_dir: str, name: str, device: str, **overrides) -> dict:
    from genas.io import read_jsonl
    from genas.supernet.config import supernet_config
    from genas.supernet.train import train_supernet

    run = work / name
    cfg = supernet_config("quick", dataset="fashion-mnist", data_dir=data_dir, save_every=100, **overrides)
    t0 = time.perf_counter()
    summary = train_supernet(cfg, run, device=device, progress=False)
    log = read_jsonl(run / "log.jsonl")
    steady = [r["images_per_s"] for r in log[1:]] or [r["images_per_s"] for r in log]  # epoch 1 warms up
    return dict(run=str(run), precision=cfg.precision, channels_last=cfg.channels_last, channels=cfg.channels,
                cells_per_stage=cfg.cells_per_stage, batch_size=cfg.batch_size, epochs=cfg.epochs,
                train_images=cfg.max_train_images, img_s=round(float(np.median(steady)), 1),
                final_val_acc=summary["final_val_acc"], val_images=cfg.val_images,
                wall_s=round(time.perf_counter() - t0, 1))


def training(check: Check, work: Path, data_dir: str) -> dict:
    size, dev = check.size, check.device
    v = {"fp32": {}, "bf16": dict(precision="bf16"), "bf16_cl": dict(precision="bf16", channels_last=True),
         "fp16": dict(precision="fp16", channels_last=True)}
    big = f"batch{size['big_batch']}"
    shape = dict(size["default"], **({} if check.dry else dict(channels=16, cells_per_stage=2)))
    plan = [("quick", size["quick"], ["fp32", "bf16", "bf16_cl"] + (["fp16"] if dev == "cuda" else [])),
            ("default", shape, ["fp32", "bf16_cl"] if check.dry else ["fp32", "bf16", "bf16_cl"]),
            (big, dict(shape, batch_size=size["big_batch"]), [] if check.dry else ["fp32", "bf16_cl"])]
    runs = {}
    for prefix, sizes, names in plan:
        for name in names:
            runs[f"{prefix}_{name}"] = _train(work, data_dir, f"{prefix}-{name}", dev, **sizes, **v[name])
            check.summary["training"] = dict(runs=runs)
            check.save()
    cpu = runs["quick_fp32"] if dev == "cpu" else _train(work, data_dir, "cpu-fp32", "cpu", **dict(
        size["quick"], epochs=1, max_train_images=size["cpu_images"]))
    out = dict(runs=runs, cpu_quick_fp32_img_s=cpu["img_s"], supernet_run=runs["quick_fp32"]["run"])
    for prefix, _, names in plan:
        if not names:
            continue
        base = runs[f"{prefix}_fp32"]["img_s"]
        for name in names[1:]:
            out[f"{prefix}_{name}_speedup_vs_fp32"] = round(runs[f"{prefix}_{name}"]["img_s"] / base, 3)
        out[f"{prefix}_fp32_vs_cpu"] = round(base / cpu["img_s"], 2)
    best_bf16 = max(v for k, v in out.items() if k.endswith("speedup_vs_fp32") and "bf16" in k)
    delta = 100 * abs(runs["quick_bf16"]["final_val_acc"] - runs["quick_fp32"]["final_val_acc"])
    out["quick_bf16_val_acc_delta_points"] = round(delta, 2)
    check.summary["targets"].update(
        bf16_train_speedup_ge_1_5=dict(value=best_bf16, met=best_bf16 >= 1.5, note="best bf16 variant over shapes"),
        bf16_val_acc_within_1_point=dict(value=round(delta, 2), met=delta <= 1.0,
                                         note=f"quick shape, {runs['quick_fp32']['val_images']} val images"))
    return out


def flatness(check: Check, run: str) -> dict:
    import bench_flatness

    base = ["--run", run, "--device", check.device, *check.size["bench"]]
    variants = {"exact": base}
    if check.device == "cuda":
        variants.update(tf32=base + ["--tf32"], bf16=base + ["--bf16"])
    out = {}
    for name, argv in variants.items():
        res = bench_flatness.main(argv)
        out[name] = {k: v for k, v in res.items() if k not in ("supernet",)}
        check.summary["flatness"] = out
        check.save()
    exact = out["exact"]
    check.summary["targets"]["speedup_vs_official_ge_10"] = dict(
        value=round(exact["speedup_vs_official"], 2), met=exact["speedup_vs_official"] >= 10,
        note=f"exact fp32, score_rel_diff {exact['score_rel_diff']:.2e} (equal fidelity)")
    for name in ("tf32", "bf16"):
        if name in out:
            out[f"{name}_vs_exact_max_rel_diff"] = max(abs(a - b) / abs(b) for a, b in
                                                       zip(out[name]["scores_ours"], exact["scores_ours"]))
    return out


def ranking(check: Check, run: str) -> dict:
    """Our scorer on many candidates under each numeric mode: does the ranking survive?"""
    from scipy.stats import kendalltau

    import bench_flatness
    from genas.proxies import ScoringConfig
    from genas.workflows.scoring import scoring_context

    n, stds, seed = check.size["rank_candidates"], (0.001, 0.003, 0.006), 0
    cfg = ScoringConfig(val_images=check.size["rank_val_images"], bn_images=64 if check.dry else 896,
                        bn_mode="official", noise_mode="cumulative", stds=stds, seed=seed)
    ctx = scoring_context(run, cfg, device=check.device)
    cands = bench_flatness.sample_candidates(n, seed)
    opts = dict(fuse_bn=False, channels_last=True, chunk=64 if check.device == "cpu" else 1024)
    modes = {"exact": (exact_fp32, False), "tf32": (lambda: tf32(True), False)}
    if check.device == "cuda":
        modes["bf16"] = (exact_fp32, True)
    scores, seconds = {}, {}
    for name, (numerics, bf16) in modes.items():
        with numerics():
            t0 = time.perf_counter()
            scores[name] = [bench_flatness.our_score(ctx, g, stds, seed, opts, bf16=bf16) for g in cands]
            bench_flatness.sync(check.device)
            seconds[name] = round(time.perf_counter() - t0, 2)
    out = dict(candidates=n, val_images=ctx.val_image_count, seconds=seconds,
               cand_per_s={k: round(n / v, 2) for k, v in seconds.items()})
    for name in modes:
        if name != "exact":
            tau = kendalltau(scores[name], scores["exact"]).statistic
            out[f"tau_{name}_vs_exact"] = round(float(tau), 4)
            out[f"max_rel_diff_{name}_vs_exact"] = max(abs(a - b) / abs(b) for a, b in zip(scores[name], scores["exact"]))
    if "tau_bf16_vs_exact" in out:
        check.summary["targets"]["bf16_scoring_tau_ge_0_99"] = dict(
            value=out["tau_bf16_vs_exact"], met=out["tau_bf16_vs_exact"] >= 0.99 and n >= 100,
            note="would allow bf16 scoring (issue #18); scoring stays fp32 until a recorded run shows it")
    return out


def search(check: Check, run: str) -> dict:
    from genas.proxies import ScoringConfig
    from genas.search import make_config
    from genas.workflows.pipeline import RUN_PRESETS
    from genas.workflows.search import search_supernet

    quick = RUN_PRESETS["quick"]
    sizes = check.size["search"] or quick["search"]
    scoring = dict(quick["scoring"], **(dict(val_images=128, bn_images=64) if check.dry else {}))
    cfg = make_config("evolution", seed=0, **sizes)
    t0 = time.perf_counter()
    result, out_dir = search_supernet(run, "flatness", "evolution", cfg, ScoringConfig(seed=0, **scoring),
                                      name="gpu-check", device=check.device, progress=False)
    wall = time.perf_counter() - t0
    return dict(wall_s=round(wall, 2), candidates=result["evaluations"], cand_per_s=round(result["evaluations"] / wall, 2),
                search_settings=sizes, scoring=scoring, best=result["best"])


def main(argv=None) -> dict:
    args = parse_args(argv)
    tmp = None
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="gpu-check-")) if args.dry_run else ROOT / "results" / "gpu"
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="gpu-check-work-")
        args.work = Path(tmp.name)
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.dry_run)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.dry_run:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    check.summary["env"] = env_info()
    data_dir, facts = resolve_data(args, args.work, *check.size["synthetic"])
    check.summary["env"].update(facts)
    check.save()
    check.step("cuda_tests", lambda: cuda_tests(check, args.work), skip)
    check.step("training", lambda: training(check, args.work, data_dir), skip)
    run = (check.summary.get("training") or {}).get("supernet_run")
    if run is None:  # training skipped or failed: a quick supernet of its own for the scoring steps
        run = _train(args.work, data_dir, "scoring-supernet", check.device, **check.size["quick"])["run"]
    check.step("flatness", lambda: flatness(check, run), skip)
    check.step("ranking", lambda: ranking(check, run), skip)
    check.step("search", lambda: search(check, run), skip)
    bad = [k for k, v in check.summary["steps"].items() if v.get("status") == "error"]
    tests = check.summary.get("cuda_tests") or {}
    agree = "test_cpu_and_gpu_flatness_agree_to_1e4_even_with_global_tf32_on"
    if tests.get("passed_tests") is not None and not check.dry:
        check.summary["targets"]["cpu_gpu_flatness_agree_1e-4"] = dict(
            met=agree in tests["passed_tests"], note=f"tests/test_cuda.py::{agree}")
    check.summary["ok"] = not bad and not tests.get("failures") and not tests.get("errors")
    check.save()
    print(json.dumps(dict(summary=str(args.out / "summary.json"), ok=check.summary["ok"], errors=bad,
                          targets=check.summary["targets"], elapsed_s=round(check.elapsed(), 1)), indent=1))
    if tmp is not None:
        tmp.cleanup()
    return check.summary


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
