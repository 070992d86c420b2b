"""Side by side: the official GeNAS flatness scoring vs our scorer, on the same supernet and data.

Both score the same seeded connected NB201 candidates with the same BN-recalibration and
validation images, official-style BN recalibration (EMA momentum 0.1) and cumulative noise with
common random numbers, so that given the same noise they compute the same score:

* official: :mod:`genas.proxies.reference` (whole-supernet deep copy, noise on every supernet
  parameter, batch 64, one ``.item()`` per batch);
* ours: extract the path, recalibrate BN, :func:`genas.proxies.measure.losses_under_noise`.

Reported (one JSON line at the end): candidates/s of both and ``speedup_vs_official``;
``floor_ratio`` = our time / forward floor, the floor being the images we push through each
candidate's plain stand-alone subnet at its best measured inference throughput (over a few batch
sizes, under inference mode); ``score_rel_diff`` = max relative score difference given the same
noise. ``--ablation`` also times our scorer with each speed option switched on in turn.

    .venv/bin/python benchmarks/bench_flatness.py --quick
    .venv/bin/python benchmarks/bench_flatness.py --run results/correlation/supernet --ablation
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genas.proxies import ScoringConfig, ScoringContext
from genas.engine.bn import recalibrate_bn
from genas.engine.precision import exact_fp32, tf32
from genas.proxies.flatness import flatness_score
from genas.proxies.measure import _FastTwin, losses_under_noise
from genas.proxies.reference import official_score, stack_batches
from genas.spaces import get_space
from genas.workflows.scoring import scoring_context

ROOT = Path(__file__).resolve().parents[1]
CACHE_RUN = ROOT / "runs" / "bench-flatness-supernet"
MODES = {"quick": dict(candidates=3, val_images=1024), "full": dict(candidates=5, val_images=5120)}
FLOOR_BATCHES = (32, 64, 128, 256, 512)
# each step adds one option to the previous: what every speed option buys, measured
ABLATION = (("plain", dict(fuse_bn=False, channels_last=False, chunk=None)),
            ("+chunk", dict(fuse_bn=False, channels_last=False)),
            ("+fuse_bn", dict(fuse_bn=True, channels_last=False)),
            ("+channels_last", dict(fuse_bn=True, channels_last=True)),
            ("channels_last alone", dict(fuse_bn=False, channels_last=True)))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help=f"finished supernet run folder (default: a quick Fashion-MNIST "
                                            f"supernet cached in {CACHE_RUN.relative_to(ROOT)}, trained if missing)")
    p.add_argument("--quick", action="store_true", help="few candidates and images (< 2 minutes on a 2-core CPU)")
    p.add_argument("--candidates", type=int, help="candidates to score (quick 3, full 5)")
    p.add_argument("--val-images", type=int, help="validation images (quick 1024, full 5120; use multiples of 64 "
                                                  "so the official mean of batch means equals the per-image mean)")
    p.add_argument("--bn-images", type=int, default=896, help="BN recalibration images (official 850 -> 896)")
    p.add_argument("--stds", default="0.001,0.003,0.006", help="comma-separated noise stds (official README)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidates and the noise")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for our scorer (GPU only)")
    p.add_argument("--tf32", action="store_true", help="TF32 on for cuDNN convolutions and CUDA matmuls in both "
                                                      "scorers (GPU only); by default both run exact fp32, TF32 "
                                                      "off, as genas scoring does")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--chunk", type=int, help="our forward sub-batch (default 64 on CPU, 1024 on GPU)")
    p.add_argument("--eval-batch", type=int, default=500, help="our cached validation batch size (default 500)")
    p.add_argument("--fuse-bn", action="store_true", help="fold BN into convs in our scorer (no gain measured on CPU)")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW in our scorer")
    p.add_argument("--bn-layout", choices=("nhwc", "nchw"),
                   default="nhwc" if ScoringConfig().bn_channels_last else "nchw",
                   help="memory format of our BN recalibration (default: ScoringConfig.bn_channels_last; NHWC is "
                        "faster on CPU and changes BN statistics by rounding only)")
    p.add_argument("--ablation", action="store_true", help="also time our scorer with each option added in turn")
    args = p.parse_args(argv)
    mode = MODES["quick" if args.quick else "full"]
    args.candidates = mode["candidates"] if args.candidates is None else args.candidates
    args.val_images = mode["val_images"] if args.val_images is None else args.val_images
    raw_stds = args.stds
    try:
        args.stds = tuple(float(s) for s in raw_stds.split(","))
        flatness_score([1.0] * len(args.stds), args.stds)
    except ValueError as exc:
        p.error(f"--stds must be strictly increasing positive comma-separated numbers, got {raw_stds!r} ({exc})")
    for name in ("candidates", "val_images", "bn_images", "threads", "chunk", "eval_batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.bf16 and args.device != "cuda":
        p.error("--bf16 needs --device cuda (bf16 autocast is offered on GPU only)")
    if args.tf32 and args.device != "cuda":
        p.error("--tf32 needs --device cuda")
    if args.run is not None and not (args.run / "final.pt").exists():
        p.error(f"--run {args.run}: no finished supernet there (final.pt missing)")
    if args.chunk is None:
        args.chunk = 64 if args.device == "cpu" else 1024
    return args


def ensure_supernet(run: Path | None) -> Path:
    """The given run, or the cached quick supernet (trained once: a few CPU minutes, not counted in --quick)."""
    if run is not None:
        return run
    if not (CACHE_RUN / "final.pt").exists():
        print(f"training a quick supernet into {CACHE_RUN} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "genas", "train-supernet", "--preset", "quick", "--no-progress",
                        "--device", "cpu", "-o", str(CACHE_RUN)], check=True)
    return CACHE_RUN


def sample_candidates(n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` distinct connected NB201 genotypes from a seeded generator."""
    space, rng, out = get_space("nb201"), np.random.default_rng(seed), []
    while len(out) < n:
        g = space.sample(rng)
        if space.is_connected(g) and g not in out:
            out.append(g)
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str):
    """(result, seconds) with the device synchronised on both sides."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def side_by_side(ctx: ScoringContext, candidates, args, opts: dict) -> dict:
    """Scores and total seconds of both scorers and of the two forward floors, alternating per
    candidate so that any drift in the machine's load hits all four alike."""
    val_x, val_y = stack_batches(ctx.val_batches)
    images = sum(len(y) for _, y in ctx.bn_batches) + len(args.stds) * ctx.val_image_count
    out = dict(official=[], ours=[], t_official=0.0, t_ours=0.0, t_floor=0.0, t_fast_floor=0.0)
    for g in candidates:
        (score, _), secs = timed(lambda: official_score(ctx.supernet, g, ctx.bn_batches, val_x, val_y, args.stds,
                                                        seed=args.seed), args.device)
        out["official"].append(score)
        out["t_official"] += secs
        score, secs = timed(lambda: our_score(ctx, g, args.stds, args.seed, opts, bf16=args.bf16,
                                              bn_channels_last=args.bn_layout == "nhwc"), args.device)
        out["ours"].append(score)
        out["t_ours"] += secs
        out["t_floor"] += forward_floor(ctx, [g], images, args.device)
        out["t_fast_floor"] += fast_forward_floor(ctx, [g], images, opts, args.device)
    return out


