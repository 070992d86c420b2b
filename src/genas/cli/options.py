"""Command-line options generated from the config dataclasses, and what every command shares.

* :func:`add_config_options` turns the fields of a config dataclass into argparse options: flag,
  type (from the annotation), help, choices and bounds all come from the field's metadata
  (:func:`genas.options.option`). Every option defaults to ``None``, so presets and resumed runs can
  tell what the user passed; :func:`config_values` collects exactly those values.
* :func:`shared` is the parent parser of the options commands share: ``-o``, ``--resume``,
  ``--device``, ``--no-progress`` where they apply; :func:`add_common` gives every command
  ``--no-progress``, ``--log-level``, ``--config`` and ``--print-config``.
* :func:`load_config_file` / :func:`apply_config_file` read ``--config FILE`` (JSON; YAML with
  PyYAML) generically for every command: its keys are the command's option names (``dest``s) and
  its config fields, the same keys as the run folder's ``config.json`` / ``scoring.json``; a file
  value becomes the option's default, so the precedence is preset < file < flags.
  :func:`resolved_config` is what ``--print-config`` prints (and a file round-trips through).
* :func:`one_of` and :func:`comma_list` check names and comma-separated lists where they enter, so a
  bad value is one line ``genas: error: ...`` (exit code 2), like every other user error.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import GenasError
from ..logs import LEVELS
from ..options import choices_of, flag_of, resolve, to_dict

# namespace key under which each parser records the fields it generated, per config (see config_values)
_FIELDS = "_config_fields"
_CLASSES = "_config_classes"  # config key -> its dataclasses (their non-option fields may come from a file)
_SECTIONS = "_config_sections"  # file section (e.g. "scoring" of scoring.json) -> config key
_EXTRA = "_config_extra"  # config key -> non-option field values read from --config
# options that say how to run a command, not what it computes: not config keys
INVOCATION = frozenset({"output", "resume", "force", "device", "no_progress", "log_level", "config", "print_config",
                        "help", "version", "func", "command"})
# keys genas records in a run folder's config files that are facts, not settings: ignored in --config
RECORDED = {"supernet": "scoring.json: the SHA-256 of the supernet a search scored on"}
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
    name = key or cls.__name__
    recorded = dict(container.get_default(_FIELDS) or {})
    recorded[name] = recorded.get(name, []) + added
    classes = dict(container.get_default(_CLASSES) or {})
    classes[name] = list(dict.fromkeys([*classes.get(name, []), cls]))
    container.set_defaults(**{_FIELDS: recorded, _CLASSES: classes})
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
    extra = dict((getattr(args, _EXTRA, None) or {}).get(name, {}))  # fields without an option, from --config
    return {**extra, **{n: None if v is PASSED_NONE else v for n, v in values.items()}}


def resumed_config(cls, saved: Mapping[str, Any], passed: Mapping[str, Any], where, preset: str | None = None):
    """The config of a folder being resumed: its stored ``saved`` settings updated by the options
    ``passed`` (and ``preset``, when given), which may not change what is computed; otherwise one
    line naming the first differing key. Lists and tuples compare equal (JSON has no tuples)."""
    from ..options import check_resume, from_dict, may_change

    plain = lambda d: {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    saved, wanted = plain(saved), plain({**saved, **passed})
    if preset is not None:
        wanted["preset"] = preset
    check_resume(saved, wanted, where, may_change(cls))
    return from_dict(cls, wanted)


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
    """The parent parser of the options commands share: ``-o/--output`` (with ``output`` as its help;
    ``output_required`` is checked by the dispatcher, so that ``--print-config`` needs no ``-o``),
    and, where given, ``--resume`` (its help), ``--device`` (its default: ``auto`` or ``cpu``) and
    ``--no-progress`` (its help) and ``--force`` for commands that write a fresh output (see also
    :func:`add_common`)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-o", "--output", help=output + (" (required)" if output_required else ""))
    p.set_defaults(_output_required=output_required, _fresh_output=force)
    if resume is not None:
        p.add_argument("--resume", action="store_true", help=resume)
    if device is not None:
        where = "auto, cpu or cuda" if device == "auto" else "cpu or cuda"
        p.add_argument("--device", default=device, help=f"{where} (default {device})")
    if progress is not None:
        p.add_argument("--no-progress", action="store_true", help=progress + " (log lines stay)")
    if force:
        p.add_argument("--force", action="store_true", help="replace an existing output (refused by default)")
    return p


