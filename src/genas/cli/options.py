"""Command-line options generated from the config dataclasses, and what every command shares.

* :func:`add_config_options` turns the fields of a config dataclass into argparse options: flag,
  type (from the annotation), help, choices and bounds all come from the field's metadata
  (:func:`genas.options.option`). Every option defaults to ``None``, so presets and resumed runs can
  tell what the user passed; :func:`config_values` collects exactly those values.
* :func:`shared` is the parent parser of the options several commands have (``-o``, ``--resume``,
  ``--device``, ``--no-progress``).
* :func:`one_of` and :func:`comma_list` check names and comma-separated lists where they enter, so a
  bad value is one line ``genas: error: ...`` (exit code 2), like every other user error.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..options import choices_of, flag_of, resolve

# namespace key under which each parser records the fields it generated, per config (see config_values)
_FIELDS = "_config_fields"
_PLURAL = {int: "integers", float: "numbers", str: "names"}
LONG_CHOICES = 5  # longer choice lists are spelled out in the help instead of in the option's metavar


class _PassedNone:
    """What an option holds when the user passed a value whose meaning is ``None`` (``--val-images 0``:
    the whole half), so that it is not taken for an option left out."""

    def __repr__(self) -> str:
        return "None"


PASSED_NONE = _PassedNone()


class Parser(argparse.ArgumentParser):
    """argparse with genas's error style: one line ``genas: error: ...`` and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"genas: error: {message}\n")


def names(choices: Sequence | Callable[[], Sequence]) -> list:
    """The names of a registry (its bound ``names`` method), a preset table or a plain sequence."""
    return list(choices() if callable(choices) else choices)


def one_of(choices: Sequence | Callable[[], Sequence], what: str) -> Callable[[str], str]:
    """An argparse ``type`` that accepts only a name of ``choices`` (read when the value is checked)."""
    def check(text: str) -> str:
        available = names(choices)
        if text not in available:
            raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; available: {', '.join(map(str, available))}")
        return text

    check.__name__ = what
    return check


