"""Logging (one line per generation/epoch, RUN/genas.log), the environment record (env.json, the
resume warning) and config files (--config, --print-config) across the command line.

In-process through ``genas.cli.main`` on tiny synthetic runs; stdout and stderr are read together,
as ``> out.txt 2>&1`` would.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from genas import envinfo
from genas.cli import build_parser, main
from genas.io import load_json

from _tiny import train_tiny

pytestmark = pytest.mark.usefixtures("one_thread")

SEARCH = ["--population", "2", "--topk", "1", "--mutations", "1", "--crossovers", "1", "--generations", "3",
          "--val-images", "32", "--bn-images", "32", "--device", "cpu", "--no-progress"]
SUPERNET = ["--preset", "quick", "--dataset", "synthetic", "--channels", "4", "--cells-per-stage", "1", "--epochs",
            "2", "--max-train-images", "64", "--val-images", "32", "--batch-size", "32", "--device", "cpu",
            "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eco") / "sn"
    train_tiny(path, epochs=1)
    return path


@pytest.fixture(scope="module")
def searched(run) -> tuple[Path, list[str]]:
    """A search through the command line, and the lines it printed (stdout and stderr, in order)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main([str(a) for a in ["search", "--run", run, "--name", "gen", *SEARCH]])
    assert code == 0, buffer.getvalue()
    return run / "search-gen", buffer.getvalue().splitlines()


