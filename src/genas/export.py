"""Export a found network as an artifact that plain PyTorch loads without genas installed.

``model.pt2`` is a ``torch.export`` program (load with ``torch.export.load(path).module()``; the
batch dimension is dynamic); ``genotype.json`` holds the space, the genotype string and indices,
the network's constructor arguments, the input shape, the normalisation it expects and the
fingerprint of the data it was trained on. Torch is imported when exporting, not with the module
(``genas.export`` is also the public ``genas.export(run, out_dir)``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GenasError
from .io import load_json, save_json
from .run_folder import check_new_output

if TYPE_CHECKING:
    import torch

MODEL, META = "model.pt2", "genotype.json"


def export_network(net: torch.nn.Module, meta: dict, input_shape: tuple[int, ...], out_dir: str | Path) -> Path:
    """Write ``out_dir/model.pt2`` and ``out_dir/genotype.json``; returns the folder."""
    import torch

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


def export_run(run: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """Export the retrained winner of a `genas run` folder (or a `genas retrain` folder), final weights.
    An existing export folder is refused unless ``force``.

    ``genotype.json`` records the normalisation the network expects (``mean``/``std`` on the 0-1
    scale), as its data recorded it, whether a named dataset or the user's own arrays.
    """
    from .data import named_normalisation
    from .engine.checkpoint import load_checkpoint, load_into
    from .spaces import get_space
    from .train.recipes import load_retrain_config
    from .train.retrain import build_network

    check_new_output(out_dir, force)
    run = Path(run)
    folder = run / "retrain" if (run / "retrain").is_dir() else run
    if not (folder / "result.json").exists():
        raise GenasError(f"{run} has no retrained network ({folder / 'result.json'} missing); "
                         f"finish `genas run` or `genas retrain` first")
    result = load_json(folder / "result.json")
    cfg = load_retrain_config(folder)
    facts = result["dataset"]
    net = build_network(cfg, facts["num_classes"], facts["in_channels"])
    load_into(net, load_checkpoint(folder / "last.pt", ("model",))["model"], folder / "last.pt", "the retrained network")
    space = get_space(cfg.space)
    genotype = space.parse(cfg.genotype)
    # the normalisation the network was trained with, as recorded; folders made before it was recorded
    # fall back to the named dataset's (none for image folders: their inputs were ImageNet-normalised)
    stats = {k: facts[k] for k in ("mean", "std") if k in facts} or named_normalisation(facts["dataset"]) or {}
    meta = dict(space=space.name, genotype=cfg.genotype, genotype_indices=list(genotype),
                network=dict(channels=cfg.channels, layers=cfg.layers, cells_per_stage=cfg.cells_per_stage,
                             style=cfg.style, num_classes=facts["num_classes"], in_channels=facts["in_channels"]),
                dataset=facts["dataset"], mean=list(stats.get("mean", [])), std=list(stats.get("std", [])),
                data_fingerprint=facts.get("fingerprint"), test_accuracy=result["final_top1"],
                source=str(folder.resolve()))
    size = facts["image_size"]
    return export_network(net, meta, (facts["in_channels"], size, size), out_dir)