def comma_list(cast: Callable[[str], Any] = str, choices: Sequence | Callable[[], Sequence] | None = None,
               what: str = "name", container: Callable = list) -> Callable[[str], Any]:
    """An argparse ``type`` for ``a,b,c``: each item cast (and checked against ``choices``)."""
    def convert(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            values = [cast(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {_PLURAL.get(cast, 'values')}, "
                                             f"got {text!r}") from None
        if choices is not None:
            check = one_of(choices, what)
            for value in values:
                check(value)
        return container(values)

    convert.__name__ = "comma-separated list"
    return convert


def _what(f: dataclasses.Field) -> str:
    """The kind of name a field holds, for error messages: a registry's own word, else the field's name."""
    return getattr(getattr(f.metadata.get("choices"), "__self__", None), "what", None) or f.name.replace("_", " ")


def _parser_of(f: dataclasses.Field, annotation) -> Callable[[str], Any]:
    """The argparse ``type`` of a field: its ``parse``, else from the annotation (``X | None`` -> X; a
    union of several types -> the string, which the config's validate() converts; tuples and lists
    -> comma-separated items)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else str
    if f.metadata.get("parse") is not None:
        parse, kind = f.metadata["parse"], getattr(annotation, "__name__", "")

        def convert(text: str):
            try:
                value = parse(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid {kind} value: {text!r}") from None
            return PASSED_NONE if value is None else value

        return convert
    if typing.get_origin(annotation) in (tuple, list):
        origin = typing.get_origin(annotation)
        return comma_list(typing.get_args(annotation)[0], container=origin)
    return annotation


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(_show(v) for v in value)
    return str(value)


def _preset_note(name: str, default: Any, presets: Mapping[str, Mapping] | None,
                 space_presets: Mapping[str, Mapping[str, Mapping]] | None) -> str:
    """``default X``, or the value under each preset where they differ (``quick: 5, default: 30``),
    plus per-space differences (``darts quick: 3``). Nothing for a bool that every preset leaves off."""
    per_preset = {p: values.get(name, default) for p, values in (presets or {}).items()}
    if len({repr(v) for v in per_preset.values()}) > 1:
        note = [f"{p}: {_show(v)}" for p, v in per_preset.items() if v is not None]
    else:
        common = next(iter(per_preset.values()), default)
        note = [] if common is None or common is False else [f"default {_show(common)}"]
    spaces = [f"{space} {p}: {_show(values[name])}" for space, table in (space_presets or {}).items()
              for p, values in table.items() if name in values and values[name] != per_preset.get(p, default)]
    return "; ".join(part for part in (", ".join(note), ", ".join(spaces)) if part)


def _help(text: str, note: str) -> str:
    """The field's help, then ``note`` (its default) unless the help already says it."""
    return f"{text} ({note})" if note and "default" not in text else text


def config_fields(cls, only: Iterable[str] | None = None, include: Iterable[str] = (),
                  skip: Iterable[str] = ()) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are options: declared with help and ``cli`` (or named in ``include``)."""
    include, skip = set(include), set(skip)
    wanted = None if only is None else set(only)
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata and f.name not in skip
            and (f.metadata.get("cli", True) or f.name in include) and (wanted is None or f.name in wanted)]


def add_config_options(container, cls, *, only: Iterable[str] | None = None, include: Iterable[str] = (),
                       skip: Iterable[str] = (), negatable: Iterable[str] = (), presets: Mapping | None = None,
                       space_presets: Mapping | None = None, tag: str = "", key: str | None = None) -> list[str]:
    """Add an option for every option field of ``cls`` to ``container`` (a parser or argument group).

    ``only``/``include``/``skip`` choose the fields (``include``: fields declared ``cli=False``);
    bool fields are ``store_true``, or ``--x/--no-x`` if named in ``negatable``. The help shows the
    default, or the value under each of ``presets`` (and ``space_presets``) where they differ;
    ``tag`` is prepended to that note (e.g. the strategy a field belongs to). The fields are
    recorded under ``key`` (default: the class name) for :func:`config_values`.
    """
    hints = typing.get_type_hints(cls)
    negatable = set(negatable)
    added = []
    for f in config_fields(cls, only, include, skip):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        note = "; ".join(p for p in (tag, _preset_note(f.name, default, presets, space_presets)) if p)
        kwargs: dict[str, Any] = dict(dest=f.name, default=None, help=_help(f.metadata["help"], note))
        if hints[f.name] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if f.name in negatable else "store_true"
        else:
            kwargs.update(_value_kwargs(f, hints[f.name]))
        container.add_argument(flag_of(f), **kwargs)
        added.append(f.name)
    recorded = dict(container.get_default(_FIELDS) or {})
    recorded[key or cls.__name__] = recorded.get(key or cls.__name__, []) + added
    container.set_defaults(**{_FIELDS: recorded})
    return added


def _value_kwargs(f: dataclasses.Field, annotation) -> dict[str, Any]:
    """type / metavar / choices of an option that takes a value."""
    kwargs: dict[str, Any] = dict(type=_parser_of(f, annotation), metavar=flag_of(f)[2:].replace("-", "_").upper())
    choices = choices_of(f)
    if choices is not None:
        kwargs.update(choices=choices, type=one_of(f.metadata["choices"], _what(f)))
        if len(choices) <= LONG_CHOICES:
            del kwargs["metavar"]  # argparse shows {a,b,c}
    return kwargs


def config_values(args: argparse.Namespace, key) -> dict[str, Any]:
    """The values the user passed for the options generated from a config (``key``: the class or the
    key given to :func:`add_config_options`); options left out are not in the dict, and a passed
    value that means ``None`` is ``None``."""
    name = key if isinstance(key, str) else key.__name__
    fields = getattr(args, _FIELDS, {}).get(name, [])
    values = {n: getattr(args, n) for n in fields if getattr(args, n, None) is not None}
    return {n: None if v is PASSED_NONE else v for n, v in values.items()}


def resolve_passed(cls, preset: str | None, presets: Mapping[str, Mapping], values: Mapping[str, Any],
                   what: str = "preset"):
    """:func:`genas.options.resolve` of the passed ``values``, keeping those that mean ``None`` (which
    ``resolve`` reads as "not given")."""
    cfg = resolve(cls, preset, presets, values, what=what)
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if v is None})


def name_option(container, flag: str, choices: Sequence | Callable[[], Sequence], what: str, help: str,
                default: Any = None, **kwargs) -> None:
    """An option whose value is one of a registry's (or preset table's) names; a long list is spelled
    out in the help rather than in the metavar."""
    available = names(choices)
    if len(available) > LONG_CHOICES:
        kwargs.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
        help = f"{help}; one of {', '.join(map(str, available))}"
    container.add_argument(flag, type=one_of(choices, what), choices=available, default=default, help=help,
                           **kwargs)


def shared(output: str, *, output_required: bool = True, resume: str | None = None, device: str | None = None,
           progress: str | None = None, force: bool = False) -> argparse.ArgumentParser:
    """The parent parser of the options commands share: ``-o/--output`` (with ``output`` as its help),
    and, where given, ``--resume`` (its help), ``--device`` (its default: ``auto`` or ``cpu``) and
    ``--no-progress`` (its help), and ``--force`` for commands that write a fresh output."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-o", "--output", required=output_required, help=output)
    if resume is not None:
        p.add_argument("--resume", action="store_true", help=resume)
    if device is not None:
        where = "auto, cpu or cuda" if device == "auto" else "cpu or cuda"
        p.add_argument("--device", default=device, help=f"{where} (default {device})")
    if progress is not None:
        p.add_argument("--no-progress", action="store_true", help=progress)
    if force:
        p.add_argument("--force", action="store_true", help="replace an existing output (refused by default)")
    return p


