"""Export a found network as an artifact that plain PyTorch loads without genas installed.

``model.pt2`` is a ``torch.export`` program (load with ``torch.export.load(path).module()``; the
batch dimension is dynamic); ``genotype.json`` holds the space, the genotype string and indices,
the network's constructor arguments, the input shape and the normalisation it expects.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_torch, save_json
from .config import load_json
from .errors import GenasError

MODEL, META = "model.pt2", "genotype.json"


def export_network(net: torch.nn.Module, meta: dict, input_shape: tuple[int, ...], out_dir: str | Path) -> Path:
    """Write ``out_dir/model.pt2`` and ``out_dir/genotype.json``; returns the folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.cpu().eval()
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
    tmp = out_dir / (".tmp-" + MODEL)
    torch.export.save(program, tmp)
    tmp.replace(out_dir / MODEL)
    save_json({**meta, "input_shape": list(input_shape), "format": "torch.export (torch.export.load(...).module())",
               "torch_version": torch.__version__}, out_dir / META)
    return out_dir


def export_run(run: str | Path, out_dir: str | Path) -> Path:
    """Export the retrained winner of a `genas run` folder (or a `genas retrain` folder), final weights."""
    from .data import _STATS
    from .spaces import get_space
    from .train.retrain import build_network, load_retrain_config

    run = Path(run)
    folder = run / "retrain" if (run / "retrain").is_dir() else run
    if not (folder / "result.json").exists():
        raise GenasError(f"{run} has no retrained network ({folder / 'result.json'} missing); "
                         f"finish `genas run` or `genas retrain` first")
    result = load_json(folder / "result.json")
    cfg = load_retrain_config(folder)
    facts = result["dataset"]
    net = build_network(cfg, facts["num_classes"], facts["in_channels"])
    net.load_state_dict(load_torch(folder / "last.pt")["model"])
    space = get_space(cfg.space)
    genotype = space.parse(cfg.genotype)
    stats = _STATS.get(facts["dataset"], {})
    meta = dict(space=space.name, genotype=cfg.genotype, genotype_indices=list(genotype),
                network=dict(channels=cfg.channels, layers=cfg.layers, cells_per_stage=cfg.cells_per_stage,
                             style=cfg.style, num_classes=facts["num_classes"], in_channels=facts["in_channels"]),
                dataset=facts["dataset"], mean=list(stats.get("mean", [])), std=list(stats.get("std", [])),
                test_accuracy=result["final_top1"], source=str(folder.resolve()))
    size = facts["image_size"]
    return export_network(net, meta, (facts["in_channels"], size, size), out_dir)