def our_score(ctx: ScoringContext, genotype, stds, seed: int, opts: dict, bf16: bool = False,
              bn_channels_last: bool = False) -> float:
    """Our scorer, end to end: extract the path, recalibrate BN, measure, score.

    The extracted path has exactly the supernet's parameters, so the noise is the official code's.
    """
    net = ctx.supernet.extract(genotype)
    recalibrate_bn(net, ctx.bn_batches, "official", channels_last=bn_channels_last)  # as ScoringContext does
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        measured = losses_under_noise(net, ctx.val_batches, stds, seed=seed, mode="cumulative",
                                      key_of=ctx.noise_key(genotype), candidate_key=None, **opts)
    return flatness_score(measured.losses, stds, alpha=1.0)


def best_throughput(forward, x: torch.Tensor, batch_sizes, device: str, min_seconds: float = 0.25) -> float:
    """Best images/s of ``forward`` over ``batch_sizes`` (warm-up, then >= ``min_seconds`` each)."""
    best = 0.0
    with torch.inference_mode():
        for bs in batch_sizes:
            xb = x[:bs]
            forward(xb)
            n, start = 0, time.perf_counter()
            sync(device)
            while time.perf_counter() - start < min_seconds:
                forward(xb)
                n += len(xb)
            sync(device)
            best = max(best, n / (time.perf_counter() - start))
    return best


