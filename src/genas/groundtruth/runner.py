"""Ground truth for proxy studies: stand-alone training of a seeded sample of architectures.

``genas bench -o DIR`` trains every sampled architecture with one fixed recipe and appends one
row per architecture to ``DIR/results.jsonl``: test accuracy and loss, search-validation accuracy,
accuracy on a fixed distribution-shifted test set (per corruption and averaged), training loss and
accuracy (the last epoch's running means, and the trained network evaluated on the first 5,000 of its
training images: the training side of the generalization gap), params, MACs and training seconds. The folder is append-only and resumable: a killed run loses at most the
architectures in progress. Several processes (``--workers N`` or ``torchrun`` ranks, or separate
invocations) share the work through claim files created atomically, so no architecture is
trained twice. Disconnected cells are recorded at chance level without training.

The default recipe is sized so that 100 architectures take about an hour on a 2-core CPU: the
NB201 skeleton at C=8, N=1, 3 epochs over 10k supernet-train images (batch 128, SGD 0.05 with
Nesterov momentum, cosine to 0, wd 5e-4), evaluated on 5k search-validation images, the full 10k
test set, and 6 corruptions of the first 2k test images.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import options, seeding
from ..data import DATASETS
from ..engine import channels_last_option, deterministic_option, precision_option
from ..errors import GenasError
from ..io import append_jsonl, load_json, read_jsonl, save_json
from ..options import check_resume, from_dict, option, to_dict
from ..run_folder import RunFolder, claim_file
from ..spaces import SPACES

CONFIG, RESULTS, CLAIMS = "bench.json", "results.jsonl", "claims"
TRAIN_EVAL_IMAGES = 5000  # training images evaluated after training (eval mode, no augmentation): the fit of the gap


@dataclass
class BenchConfig:
    """The fixed training recipe of a benchmark and which architectures it trains."""

    space: str = option("nb201", "search space", choices=SPACES.names, cli=False)
    dataset: str = option("fashion-mnist", "dataset", choices=DATASETS.names)
    data_dir: str | None = option(None, "folder with the dataset files")
    split_seed: int = option(0, "seed of the supernet-train / search-validation split")
    num_archs: int = option(100, "architectures to train (raising it later extends the same sample)", min=1)
    sample_seed: int = option(0, "seed of the architecture sample (a prefix-stable sequence: more archs extend it)")
    seed: int = option(0, "training seed: initial weights and data order")
    channels: int = option(8, "channels C of the stand-alone networks", min=1)
    cells_per_stage: int = option(1, "cells N per stage", min=1)
    epochs: int = option(3, "training epochs", min=1)
    batch_size: int = option(128, "batch size", min=1)
    lr: float = option(0.05, "initial learning rate, cosine to 0", gt=0)
    weight_decay: float = option(5e-4, "weight decay", min=0)
    max_train_images: int | None = option(10000, "supernet-train images used for training", min=1)
    val_images: int | None = option(5000, "search-validation images evaluated", min=1)
    shifted_images: int = option(2000, "test images in the distribution-shifted set", min=1)
    corruption_seed: int = option(0, "seed of the corruptions of the distribution-shifted set", cli=False)
    genotypes: list[str] | None = option(None, "explicit architectures (e.g. search winners) instead of the sample",
                                         cli=False)
    precision: str = precision_option("evaluation stays fp32")
    channels_last: bool = channels_last_option()
    deterministic: bool = deterministic_option()

    def validate(self) -> "BenchConfig":
        options.validate(self)  # the bounds and choices declared above
        return self

    def recipe(self) -> dict:
        """The settings that define a row's meaning (all but how many archs to do)."""
        return {k: v for k, v in to_dict(self).items() if k not in ("num_archs", "genotypes")}

    def architectures(self, space) -> list[tuple[int, ...]]:
        """The explicit ``genotypes`` if given, else the seeded sample of ``num_archs``."""
        if self.genotypes:
            try:
                return list(dict.fromkeys(space.parse(g) for g in self.genotypes))
            except ValueError as exc:
                raise GenasError(f"bad architecture in --genotypes: {exc}") from None
        return sample_archs(space, self.num_archs, self.sample_seed)


