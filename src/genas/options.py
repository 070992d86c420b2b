"""Config dataclasses as the single source of every option: help, bounds and choices live in the
fields' metadata; the CLI is generated from them, one validator checks them, one resolver applies
presets (a base plus differences), one check decides whether a run may be resumed with a config.

Declare a field with :func:`option`::

    epochs: int = option(30, "training epochs", min=1)
    lr: float = option(0.025, "initial learning rate", gt=0)
    bn_mode: str = option("exact", "BN recalibration", choices=("exact", "official"))
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from .errors import GenasError

C = TypeVar("C")


def option(default: Any, help: str, *, min: float | None = None, gt: float | None = None,
           max: float | None = None, lt: float | None = None, choices: Sequence | Callable[[], Sequence] | None = None,
           cli: bool = True, flag: str | None = None, resume_may_change: bool = False, parse: Callable | None = None,
           default_factory: Callable | None = None, legacy: Any = dataclasses.MISSING):
    """A dataclass field with its CLI help and bounds (``min``/``max`` inclusive, ``gt``/``lt`` strict;
    ``None`` values are never bound-checked). ``choices`` may be a callable (e.g. a registry's
    ``names``) so the list is read when it is needed. ``cli=False`` keeps it out of the generated
    options; ``parse`` turns the CLI string into the field's value. ``legacy``: what a folder saved
    before the setting existed ran with, when that is not ``default`` (see :func:`defaults`)."""
    meta = dict(help=help, min=min, gt=gt, max=max, lt=lt, choices=choices, cli=cli, flag=flag,
                resume_may_change=resume_may_change, parse=parse)
    if legacy is not dataclasses.MISSING:
        meta["legacy"] = legacy
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    """The CLI flag of a field: ``--max-train-images`` for ``max_train_images``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def choices_of(f: dataclasses.Field) -> list | None:
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


def _check_number(name: str, value: Any, meta: Mapping) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise GenasError(f"{name} must be a finite number, got {value}")
    for key, ok, word in (("min", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                          ("max", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise GenasError(f"{name} must be {word} {bound}, got {value}")


def validate(cfg: C) -> C:
    """Check every field of ``cfg`` against its declared bounds and choices; returns ``cfg``."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or "help" not in f.metadata:
            continue
        name = flag_of(f)
        choices = choices_of(f)
        if choices is not None and value not in choices:
            raise GenasError(f"unknown {name} {value!r}; available: {', '.join(map(str, choices))}")
        _check_number(name, value, f.metadata)
    return cfg


def resolve(cls: type[C], preset: str | None, presets: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any],
            extra: Iterable[Mapping[str, Any]] = (), what: str = "preset") -> C:
    """``cls`` defaults, then the named preset's differences, then each mapping of ``extra`` (e.g.
    per-space differences), then every override that is not ``None``. Unknown keys are an error."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            raise GenasError(f"unknown {what} {preset!r}; available: {', '.join(presets)}")
        values.update(presets[preset])
    for more in extra:
        values.update(more)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, values)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
    """``cls(**values)``; keys the dataclass does not have are a one-line error."""
    if not isinstance(values, Mapping):
        raise GenasError(f"a {cls.__name__} must be a JSON object of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise GenasError(f"unknown {cls.__name__} key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def check_resume(saved: Mapping[str, Any], wanted: Mapping[str, Any], where: Any,
                 may_change: Iterable[str] = (), defaults: Mapping[str, Any] | None = None) -> None:
    """The one resume-compatibility check: ``where`` was made with ``saved``; refuse ``wanted`` if a
    key that changes what is computed differs, naming the first such key. ``defaults`` (see
    :func:`defaults`): a key missing from ``saved`` was added later, and the folder ran with its default."""
    skip = set(may_change)
    if not isinstance(saved, Mapping):
        raise GenasError(f"{where}: its recorded settings are not a JSON object; it was not made by genas")
    if defaults:
        saved = {**defaults, **saved}
    for key in sorted(set(saved) | set(wanted)):
        if key in skip or saved.get(key) == wanted.get(key):
            continue
        raise GenasError(f"{where} was started with {key}={saved.get(key)!r}; cannot resume with "
                         f"{key}={wanted.get(key)!r} (choose another output folder)")


def legacy(cls) -> dict[str, Any]:
    """The ``legacy`` values ``cls``'s fields declare: settings whose default changed after folders
    without them were written (e.g. search ``dedup``: such folders scored every string)."""
    return {f.name: f.metadata["legacy"] for f in dataclasses.fields(cls) if "legacy" in f.metadata}


def defaults(cls) -> dict[str, Any]:
    """What a folder made before a field existed ran with: the field's ``legacy`` value where it
    declares one, else its default. The one rule for every saved config with a missing key."""
    out = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
           for f in dataclasses.fields(cls)
           if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    return {**out, **legacy(cls)}


def may_change(cls) -> list[str]:
    """Fields declared ``resume_may_change`` (they do not change what is computed)."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("resume_may_change")]


__all__ = ["option", "flag_of", "choices_of", "validate", "resolve", "to_dict", "from_dict", "check_resume",
           "defaults", "legacy", "may_change"]
