"""Export a found network as an artifact that plain PyTorch loads without genas installed.

``model.pt2`` is a ``torch.export`` program (load with ``torch.export.load(path).module()``; the
batch dimension is dynamic); ``genotype.json`` holds the space, the genotype string and indices,
the network's constructor arguments, the input shape, the normalisation it expects and the
fingerprint of the data it was trained on; ``weights.pt`` is the plain state dict. With ``onnx``,
``model.onnx`` too (the optional ``onnx`` extra: onnx + onnxscript; input ``images``, output
``logits``, dynamic batch). :func:`register_timm` makes an export folder a ``timm`` model (the
optional ``timm`` extra). Torch is imported when exporting, not with the module (``genas.export``
is also the public ``genas.export(run, out_dir)``).
"""
from __future__ import annotations

import copy
import os
import shutil
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GenasError
from .io import load_json, save_json
from .run_folder import check_new_output

if TYPE_CHECKING:
    import torch

MODEL, META, WEIGHTS, ONNX = "model.pt2", "genotype.json", "weights.pt", "model.onnx"
ONNX_HINT = "ONNX export needs the onnx extra: pip install 'genas[onnx]'"
TIMM_HINT = "the timm entry point needs the timm extra: pip install 'genas[timm]'"
TIMM_MODULE = "genas_timm_models"  # the module timm files the registered entry points under


def require_onnx() -> None:
    """One line saying how to install the extra when onnx or onnxscript is missing."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise GenasError(ONNX_HINT) from None


def write_onnx(program, example, path: Path) -> Path:
    """The ``torch.export`` program as ONNX (dynamo exporter): input ``images``, output ``logits``,
    the program's dynamic batch dimension named ``batch``."""
    require_onnx()
    import onnx
    import torch

    onnx_program = torch.onnx.export(program, (example,), dynamo=True, input_names=["images"],
                                     output_names=["logits"], verbose=False)
    tmp = path.with_name(".tmp-" + path.name)
    onnx_program.save(str(tmp))
    model = onnx.load(str(tmp))
    batch = model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if batch and dim.dim_param == batch:
                dim.dim_param = "batch"
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def export_network(net: torch.nn.Module, meta: dict, input_shape: tuple[int, ...], out_dir: str | Path,
                   onnx: bool = False) -> Path:
    """Write ``out_dir/model.pt2``, ``weights.pt``, ``genotype.json`` (and ``model.onnx`` with
    ``onnx``); returns the folder."""
    import torch

    from .engine.checkpoint import save_torch

    if onnx:
        require_onnx()
    out_dir = Path(out_dir)
    work = out_dir.with_name(f".tmp-{out_dir.name}-{os.getpid()}")  # built whole, then moved into place
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        net = copy.deepcopy(net).cpu().eval()  # the caller's network stays where and as it was
        example = torch.zeros(2, *input_shape)
        batch = torch.export.Dim("batch", min=1, max=65536)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, work / MODEL)
        save_torch(net.state_dict(), work / WEIGHTS)
        extra = {}
        if onnx:
            write_onnx(program, example, work / ONNX)
            extra = {"onnx": dict(file=ONNX, input="images", output="logits",
                                  dynamic_axes={"images": [0], "logits": [0]})}
        save_json({**meta, "input_shape": list(input_shape), "weights": WEIGHTS, **extra,
                   "format": "torch.export (torch.export.load(...).module())", "torch_version": torch.__version__},
                  work / META)
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, GenasError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GenasError(f"export failed ({type(exc).__name__}: {first[:300]}); nothing was written") from None
    if out_dir.exists():  # --force: the earlier export goes as a whole (no stale model.onnx is left)
        old = out_dir.with_name(f".old-{out_dir.name}-{os.getpid()}")
        out_dir.rename(old)
        work.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(out_dir)
    return out_dir


def export_run(run: str | Path, out_dir: str | Path, force: bool = False, onnx: bool = False) -> Path:
    """Export the retrained winner of a `genas run` folder (or a `genas retrain` folder), final weights
    (and ``model.onnx`` with ``onnx``). An existing export folder is refused unless ``force``.

    ``genotype.json`` records the normalisation the network expects (``mean``/``std`` on the 0-1
    scale), as its data recorded it, whether a named dataset or the user's own arrays.
    """
    from .data import named_normalisation
    from .engine.checkpoint import load_checkpoint, load_into
    from .options import to_dict
    from .spaces import get_space
    from .train.recipes import load_retrain_config
    from .train.retrain import build_network

    if onnx:
        require_onnx()
    run = Path(run)
    folder = run / "retrain" if (run / "retrain").is_dir() else run
    check_new_output(out_dir, force, inputs=(run, folder))  # never into the run it exports
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
                source=str(folder.resolve()), retrain_config=to_dict(cfg))
    size = facts["image_size"]
    return export_network(net, meta, (facts["in_channels"], size, size), out_dir, onnx=onnx)


