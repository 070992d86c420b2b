"""The optional last step of ``genas run``: the retrained winner as a detection backbone."""
from __future__ import annotations

from pathlib import Path

from ..errors import GenasError
from .config import CONFIG, DETECT_PRESETS, detect_config
from .data import SCENES_META, SceneSpec, make_data

DATA_DIR, RUN_DIR = "detect-data", "detect"


def check_preset(preset: str) -> None:
    if preset not in DETECT_PRESETS:
        raise GenasError(f"unknown detect preset {preset!r}; available: {', '.join(DETECT_PRESETS)}")


def detect_winner(run_dir: str | Path, preset: str, data: str | None = None, seed: int = 0, device: str = "auto",
                  progress: bool | None = None) -> dict:
    """Train ``preset``'s detector with ``run_dir/retrain``'s weights as backbone on ``data`` (default:
    the embedded scenes, made once into ``run_dir/detect-data``) into ``run_dir/detect``; resumable."""
    from .train import train_detector

    check_preset(preset)
    run_dir = Path(run_dir)
    if data is None:
        data = run_dir / DATA_DIR
        if not (data / SCENES_META).exists():  # (re)made whole: a kill while writing it leaves no meta file
            make_data(data, SceneSpec(seed=seed), force=True)
    out = run_dir / RUN_DIR
    cfg = detect_config(preset, data=str(data), backbone_run=str(run_dir / "retrain"), seed=seed)
    return train_detector(cfg, out, resume=(out / CONFIG).exists(), device=device, progress=progress)


__all__ = ["DATA_DIR", "RUN_DIR", "check_preset", "detect_winner"]
