"""The recorded transfer experiment: found and published cells as RetinaNet backbones on the embedded scenes.

Backbones (one detector recipe for all, see README.md):

* NB201 winners of the correlation study's searches (``results/correlation/search-outcome/outcome.md``:
  one supernet, evolution, search seeds 0 / 1 / 2) for the flatness, accuracy, angle and
  angle+flatness metrics. Flatness and angle+flatness found the same winner at every seed, so
  their rows share runs. The search with seed s is trained with detection seed s.
* Published DARTS-space cells (``genas.spaces.darts_genotypes``): PC-DARTS, DARTS-V2 and the GeNAS
  flatness / angle+flatness cells searched on CIFAR-10, each at detection seeds 0, 1, 2.

Every (backbone, seed) pair is one run folder ``runs/detection-transfer/<name>-s<seed>/`` (resumable:
``genas detect train`` with ``--resume``); each finished run appends one line to
``results/detection/results.jsonl`` (append-only; a pair already there is skipped). Runs go seed by
seed, so a partial experiment is balanced. Restart the same command to continue after a kill:

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python results/detection/run_transfer.py

then ``.venv/bin/python results/detection/make_table.py`` rewrites the table in README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from genas.detection import detect_config, train_detector
from genas.detection.data import SCENES_META, SceneSpec, make_data
from genas.io import append_jsonl, read_jsonl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results.jsonl"

# the recipe, spelled out (it is `genas detect train --preset quick` with a shorter schedule: one pass over
# 4,000 scenes in 500 steps of 8, 50 warm-up steps), so later changes of the preset do not change it
RECIPE = dict(detector="retinanet", fpn_channels=64, fpn_levels=3, head_norm="group", anchor_scale=2.0, min_size=128,
              max_size=128, cifar_stem_stride=8, frozen_stages=0, frozen_bn=False, optimizer="adamw", lr=1e-3,
              weight_decay=1e-4, schedule="cosine", warmup_steps=50, warmup_factor=0.001, grad_clip=10.0,
              batch_size=8, epochs=1, max_train_images=4000, score_thresh=0.05, nms_thresh=0.5,
              detections_per_img=100, topk_candidates=1000)
NB201 = dict(space="nb201", style="cifar", channels=16, cells_per_stage=2)
DARTS = dict(space="darts", style="imagenet", channels=16, layers=8)

# winners of results/correlation/search-outcome/outcome.md (search seed -> genotype)
SEARCH_WINNERS = {
    "flatness": ["|skip_connect~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|",
                 "|none~0|+|skip_connect~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_3x3~2|",
                 "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"],
    "accuracy": ["|skip_connect~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_3x3~2|",
                 "|none~0|+|skip_connect~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                 "|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"],
    "angle": ["|none~0|+|none~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
              "|none~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|avg_pool_3x3~2|",
              "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"],
}
SEARCH_WINNERS["angle+flatness"] = list(SEARCH_WINNERS["flatness"])  # the same winners (outcome.md)
PUBLISHED = ["PC_DARTS", "DARTS_V2", "FLATNESS_CIFAR10", "ANGLE_FLATNESS_CIFAR10"]
SEEDS = (0, 1, 2)


def jobs() -> list[dict]:
    """Every (backbone, seed) run, seed-major; rows that share a genotype and seed share the run."""
    out = []
    for seed in SEEDS:
        for metric in ("flatness", "accuracy", "angle"):
            out.append(dict(name=f"nb201-{metric}-s{seed}", group=f"NB201 {metric} search",
                            rows=[metric] + (["angle+flatness"] if metric == "flatness" else []), seed=seed,
                            arch=dict(NB201, genotype=SEARCH_WINNERS[metric][seed])))
        for name in PUBLISHED:
            out.append(dict(name=f"darts-{name.lower()}-s{seed}", group="DARTS published", rows=[name], seed=seed,
                            arch=dict(DARTS, genotype=name)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "detection-transfer"), help="run folders")
    parser.add_argument("--data", default=str(ROOT / "runs" / "detection-scenes"), help="scene set (made if missing)")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many new runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = Path(args.data)
    if not (data / SCENES_META).exists():
        print(f"making the scene set (seed 0) -> {data}", flush=True)
        make_data(data, SceneSpec(seed=0), force=True)
    done = {r["run"] for r in read_jsonl(RESULTS)} if RESULTS.exists() else set()
    new = 0
    for job in jobs():
        if job["name"] in done:
            continue
        if args.limit is not None and new >= args.limit:
            break
        out = Path(args.runs) / job["name"]
        cfg = detect_config("quick", data=str(data), seed=job["seed"], **RECIPE, **job["arch"])
        t0 = time.process_time()
        print(f"[{time.strftime('%H:%M:%S')}] {job['name']} ...", flush=True)
        r = train_detector(cfg, out, resume=(out / "config.json").exists(), device="cpu", progress=False)
        row = dict(run=job["name"], group=job["group"], rows=job["rows"], seed=job["seed"], **job["arch"],
                   recipe=RECIPE, metrics=r["metrics"], backbone_params=r["backbone_params"],
                   backbone_macs=r["backbone_macs"], detector_params=r["detector_params"],
                   detector_macs=r["detector_macs"], cpu_seconds_this_session=round(time.process_time() - t0, 1),
                   seconds=r["seconds"], images_per_s=r["images_per_s"], torch_threads=r["torch_threads"],
                   final_digest=r["final_digest"])
        append_jsonl(row, RESULTS)
        new += 1
        print(f"    AP {r['metrics']['AP']:.2f}  AP50 {r['metrics']['AP50']:.2f}  ({row['cpu_seconds_this_session']} "
              f"CPU s)", flush=True)
    remaining = [j["name"] for j in jobs() if j["name"] not in {r["run"] for r in read_jsonl(RESULTS)}] \
        if RESULTS.exists() else [j["name"] for j in jobs()]
    print(json.dumps(dict(finished=len(jobs()) - len(remaining), remaining=remaining)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