def register_timm(export_dir: str | Path, name: str | None = None) -> str:
    """Register the network of an export folder (:func:`export_run`) as a timm model; returns its
    name (default ``genas_<space>_<first 8 hex of the genotype's sha256>``).

    ``timm.create_model(name, num_classes=..., in_chans=..., pretrained=False)`` then builds the
    genas network (fresh, seeded weights; ``pretrained=True``: the exported weights, with a new
    classifier when ``num_classes`` differs and the stem adapted by timm's ``adapt_input_conv`` when
    ``in_chans`` does), and ``model.pretrained_cfg`` holds the export's input size, mean and std,
    so ``timm.data.resolve_data_config(model=model)`` gives the right preprocessing.
    """
    import hashlib

    try:
        from timm.models import register_model
    except ImportError:
        raise GenasError(TIMM_HINT) from None
    export_dir = Path(export_dir)
    meta = load_json(export_dir / META)
    if "retrain_config" not in meta:
        raise GenasError(f"{export_dir / META} has no retrain_config; export it again with `genas export`")
    name = name or f"genas_{meta['space']}_{hashlib.sha256(meta['genotype'].encode()).hexdigest()[:8]}"
    if not name.isidentifier():
        raise GenasError(f"a timm model name must be a Python identifier, got {name!r}")
    shape = tuple(meta["input_shape"])
    first_conv = _first_conv(meta)
    base = dict(file=str((export_dir / WEIGHTS).resolve()), architecture=name, input_size=shape,
                num_classes=meta["network"]["num_classes"], mean=tuple(meta.get("mean") or (0.0,) * shape[0]),
                std=tuple(meta.get("std") or (1.0,) * shape[0]), interpolation="bilinear", crop_pct=1.0,
                first_conv=first_conv, classifier="classifier", license="see the data it was trained on",
                description=f"genas {meta['space']} network {meta['genotype']}")

    def entry(pretrained: bool = False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None,
              num_classes: int | None = None, in_chans: int | None = None, drop_path_rate: float | None = None,
              **kwargs):
        if kwargs:
            raise TypeError(f"{name}: unsupported arguments {', '.join(sorted(kwargs))}")
        return _timm_model(export_dir, meta, base, pretrained, num_classes, in_chans, drop_path_rate,
                           pretrained_cfg_overlay)

    module = sys.modules.setdefault(TIMM_MODULE, types.ModuleType(TIMM_MODULE))
    if not hasattr(module, "default_cfgs"):
        module.default_cfgs = {}
    module.default_cfgs[name] = dict(base)
    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = TIMM_MODULE
    setattr(module, name, entry)
    register_model(entry)
    return name


def _first_conv(meta: dict) -> str:
    """The module name of the exported network's first convolution (``stem.0``; ``stem0.0`` for
    the ImageNet-style DARTS stem), which timm adapts to another input channel count."""
    import torch

    from .options import from_dict
    from .train.recipes import RetrainConfig
    from .train.retrain import build_network

    net = build_network(from_dict(RetrainConfig, meta["retrain_config"]), meta["network"]["num_classes"],
                        meta["input_shape"][0])
    return next(name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d))


def _timm_model(export_dir: Path, meta: dict, base: dict, pretrained: bool, num_classes, in_chans, drop_path_rate,
                overlay):
    from .engine.checkpoint import load_torch
    from .options import from_dict
    from .train.recipes import RetrainConfig
    from .train.retrain import build_network

    exported_classes, exported_chans = meta["network"]["num_classes"], meta["input_shape"][0]
    num_classes = exported_classes if num_classes is None else int(num_classes)
    in_chans = exported_chans if in_chans is None else int(in_chans)
    net = build_network(from_dict(RetrainConfig, meta["retrain_config"]), num_classes, in_chans)
    if pretrained:
        from timm.models._manipulate import adapt_input_conv

        state = load_torch(export_dir / WEIGHTS)
        own = net.state_dict()
        if in_chans != exported_chans:
            key = f"{base['first_conv']}.weight"
            state[key] = adapt_input_conv(in_chans, state[key], base_chans=exported_chans)
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}  # a new head keeps its own
        net.load_state_dict({**own, **state})
    if drop_path_rate is not None:
        net.drop_path_prob = float(drop_path_rate)

    def per_channel(values):
        values = tuple(values)
        return values if len(values) == in_chans else (sum(values) / len(values),) * in_chans

    cfg = {**base, **(overlay or {}), "num_classes": num_classes, "input_size": (in_chans, *meta["input_shape"][1:]),
           "mean": per_channel(base["mean"]), "std": per_channel(base["std"])}
    net.pretrained_cfg = net.default_cfg = cfg
    net.num_classes = num_classes
    return net