def forward_floor(ctx: ScoringContext, candidates, images_per_candidate: int, device: str) -> float:
    """Seconds to push our scorer's images through each plain subnet at its best throughput."""
    x = stack_batches(ctx.val_batches)[0]
    sizes = [b for b in FLOOR_BATCHES if b <= len(x)] or [len(x)]
    total = 0.0
    for g in candidates:
        net = ctx.supernet.extract(g).eval()
        total += images_per_candidate / best_throughput(net, x, sizes, device)
    return total


def fast_forward_floor(ctx: ScoringContext, candidates, images_per_candidate: int, opts: dict, device: str) -> float:
    """The same with our optimised forward (folded BN, memory format) at our chunk size."""
    x = stack_batches(ctx.val_batches)[0]
    total = 0.0
    for g in candidates:
        net = ctx.supernet.extract(g).eval()
        with torch.inference_mode():
            twin = _FastTwin(net, opts["fuse_bn"], opts["channels_last"])
            twin.refresh()
        total += images_per_candidate / best_throughput(twin, x, [min(opts["chunk"] or len(x), len(x))], device)
    return total


def rel_diff(a, b) -> float:
    return max(abs(x - y) / max(abs(y), 1e-300) for x, y in zip(a, b))


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = ensure_supernet(args.run)
    with tf32(True) if args.tf32 else exact_fp32():  # both scorers and the floors: TF32 on, or exact fp32
        return _main(args, run)


def _main(args, run) -> dict:
    cfg = ScoringConfig(val_images=args.val_images, bn_images=args.bn_images, bn_mode="official",
                        noise_mode="cumulative", batch_size=args.eval_batch, stds=args.stds, seed=args.seed)
    ctx = scoring_context(run, cfg, device=args.device)
    candidates = sample_candidates(args.candidates, args.seed)
    opts = dict(fuse_bn=args.fuse_bn, channels_last=not args.no_channels_last, chunk=args.chunk)
    n_bn, n_val = sum(len(y) for _, y in ctx.bn_batches), ctx.val_image_count
    images = n_bn + len(args.stds) * n_val  # pushed through each candidate by our scorer

    ours_warm = our_score(ctx, candidates[0], args.stds, args.seed, opts, bf16=args.bf16,
                          bn_channels_last=args.bn_layout == "nhwc")  # warm-up
    both = side_by_side(ctx, candidates, args, opts)
    official, ours, t_official, t_ours = both["official"], both["ours"], both["t_official"], both["t_ours"]
    assert ours[0] == ours_warm, "our scorer is not deterministic"
    t_floor, t_fast_floor = both["t_floor"], both["t_fast_floor"]

    out = dict(
        speedup_vs_official=t_official / t_ours,
        floor_ratio=t_ours / t_floor,
        score_rel_diff=rel_diff(ours, official),
        official_cand_per_s=len(candidates) / t_official,
        ours_cand_per_s=len(candidates) / t_ours,
        overhead_vs_own_forward=t_ours / t_fast_floor,
        candidates=len(candidates), val_images=n_val, bn_images=n_bn, images_per_candidate=images,
        stds=list(args.stds), options=opts, bn_channels_last=args.bn_layout == "nhwc", bf16=args.bf16,
        tf32=args.tf32, scores_ours=ours, scores_official=official,
        device=args.device, threads=torch.get_num_threads(), run=str(run),
        supernet=dataclasses.asdict(ctx.supernet.spec),
        torch=torch.__version__, machine=platform.processor() or platform.machine(),
        mode="quick" if args.quick else "full",
    )
    if args.ablation:
        variants = {}
        for name, variant in ABLATION:
            variant = dict(variant, chunk=variant.get("chunk", args.chunk))
            _, secs = timed(lambda: [our_score(ctx, g, args.stds, args.seed, variant) for g in candidates], args.device)
            variants[name] = dict(cand_per_s=len(candidates) / secs, speedup_vs_official=t_official / secs)
        out["ablation"] = variants
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
