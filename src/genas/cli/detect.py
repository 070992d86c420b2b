"""``genas detect``: make-data, train and eval of a detector on a genas backbone."""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from .options import (Parser, add_common, add_config_options, config_values, name_option, progress_of,
                      resumed_config, shared)


def _train_config(args: argparse.Namespace):
    """``--preset`` plus the options passed; on ``--resume`` the stored config, which the options
    passed may not contradict (the run folder check names the first differing key)."""
    from ..detection.config import CONFIG, DetectConfig, detect_config, load_detect_config
    from ..options import to_dict

    values = config_values(args, DetectConfig)
    run = Path(args.output) if args.output else None
    if args.resume and run is not None and (run / CONFIG).exists():
        return resumed_config(DetectConfig, to_dict(load_detect_config(run)), values, run, args.preset).validate()
    return detect_config(args.preset or "quick", **values)


def _print_train_config(args: argparse.Namespace) -> dict:
    """--print-config: the config.json this run would have (a resumed one: its stored one, updated)."""
    from ..options import to_dict

    return to_dict(_train_config(args))


def cmd_make_data(args: argparse.Namespace) -> int:
    from ..detection.data import SceneSpec, make_data

    spec = SceneSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SceneSpec)
                        if getattr(args, f.name, None) is not None})
    meta = make_data(args.output, spec, data_dir=args.data_dir, force=args.force)
    tr, va = meta["splits"]["train"], meta["splits"]["val"]
    print(f"wrote {tr['images']} train scenes ({tr['annotations']} boxes) and {va['images']} val scenes "
          f"({va['annotations']} boxes) -> {Path(args.output).resolve()}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..detection import train_detector

    cfg = _train_config(args)
    result = train_detector(cfg, args.output, resume=args.resume, device=args.device, progress=progress_of(args))
    if os.environ.get("RANK", "0") == "0":
        m = result["metrics"]
        print("  ".join(f"{k} {m[k]:.2f}" if m[k] is not None else f"{k} -" for k in
                        ("AP", "AP50", "AP75", "APs", "APm", "APl")) + f"  ->  {Path(args.output).resolve()}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..detection import evaluate_run

    m = evaluate_run(args.run, args.output, val_images=args.val_images, val_annotations=args.val_annotations,
                     max_val_images=args.max_val_images, predictions=args.predictions, batch_size=args.batch_size,
                     device=args.device, force=args.force)
    print("  ".join(f"{k} {m[k]:.2f}" if m[k] is not None else f"{k} -" for k in
                    ("AP", "AP50", "AP75", "APs", "APm", "APl")) + f"  ->  {Path(args.output).resolve()}")
    return 0


def _add_detect(sub) -> None:
    from ..detection.config import DETECT_PRESETS, DetectConfig
    from ..detection.data import SceneSpec

    p = sub.add_parser("detect", help="transfer a found architecture to object detection (RetinaNet / FCOS)",
                       description="Object detection on a genas backbone: make-data writes the embedded "
                                   "COCO-format scene set, train trains RetinaNet or FCOS in a run folder (resumable, "
                                   "torchrun DDP), eval scores a run or a predictions file with the COCO summary.")
    dsub = p.add_subparsers(dest="detect_command", metavar="SUBCOMMAND", parser_class=Parser,
                            help="make-data, train or eval (genas detect SUBCOMMAND --help)")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    m = dsub.add_parser("make-data", parents=[shared("folder to write (train/, train.json, val/, val.json)",
                                                     force=True)],
                        help="write the embedded scene set (Fashion-MNIST items on textured backgrounds)",
                        description="Seeded COCO-format scenes: train-split items for train/, test-split items for "
                                    "val/, several items per image at varied scales, some overlapping, some empty "
                                    "images; category ids 1..K named after the classes.")
    defaults = SceneSpec()
    helps = dict(dataset="source of the items: fashion-mnist, cifar10, cifar100 or synthetic",
                 train_scenes="number of train scenes", val_scenes="number of val scenes",
                 image_size="scene side in px", max_items="most items per scene",
                 empty_fraction="share of scenes without items", min_side="smallest pasted item side in px",
                 max_side="largest pasted item side in px", max_overlap="largest share of an item's box that another item's box may cover",
                 seed="seed of the scenes")
    for f in dataclasses.fields(SceneSpec):
        m.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                       help=f"{helps[f.name]} (default {getattr(defaults, f.name)})")
    m.add_argument("--data-dir", help="folder with the item dataset's files (default: its usual location)")
    m.set_defaults(func=cmd_make_data)

    common = shared("run folder to create (or to continue with --resume)",
                    resume="continue a killed run from its last checkpoint", device="auto",
                    progress="hide the progress bar")
    t = dsub.add_parser("train", parents=[common], help="train a detector on a genas backbone",
                        description="Train RetinaNet (or FCOS) with a genas genotype network as backbone, from "
                                    "scratch or from a `genas retrain` run's weights, then evaluate it on the "
                                    "validation split (predictions.json, metrics.json). Presets: tiny (seconds, "
                                    "CI), quick (a few CPU minutes on the embedded scenes), coco (Detectron2 "
                                    "RetinaNet 1x, for GPUs). Works under torchrun (DDP).")
    name_option(t, "--preset", list(DETECT_PRESETS), "detect preset", "recipe (default quick)")
    add_config_options(t.add_argument_group("recipe (defaults from --preset)"), DetectConfig,
                       negatable=("frozen_bn",), presets=DETECT_PRESETS)
    t.set_defaults(func=cmd_train, config_of=_print_train_config)

    e = dsub.add_parser("eval", parents=[shared("folder for predictions.json and metrics.json", force=True)],
                        help="COCO scores of a trained detector, or of a predictions file",
                        description="Run a finished `genas detect train` folder's final.pt on its validation "
                                    "split (or on --val-images/--val-annotations), or score --predictions (COCO "
                                    "results) against --val-annotations; the 12-number COCO summary in percent.")
    e.add_argument("--run", help="a finished detect train run folder")
    e.add_argument("--predictions", help="a COCO results JSON to score instead of running a model")
    e.add_argument("--val-images", help="folder of the images to evaluate on (default: the run's val split)")
    e.add_argument("--val-annotations", help="COCO instances JSON of those images")
    e.add_argument("--max-val-images", type=int, default=None, help="evaluate the first K images only")
    e.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    e.set_defaults(func=cmd_eval)
    for command in (m, t, e):  # the options every command has, where they are written: after the subcommand
        add_common(command)


COMMANDS = {"detect": _add_detect}

__all__ = ["COMMANDS", "cmd_eval", "cmd_make_data", "cmd_train"]