def add_scoring_options(container, only: Iterable[str] | None = None, presets: bool = True) -> None:
    """The options of :class:`~genas.proxies.config.ScoringConfig` (``only`` some of them), and
    ``--flatness-preset``."""
    from ..proxies.config import FLATNESS_PRESETS, ScoringConfig

    add_config_options(container, ScoringConfig, only=only)
    if presets:
        name_option(container, "--flatness-preset", sorted(FLATNESS_PRESETS), "flatness preset",
                    "named flatness settings, overridden by explicit options (paper: GeNAS as published; official: "
                    "its code; calibrated: the best variant of results/flatness-calibration). Each differs from the "
                    "defaults in: " + _differences(ScoringConfig, FLATNESS_PRESETS))


def _differences(cls, presets: Mapping[str, Mapping]) -> str:
    """``name: --flag value, ...`` for every preset: what it changes from ``cls``'s defaults."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    parts = []
    for name, values in presets.items():
        diff = [f"{flag_of(fields[k])} {_show(v)}" if fields[k].metadata.get("cli", True)
                else f"{k.replace('_', ' ')} {_show(v)}"
                for k, v in values.items() if getattr(defaults, k) != v]
        parts.append(f"{name}: {', '.join(diff) or 'nothing'}")
    return "; ".join(parts)


def scoring_config(args: argparse.Namespace, seed: int = 0):
    """The validated ScoringConfig of the scoring options passed: defaults, then ``--flatness-preset``,
    then every option given (``--independent-noise``: no common random numbers)."""
    from ..proxies.config import FLATNESS_PRESETS, ScoringConfig

    values = config_values(args, ScoringConfig)
    if getattr(args, "independent_noise", False):
        values["common_noise"] = False
    return resolve_passed(ScoringConfig, getattr(args, "flatness_preset", None), FLATNESS_PRESETS,
                          {**values, "seed": seed}, what="--flatness-preset").validate()


def progress_of(args: argparse.Namespace) -> bool | None:
    """``False`` with ``--no-progress``, else ``None`` (bars where the output is a terminal)."""
    return False if args.no_progress else None


__all__ = ["PASSED_NONE", "Parser", "add_config_options", "add_scoring_options", "comma_list", "config_fields",
           "config_values", "name_option", "names", "one_of", "progress_of", "resolve_passed", "scoring_config",
           "shared"]