def _main(capsys, argv) -> tuple[int, list[str]]:
    """Exit code and the lines of stdout + stderr."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, (out.out + out.err).splitlines()


# --- logging ----------------------------------------------------------------------------------------

def test_search_no_progress_prints_one_line_per_generation(searched):
    folder, lines = searched
    result = load_json(folder / "result.json")
    generations = len(result["best_per_generation"])
    assert generations == 3
    gen_lines = [ln for ln in lines if " search generation " in ln]
    assert [ln.split(":")[0] for ln in gen_lines] == [f"evolution search generation {g}/3" for g in (1, 2, 3)]
    assert f"{result['evaluations']} evaluations" in gen_lines[-1]
    assert len(lines) == generations + 3, lines  # and the three result lines (best, result, report), nothing else
    log = (folder / "genas.log").read_text().splitlines()
    assert log[0].startswith("---- ") and "search --run" in log[0]
    assert sum(" search generation " in ln for ln in log) == 3
    assert (folder / "env.json").exists()


def test_log_level_warning_quiets_the_console_not_genas_log(tmp_path, capsys):
    code, lines = _main(capsys, ["train-supernet", *SUPERNET, "--log-level", "warning", "-o", tmp_path / "sn"])
    assert code == 0
    assert not any("supernet epoch" in ln for ln in lines), lines
    log = (tmp_path / "sn" / "genas.log").read_text()
    assert log.count("supernet epoch") == 2 and "INFO" in log


def test_epoch_lines_without_progress(tmp_path, capsys):
    code, lines = _main(capsys, ["train-supernet", *SUPERNET, "-o", tmp_path / "sn"])
    assert code == 0
    assert [ln.split(":")[0] for ln in lines if " epoch " in ln] == ["supernet epoch 1/2", "supernet epoch 2/2"]
    assert len(lines) == 3  # and the result line


def test_console_warning_format_and_stderr(capsys):
    import logging

    from genas import logs

    with logs.session("info"):
        logging.getLogger("genas").warning("genas: warning: odd %s", "thing")
        logging.getLogger("genas.sub").info("plain")
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == ["genas: warning: odd thing", "plain"]


def test_every_command_shares_the_options():
    def leaves(parser, name=""):
        sub = next((a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"), None)
        if sub is None:
            yield name, parser
            return
        for child_name, child in sub.choices.items():
            yield from leaves(child, f"{name} {child_name}".strip())

    found = dict(leaves(build_parser()))
    assert {"train-supernet", "search", "bench", "export", "correlate"} <= set(found)
    for name, p in found.items():
        flags = {s for a in p._actions for s in a.option_strings}
        assert {"--log-level", "--no-progress", "--config", "--print-config"} <= flags, name


# --- environment ------------------------------------------------------------------------------------

def test_env_json_records_the_software(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the commit is genas's own, whatever the current folder
    code, _ = _main(capsys, ["train-supernet", *SUPERNET, "-o", "sn"])
    assert code == 0
    env = load_json(tmp_path / "sn" / "env.json")
    import numpy
    import torch
    import torchvision

    assert env["torch"] == torch.__version__.split("+")[0] or env["torch"] == torch.__version__
    assert env["torchvision"].split("+")[0] == torchvision.__version__.split("+")[0]
    assert env["numpy"] == numpy.__version__
    assert env["device"] == "cpu" and env["threads"] == torch.get_num_threads() == 1
    assert env["argv"][:2] == ["genas", "train-supernet"] and env["python"]
    src = Path(envinfo.__file__).resolve().parent
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert env["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    status = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "--", "."],
                            capture_output=True, text=True)
    assert env["modified"] == (bool(status.stdout.strip()) if head.returncode == 0 else None)
    assert env["gpu"] is None  # a CPU run names no GPU


def test_git_commit_is_none_outside_a_checkout_of_genas(tmp_path):
    pkg = tmp_path / "site" / "genas"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    assert envinfo.git_commit(pkg) == (None, None)  # no git at all
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "theirs.txt").write_text("x\n")  # someone's repository with a commit, genas untracked in it
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "theirs.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    assert envinfo.git_commit(str(pkg)) == (None, None)


def test_resume_with_other_torch_warns_on_stderr(searched, capsys, monkeypatch):
    folder, _ = searched
    saved = load_json(folder / "env.json")
    assert envinfo.differences(saved, envinfo.collect()) == []  # the same software: nothing to warn about
    real = envinfo._version
    monkeypatch.setattr(envinfo, "_version", lambda p: "9.9.9" if p == "torch" else real(p))
    capsys.readouterr()
    assert main([str(a) for a in ["search", "--run", folder.parent, "--name", "gen", "--resume", *SEARCH]]) == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [ln for ln in err if ln.startswith("genas: warning: ")]
    assert len(warnings) == 1 and f"torch {saved['torch']} -> 9.9.9" in warnings[0], err
    assert "-> 9.9.9" in (folder / "genas.log").read_text()
    assert load_json(folder / "env.json") == saved  # the record of the start stays


def test_a_refused_start_leaves_no_env_or_log(run, tmp_path, capsys):
    code, lines = _main(capsys, ["train-supernet", *SUPERNET, "--lr", "0.01", "--lr-min", "0.1", "-o", tmp_path / "x"])
    assert code == 2
    assert not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    code, _ = _main(capsys, ["train-supernet", *SUPERNET, "--data-dir", tmp_path / "nothing", "--dataset",
                             "fashion-mnist", "-o", tmp_path / "y"])
    assert code == 2 and list((tmp_path / "y").iterdir()) == []
    other = tmp_path / "export"  # a folder another command wrote (an export): refused, and left exactly as it was
    other.mkdir()
    (other / "env.json").write_text('{"mine": 1}\n')
    (other / "genotype.json").write_text("{}\n")
    code, lines = _main(capsys, ["train-supernet", *SUPERNET, "-o", other])
    assert code == 2 and sorted(p.name for p in other.iterdir()) == ["env.json", "genotype.json"], lines
    assert (other / "env.json").read_text() == '{"mine": 1}\n'


# --- config files -----------------------------------------------------------------------------------

def test_config_from_a_run_differs_only_in_the_flags_given(run, tmp_path, capsys):
    code, lines = _main(capsys, ["train-supernet", "--config", run / "config.json", "--epochs", "2", "--no-progress",
                                 "-o", tmp_path / "copy"])
    assert code == 0, lines
    before, after = load_json(run / "config.json"), load_json(tmp_path / "copy" / "config.json")
    assert {k for k in before if before[k] != after[k]} == {"epochs"} and set(before) == set(after)


@pytest.mark.parametrize("argv", [
    ["train-supernet", "--preset", "quick", "--epochs", "3", "--dataset", "synthetic"],
    ["search", "--population", "10", "--mutations", "3", "--crossovers", "3", "--topk", "4", "--stds",
     "0.002,0.004", "--flatness-preset", "official", "--seed", "5"],
    ["retrain", "--genotype", "FLATNESS_CIFAR100", "--preset", "quick", "--epochs", "2"],
    ["bench", "--num-archs", "3"],
    ["run", "--preset", "quick", "--space", "darts"],
    ["run", "--preset", "quick"],
    ["score", "--bench", "b", "--metrics", "flatness,params", "--alpha", "auto"],
    ["correlate", "--truth", "t.jsonl", "--proxies", "a.jsonl", "b.jsonl", "--bootstrap", "0"],
], ids=lambda a: a[0])
def test_print_config_round_trips_through_config(argv, tmp_path, capsys):
    code, lines = _main(capsys, [*argv, "--print-config"])
    assert code == 0, lines
    printed = "\n".join(lines)
    cfg = json.loads(printed)
    (tmp_path / "c.json").write_text(printed)
    code, again = _main(capsys, [argv[0], "--config", tmp_path / "c.json", "--print-config"])
    assert code == 0, again
    assert json.loads("\n".join(again)) == cfg


def test_a_printed_run_config_runs_as_the_command_it_came_from(tmp_path, capsys):
    """Options left out stay out of the print (no null that would read back as "passed as none")."""
    code, lines = _main(capsys, ["run", "--preset", "quick", "--print-config"])
    assert code == 0 and "space" not in json.loads("\n".join(lines)), lines
    (tmp_path / "c.json").write_text("\n".join(lines))
    code, err = _main(capsys, ["run", "--config", tmp_path / "c.json", "--max-params", "10", "-o", tmp_path / "r"])
    assert code == 2 and "no nb201 architecture meets" in "\n".join(err), err  # the space resolved as without a file
    assert not (tmp_path / "r").exists()


def test_precedence_preset_file_flags(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "quick", "channels": 5, "max_train_images": None}))

    def printed(*extra):
        code, lines = _main(capsys, ["train-supernet", "--config", path, "--print-config", *extra])
        assert code == 0, lines
        return json.loads("\n".join(lines))

    cfg = printed()
    assert cfg["channels"] == 5 and cfg["epochs"] == 5 and cfg["max_train_images"] is None  # file over preset
    assert printed("--channels", "6")["channels"] == 6  # flags over the file
    assert printed("--preset", "default")["epochs"] == 30 and printed("--preset", "default")["channels"] == 5


def test_search_config_accepts_its_scoring_json(searched, capsys, tmp_path):
    folder, _ = searched
    scoring = load_json(folder / "scoring.json")
    path = tmp_path / "scoring.json"
    path.write_text(json.dumps({**scoring, "scoring": {**scoring["scoring"], "alpha": 0.5}}))
    code, lines = _main(capsys, ["search", "--config", path, *SEARCH, "--print-config"])
    assert code == 0, lines
    assert json.loads("\n".join(lines))["scoring"] == {**scoring["scoring"], "alpha": 0.5}


@pytest.mark.parametrize("content,needle", [
    ({"epochs": 2, "frobnicate": 1}, "unknown key(s) frobnicate"),
    ({"epochs": "many"}, "epochs"),
    ({"space": "nope"}, "nope"),
    ({"nesterov": "yes"}, "true or false"),
    ([1, 2], "object"),
    ("{oops", "not valid JSON"),
], ids=["unknown", "bad-int", "bad-choice", "bad-bool", "not-object", "not-json"])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, needle):
    path = tmp_path / "c.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    code, lines = _main(capsys, ["train-supernet", "--config", path, "-o", tmp_path / "out"])
    assert code == 2 and len(lines) == 1 and lines[0].startswith("genas: error: ") and needle in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_yaml_config(tmp_path, capsys, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("preset: quick\nepochs: 4\nstds: [0.001, 0.002]\n")
    pytest.importorskip("yaml")
    code, lines = _main(capsys, ["train-supernet", "--config", path, "--print-config"])
    assert code == 2 and "stds" in lines[0]  # not a train-supernet key
    path.write_text("preset: quick\nepochs: 4\n")
    code, lines = _main(capsys, ["train-supernet", "--config", path, "--print-config"])
    assert code == 0 and json.loads("\n".join(lines))["epochs"] == 4
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed
    code, lines = _main(capsys, ["train-supernet", "--config", path, "--print-config"])
    assert code == 2 and len(lines) == 1 and "PyYAML" in lines[0]


# --- help texts -------------------------------------------------------------------------------------

def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_run_help_states_the_measured_time(capsys):
    text = _help(capsys, "run")
    assert "3-5 minutes on 2 CPU cores" in text and "10 minutes" not in text


def test_flatness_preset_choices_come_from_the_table(capsys, monkeypatch):
    from genas.proxies import config

    monkeypatch.setitem(config.FLATNESS_PRESETS, "wide", dict(stds=(0.01, 0.02, 0.04)))
    text = _help(capsys, "search")
    assert all(f"{name}:" in text for name in config.FLATNESS_PRESETS)
    assert "wide: --stds 0.01,0.02,0.04" in text
    code, lines = _main(capsys, ["search", "--flatness-preset", "wide", "--print-config"])
    assert code == 0 and json.loads("\n".join(lines))["scoring"]["stds"] == [0.01, 0.02, 0.04]