def sample_archs(space, n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` distinct genotypes in a seeded order; a longer list extends a shorter one."""
    rng = seeding.derive_rng(seed, seeding.SEARCH, 99)
    out, seen = [], set()
    if n > space.size():
        raise GenasError(f"--num-archs {n} exceeds the {space.size()} architectures of {space.name}")
    while len(out) < n:
        g = space.sample(rng)
        if g not in seen:
            seen.add(g)
            out.append(g)
    return out


def claim_key(genotype_text: str) -> str:
    """Claim-file name of an architecture: by genotype, not list position, so a folder extended with
    another architecture list (e.g. later search winners) never confuses two architectures."""
    return hashlib.sha1(genotype_text.encode()).hexdigest()[:16]


def _claim(claims: Path, key: str | int) -> bool:
    """Atomically claim an architecture; a claim left by a dead process on this host is taken over."""
    return claim_file(claims / f"{key}.claim")[0]


def prepare(out: Path, cfg: BenchConfig, resume: bool) -> BenchConfig:
    """Create the folder, or check that a resumed one uses the same recipe (num_archs may grow)."""
    if RunFolder(out, "benchmark", CONFIG).open(resume, missing_ok=True):
        saved = from_dict(BenchConfig, load_json(out / CONFIG))
        check_resume(saved.recipe(), cfg.recipe(), f"{out} (its training recipe)")
    out.mkdir(parents=True, exist_ok=True)
    (out / CLAIMS).mkdir(exist_ok=True)
    save_json(to_dict(cfg), out / CONFIG)
    return cfg


def done_genotypes(out: Path) -> set[str]:
    return {r["genotype"] for r in read_jsonl(out / RESULTS)}


def run_worker(out: Path, cfg: BenchConfig, shard: tuple[int, int] = (0, 1), device: str = "cpu",
               progress: bool | None = None, log=logging.getLogger("genas").info) -> int:
    """Train every unclaimed, unfinished architecture of this shard; returns how many it did."""
    from ..engine.precision import deterministic_mode

    with deterministic_mode(cfg.deterministic):
        return _run_worker(out, cfg, shard, device, progress, log)


def _run_worker(out: Path, cfg: BenchConfig, shard: tuple[int, int], device: str, progress: bool | None,
                log) -> int:
    import torch

    from ..data import load_data
    from ..spaces import NetworkSpec, get_space
    from ..engine.cost import count_macs
    from ..engine.evaluate import evaluate
    from ..train.standalone import StandaloneConfig, train_indices, train_standalone
    from .corruptions import shifted_sets

    space = get_space(cfg.space)
    data = load_data(cfg.dataset, cfg.data_dir, cfg.split_seed)
    shifted = shifted_sets(data.test, cfg.shifted_images, seed=cfg.corruption_seed)
    train_cfg = StandaloneConfig(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, epochs=cfg.epochs,
                                 batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 max_train_images=cfg.max_train_images, train_on="train-half",
                                 val_images=cfg.val_images, seed=cfg.seed, precision=cfg.precision,
                                 channels_last=cfg.channels_last)
    archs = cfg.architectures(space)
    texts = {space.format(g) for g in archs}  # progress counts this list only (a folder may hold others)
    rank, world = shard
    trained = 0
    for index, genotype in enumerate(archs):
        text = space.format(genotype)
        if index % world != rank or text in done_genotypes(out) or not _claim(out / CLAIMS, claim_key(text)):
            continue
        try:
            if text in done_genotypes(out):  # finished by another worker between the checks
                continue
            row = dict(index=index, genotype=text, seed=cfg.seed, torch_threads=torch.get_num_threads())
            net = space.build_network(genotype, NetworkSpec(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                                                            num_classes=data.num_classes, in_channels=data.in_channels))
            row.update(params=sum(p.numel() for p in net.parameters()),
                       macs=count_macs(net, (data.in_channels, data.image_size, data.image_size)))
            if not space.is_connected(genotype):
                chance = 1.0 / data.num_classes
                row.update(disconnected=True, test_accuracy=chance, val_accuracy=chance, train_accuracy=chance,
                           train_eval_accuracy=chance, shifted_accuracy=chance, test_loss=None,
                           shifted={k: chance for k in shifted}, train_seconds=0.0)
            else:
                t0 = time.perf_counter()
                result = train_standalone(space, genotype, data, train_cfg, device, progress)
                net = result.pop("network")
                accs = {k: evaluate(net, s.batches(range(len(s)), 500, train=False), torch.device(device))["accuracy"]
                        for k, s in shifted.items()}
                last = result["history"][-1]  # running means over the last epoch (augmented, weights moving)
                seen = evaluate(net, data.train.batches(train_indices(data, train_cfg)[:TRAIN_EVAL_IMAGES], 500,
                                                        train=False), torch.device(device))
                row.update(disconnected=False, test_accuracy=result["test_accuracy"], test_loss=result["test_loss"],
                           val_accuracy=result["val_accuracy"], val_loss=result["val_loss"],
                           train_loss=last["train_loss"], train_accuracy=last["train_acc"],
                           train_eval_loss=seen["loss"], train_eval_accuracy=seen["accuracy"],
                           shifted_accuracy=sum(accs.values()) / len(accs), shifted=accs,
                           train_seconds=round(time.perf_counter() - t0, 2))
            append_jsonl(row, out / RESULTS)
            trained += 1
            log(f"[{len(done_genotypes(out) & texts)}/{len(archs)}] {text}  test {row['test_accuracy']:.4f}  "
                f"shifted {row['shifted_accuracy']:.4f}  {row['train_seconds']} s")
        finally:
            (out / CLAIMS / f"{claim_key(text)}.claim").unlink(missing_ok=True)
    return trained


def _worker_main(out: str, cfg_dict: dict, shard: tuple[int, int], threads: int) -> int:
    import torch

    from ..logs import session

    torch.set_num_threads(threads)
    with session():  # a spawned worker's own console lines (one per architecture)
        return run_worker(Path(out), BenchConfig(**cfg_dict), shard, progress=False)


def run_bench(out: str | Path, cfg: BenchConfig, workers: int = 1, resume: bool = False, device: str = "cpu",
              progress: bool | None = None) -> dict:
    """Fill ``out/results.jsonl`` up to ``cfg.num_archs`` rows, with ``workers`` local processes."""
    from ..spaces import get_space

    from ..engine.distributed import resolve_device  # here: importing this module stays torch-free

    from ..engine.precision import check_precision

    out = Path(out)
    device = str(resolve_device(device))  # the common device check, before any file is written
    check_precision(cfg.validate().precision, device)
    space = get_space(cfg.space)
    texts = {space.format(g) for g in cfg.validate().architectures(space)}  # bad genotypes fail before any file changes
    cfg = prepare(out, cfg, resume)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:  # torchrun: ranks split the sample statically, each one process
        run_worker(out, cfg, (rank, world), device, progress)
    elif workers <= 1:
        run_worker(out, cfg, (0, 1), device, progress)
    else:
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // workers)
        with mp.get_context("spawn").Pool(workers) as pool:
            pool.starmap(_worker_main, [(str(out), dataclasses.asdict(cfg), (0, 1), threads)] * workers)
    rows = [r for r in read_jsonl(out / RESULTS) if r["genotype"] in texts]  # this list's rows (a folder may hold more)
    return dict(rows=len(rows), target=len(texts), total_train_seconds=round(sum(r["train_seconds"] for r in rows), 1))
