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


def export_run(run: str | Path, out_dir: str | Path, search: str | None = None) -> Path:
    """Export the winner of a `genas run` folder with its retrained weights."""
    from .data import _STATS
    from .spaces import get_space
    from .supernet.train import load_run_config

    run = Path(run)
    retrain = run / "retrain" / "result.json"
    if not retrain.exists():
        raise GenasError(f"{run} has no retrained network ({retrain} missing); finish `genas run` first")
    result = load_json(retrain)
    cfg = load_run_config(run)
    facts = load_json(run / "data.json")
    space = get_space(cfg.space)
    genotype = space.parse(result["genotype"])
    kwargs = dict(channels=result["config"]["channels"], cells_per_stage=result["config"]["cells_per_stage"],
                  num_classes=facts["num_classes"], in_channels=facts["in_channels"])
    net = space.build_network(genotype, **kwargs)
    net.load_state_dict(load_torch(run / "retrain" / "weights.pt"))
    stats = _STATS.get(facts["dataset"], {})
    meta = dict(space=space.name, genotype=result["genotype"], genotype_indices=list(genotype), network=kwargs,
                dataset=facts["dataset"], mean=list(stats.get("mean", [])), std=list(stats.get("std", [])),
                test_accuracy=result["test_accuracy"], source_run=str(run.resolve()))
    size = facts["image_size"]
    return export_network(net, meta, (facts["in_channels"], size, size), out_dir)
