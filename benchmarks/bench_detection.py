"""Detector training and inference speed on CPU for a `genas detect train` recipe (default: quick).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_detection.py --data runs/detection-scenes --threads 1
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_detection.py --data runs/detection-scenes --threads 1 \
        --set space=darts --set style=imagenet --set genotype=FLATNESS_CIFAR10

Times ``--steps`` training steps (batch of the recipe, forward + backward + AdamW, real scenes with
their boxes) after ``--warmup`` untimed ones, and inference over ``--eval-images`` val scenes (batch
16, including the postprocessing and NMS). Reports images/s by wall clock and by the process's CPU
time (images per CPU-second of all its threads): on a shared machine the wall rate drops with
the load, the CPU rate much less. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from genas.detection import detect_config
from genas.detection.evaluate import predict
from genas.detection.model import build_detector
from genas.detection.train import load_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `genas detect make-data` folder")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=160)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe setting, e.g. --set space=darts --set style=imagenet "
                             "--set genotype=FLATNESS_CIFAR10")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = int(value) if value.isdigit() else value
    torch.set_num_threads(args.threads)
    cfg = detect_config(args.preset, data=args.data, **overrides)
    train, val = load_splits(cfg)
    mean, std = train.mean_std()
    model = build_detector(cfg, train.num_classes, train.channels, mean, std)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=cfg.weight_decay)
    b = cfg.batch_size

    def batch(step):
        idx = [(step * b + k) % len(train) for k in range(b)]
        items = [train[i] for i in idx]
        return ([img.float().div(255) for img, _ in items],
                [dict(boxes=t["boxes"], labels=t["labels"]) for _, t in items])

    model.train()
    batches = [batch(s) for s in range(args.warmup + args.steps)]  # decoded up front: the model is timed
    for s in range(args.warmup + args.steps):
        if s == args.warmup:
            w0, c0 = time.perf_counter(), time.process_time()
        loss = sum(model(*batches[s]).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = args.steps * b
    idx = list(range(min(args.eval_images, len(val))))
    for i in idx:
        val.image(val.ids[i])  # decode once, untimed
    predict(model, val, idx[:16], 16, torch.device("cpu"))
    e0, ec0 = time.perf_counter(), time.process_time()
    predict(model, val, idx, 16, torch.device("cpu"))
    ewall, ecpu = time.perf_counter() - e0, time.process_time() - ec0
    print(json.dumps(dict(preset=args.preset, threads=args.threads, batch=b, image_size=cfg.min_size,
                          backbone=f"{cfg.space} {cfg.style} C={cfg.channels} {cfg.genotype}",
                          train_images_per_s=round(n / wall, 2), train_images_per_cpu_s=round(n / cpu, 2),
                          eval_images_per_s=round(len(idx) / ewall, 2),
                          eval_images_per_cpu_s=round(len(idx) / ecpu, 2),
                          load_average=[round(v, 2) for v in __import__("os").getloadavg()])))


if __name__ == "__main__":
    main()