def add_common(parser: argparse.ArgumentParser) -> None:
    """The options of every command (added by the dispatcher to each, so a new command has them
    too): ``--no-progress`` (where :func:`shared` did not add it with its own help),
    ``--log-level``, ``--config`` and ``--print-config``. A command with subcommands of its own
    (``genas detect train``) gives them to each subcommand."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if nested:
        for sub in {id(p): p for p in nested[0].choices.values()}.values():  # (aliases: one parser)
            add_common(sub)
        return
    have = parser._option_string_actions
    if "--print-config" in have:
        return  # already given them
    group = parser.add_argument_group("every command")
    if "--no-progress" not in have:
        group.add_argument("--no-progress", action="store_true",
                           help="hide progress bars (log lines stay; bars show only on a terminal anyway)")
    group.add_argument("--log-level", choices=LEVELS, default="info", type=str.lower,
                       help="console messages on stderr from this level on: debug, info (one line per epoch or "
                            "search generation), warning, error (default info); RUN/genas.log always gets info "
                            "and above")
    group.add_argument("--config", metavar="FILE",
                       help="read settings from a JSON (or, with PyYAML, YAML) file: the keys that --print-config "
                            "prints, or a run folder's config.json / scoring.json; precedence: preset < file < "
                            "options given here")
    group.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")


def add_scoring_options(container, only: Iterable[str] | None = None, presets: bool = True) -> None:
    """The options of :class:`~genas.proxies.config.ScoringConfig` (``only`` some of them), and
    ``--flatness-preset``."""
    from ..proxies.config import FLATNESS_PRESETS, ScoringConfig

    add_config_options(container, ScoringConfig, only=only, negatable=("noise_antithetic",))
    container.set_defaults(**{_SECTIONS: {**(container.get_default(_SECTIONS) or {}), "scoring": "ScoringConfig"}})
    if presets:
        notes = "; ".join(f"{n}: {FLATNESS_NOTES[n]}" for n in FLATNESS_PRESETS if n in FLATNESS_NOTES)
        name_option(container, "--flatness-preset", list(FLATNESS_PRESETS), "flatness preset",
                    "named flatness settings, overridden by explicit options" + (f" ({notes})" if notes else "")
                    + ". Each differs from the defaults in: " + _differences(ScoringConfig, FLATNESS_PRESETS))


# what the flatness presets stand for (the choices and their values come from FLATNESS_PRESETS itself)
FLATNESS_NOTES = {"paper": "GeNAS as published", "official": "its code",
                  "calibrated": "the best variant of results/flatness-calibration"}


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


# --- config files ----------------------------------------------------------------------------------

def load_config_file(path: str | Path) -> dict:
    """The settings of ``--config FILE``: a JSON object, or YAML (``.yaml``/``.yml``) with PyYAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GenasError(f"cannot read --config {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise GenasError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml), or give a "
                             f".json file") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise GenasError(f"--config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        import json

        try:
            values = json.loads(text)
        except ValueError as exc:
            raise GenasError(f"--config {path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise GenasError(f"--config {path} must hold an object of settings (key: value), got {type(values).__name__}")
    return values


def _options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """dest -> action of the options a config file may set (not the invocation ones)."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest not in INVOCATION}


def _as_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _option_value(parser: argparse.ArgumentParser, action: argparse.Action, key: str, value: Any, where: str):
    """A file value as the option would hold it from the command line (same conversion, same checks)."""
    if action.nargs == 0:  # store_true / --x/--no-x
        if not isinstance(value, bool):
            raise GenasError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    try:
        if isinstance(value, (list, tuple)):
            if action.nargs in ("+", "*"):
                return [parser._get_value(action, _as_text(v)) for v in value]
            if getattr(action.type, "__name__", "") != "comma-separated list":
                return list(value)  # e.g. bench's genotypes: the command reads a list as it is
            value = ",".join(_as_text(v) for v in value)
        if isinstance(value, dict):
            raise GenasError(f"{where}: {key} must be a single value, not an object")
        converted = parser._get_value(action, _as_text(value))
        if action.choices is not None and converted not in action.choices:
            raise GenasError(f"{where}: unknown {key} {converted!r}; available: "
                             f"{', '.join(map(str, action.choices))}")
        return [converted] if action.nargs in ("+", "*") else converted
    except argparse.ArgumentError as exc:
        raise GenasError(f"{where}: {key}: {exc.message}") from None


def _coerce(annotation, value):
    """A JSON value as the field holds it (JSON has no tuples)."""
    if isinstance(value, list) and (annotation is tuple or typing.get_origin(annotation) is tuple
                                    or any(typing.get_origin(a) is tuple for a in typing.get_args(annotation))):
        return tuple(value)
    return value


def apply_config_file(parser: argparse.ArgumentParser, path: str | Path) -> dict[str, dict[str, Any]]:
    """Make the settings of ``path`` the defaults of ``parser`` (one command's parser), so options
    given on the command line override them; returns the values of config fields that have no
    option (config key -> {field: value}), for :func:`config_values`.

    A key is an option's name (``epochs``, ``metric``, ``stds``: the ``dest``), a field of one of the
    command's configs that has no option (e.g. a retrain recipe's ``momentum``), a section of a
    run folder's file holding such keys (``scoring`` of ``scoring.json``), or a recorded fact
    (:data:`RECORDED`, ignored). Anything else is a one-line error; so is a value the option would
    refuse. ``null`` for a config option means ``None`` (e.g. no image limit), not "unset".
    """
    where = f"--config {path}"
    values = load_config_file(path)
    options = _options_of(parser)
    fields_of = parser.get_default(_FIELDS) or {}
    classes = parser.get_default(_CLASSES) or {}
    sections = parser.get_default(_SECTIONS) or {}
    config_dests = {n for names_ in fields_of.values() for n in names_}
    defaults: dict[str, Any] = {}
    extra: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []

    def fields_without_option(key: str) -> dict[str, tuple[str, Any]]:
        """field name -> (config key, annotation) of the configs' fields that are no option."""
        out = {}
        for name_, clss in classes.items():
            if key is not None and name_ != key:
                continue
            for cls in clss:
                hints = typing.get_type_hints(cls)
                for f in dataclasses.fields(cls):
                    if f.name not in options:
                        out.setdefault(f.name, (name_, hints[f.name]))
        return out

    def put(key: str, value: Any, section: str | None) -> None:
        label = f"{section}.{key}" if section else key
        if key in options:
            action = options[key]
            if value is None:
                if key in config_dests:
                    defaults[key] = PASSED_NONE
                return  # null for a plain option: its default
            defaults[key] = _option_value(parser, action, label, value, where)
            return
        loose = fields_without_option(sections.get(section) if section else None)
        if key in loose:
            cfg_key, annotation = loose[key]
            extra.setdefault(cfg_key, {})[key] = _coerce(annotation, value)
        elif section is None and key in RECORDED:
            return
        else:
            unknown.append(label)

    for key, value in values.items():
        if key in sections and isinstance(value, dict):
            for inner, v in value.items():
                put(inner, v, key)
        else:
            put(key, value, None)
    if unknown:
        known = sorted(set(options) | set(fields_without_option(None)) | set(sections))
        raise GenasError(f"{where}: unknown key(s) {', '.join(unknown)} for `genas {parser.prog.split()[-1]}`; "
                         f"known: {', '.join(known)}")
    for key in defaults:
        options[key].required = False  # a required option the file supplies (e.g. --truth of correlate)
    parser.set_defaults(**defaults)
    return extra


def resolved_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """What ``--print-config`` prints: the command's own resolver (``config_of``: the resolved
    config dataclasses, e.g. a supernet run's config.json), else every option's value."""
    resolver = getattr(args, "config_of", None)
    if resolver is not None:
        return resolver(args)
    return plain_values(parser, args)


def plain_values(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 skip: Iterable[str] = ()) -> dict[str, Any]:
    """dest -> value of the options a config file may set. A config option left out is left out (its
    preset or default applies when the file is read back); one passed as "none" is ``None`` (read
    back as passed), so that a printed config reproduces the command."""
    skip = set(skip)
    config_dests = {n for names_ in getattr(args, _FIELDS, {}).values() for n in names_}
    out = {}
    for dest in _options_of(parser):
        value = getattr(args, dest, None)
        if dest in skip or (value is None and dest in config_dests):
            continue
        out[dest] = None if value is PASSED_NONE else (list(value) if isinstance(value, tuple) else value)
    return out


def config_dicts(*configs) -> dict[str, Any]:
    """Merged ``to_dict`` of config dataclasses (for a resolver)."""
    out: dict[str, Any] = {}
    for cfg in configs:
        out.update(to_dict(cfg))
    return out


__all__ = ["INVOCATION", "PASSED_NONE", "Parser", "RECORDED", "add_common", "add_config_options", "add_scoring_options",
           "apply_config_file", "comma_list", "config_dicts", "config_fields", "config_values",
           "load_config_file", "name_option", "names", "one_of", "plain_values", "progress_of", "resolve_passed",
           "resolved_config", "scoring_config", "shared"]
