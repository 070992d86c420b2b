"""The fault corpus: bad inputs across every command, each ending in exit code 2 and one line
``genas: error: ...`` on stderr, with no traceback and every earlier file byte-identical.

Runs in-process through ``genas.cli.main`` (an unexpected exception fails the case), against one set
of tiny finished runs made once per module on the synthetic dataset.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from genas.cli import main

from _tiny import train_tiny
from conftest import NB201_DIR

NB201_TABLE = NB201_DIR / "nats_tss_test_acc_200ep.csv"

pytestmark = pytest.mark.usefixtures("one_thread")

G = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
SUPERNET = ["--preset", "quick", "--dataset", "synthetic", "--channels", "4", "--cells-per-stage", "1", "--epochs", "1",
            "--max-train-images", "64", "--val-images", "32", "--batch-size", "32", "--no-progress"]
SEARCH = ["--population", "2", "--topk", "1", "--mutations", "1", "--crossovers", "1", "--generations", "1",
          "--val-images", "32", "--bn-images", "32", "--no-progress"]
RETRAIN = ["--space", "nb201", "--genotype", G, "--dataset", "synthetic", "--channels", "4", "--cells-per-stage", "1",
           "--epochs", "1", "--max-train-images", "64", "--batch-size", "32", "--no-progress"]
BENCH = ["--dataset", "synthetic", "--num-archs", "2", "--channels", "4", "--epochs", "1", "--max-train-images", "64",
         "--val-images", "32", "--shifted-images", "32", "--no-progress"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Finished tiny runs and input files that the bad commands point at (they must stay untouched)."""
    w = tmp_path_factory.mktemp("world")
    train_tiny(w / "sn", epochs=1)
    assert main(["bench", "-o", str(w / "bench"), *BENCH]) == 0
    assert main(["search", "--run", str(w / "sn"), *SEARCH]) == 0
    (w / "file.txt").write_text("a regular file\n")
    (w / "table.csv").write_text(f"arch_str,acc\n{G},90.0\n")
    (w / "scores.jsonl").write_text(json.dumps({"genotype": G, "seed": 0, "flatness": 0.1}) + "\n")
    (w / "damaged.jsonl").write_text('{"genotype": "a", "x": 1}\n{"genotype": "b", "x"\n{"genotype": "c", "x": 3}\n')
    (w / "bad_genotypes.txt").write_text(f"{G}\n|nope~0|+|x|\n")
    (w / "empty.txt").write_text("# only a comment\n")
    (w / "not_result.json").write_text('{"a": 1}\n')
    (w / "not_json.json").write_text("{oops\n")
    (w / "latin1.txt").write_bytes(b"\xff\xfe\x00bad")
    (w / "grid.jsonl").write_text(json.dumps({"genotype": G, "seed": 0, "loss0": 0.5, "blocks": {}}) + "\n")
    (w / "full_scores.jsonl").write_text(json.dumps({"genotype": G, "seed": 0, "flatness": 0.1, "angle": 1.0,
                                                     "accuracy": 0.5}) + "\n")
    (w / "report").mkdir()
    (w / "report" / "correlation.md").write_text("an earlier report\n")
    assert main(["retrain", *RETRAIN, "-o", str(w / "rt")]) == 0
    assert main(["export", "--run", str(w / "rt"), "-o", str(w / "exp")]) == 0
    assert main(["score", "--bench", str(w / "bench"), "--metrics", "params", "-o", str(w / "zc.jsonl")]) == 0
    if NB201_TABLE.is_file():
        assert main(["search", "--oracle", str(NB201_TABLE), "--oracle-column", "CIFAR10TestAccuracy200Epochs",
                     "--population", "4", "--generations", "2", "--topk", "2", "--mutations", "2", "--crossovers",
                     "2", "-o", str(w / "oracle"), "--no-progress"]) == 0
    return w


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# (id, argv); {W} is the world folder, {T} a fresh path that does not exist yet
CASES = [
    # train-supernet: options
    ("sn-epochs-0", ["train-supernet", *SUPERNET, "--epochs", "0", "-o", "{T}"]),
    ("sn-epochs-neg", ["train-supernet", *SUPERNET, "--epochs", "-3", "-o", "{T}"]),
    ("sn-epochs-text", ["train-supernet", *SUPERNET, "--epochs", "abc", "-o", "{T}"]),
    ("sn-lr-0", ["train-supernet", *SUPERNET, "--lr", "0", "-o", "{T}"]),
    ("sn-lr-nan", ["train-supernet", *SUPERNET, "--lr", "nan", "-o", "{T}"]),
    ("sn-lr-inf", ["train-supernet", *SUPERNET, "--lr", "inf", "-o", "{T}"]),
    ("sn-lr-min-above-lr", ["train-supernet", *SUPERNET, "--lr", "0.01", "--lr-min", "0.1", "-o", "{T}"]),
    ("sn-momentum-neg", ["train-supernet", *SUPERNET, "--momentum", "-1", "-o", "{T}"]),
    ("sn-wd-neg", ["train-supernet", *SUPERNET, "--weight-decay", "-1", "-o", "{T}"]),
    ("sn-clip-neg", ["train-supernet", *SUPERNET, "--grad-clip", "-1", "-o", "{T}"]),
    ("sn-batch-0", ["train-supernet", *SUPERNET, "--batch-size", "0", "-o", "{T}"]),
    ("sn-val-fraction", ["train-supernet", *SUPERNET, "--val-fraction", "1.5", "-o", "{T}"]),
    ("sn-max-train-0", ["train-supernet", *SUPERNET, "--max-train-images", "0", "-o", "{T}"]),
    ("sn-space", ["train-supernet", *SUPERNET, "--space", "nope", "-o", "{T}"]),
    ("sn-dataset", ["train-supernet", *SUPERNET, "--dataset", "nope", "-o", "{T}"]),
    ("sn-preset", ["train-supernet", "--preset", "nope", "-o", "{T}"]),
    ("sn-device", ["train-supernet", *SUPERNET, "--device", "tpu", "-o", "{T}"]),
    ("sn-no-output", ["train-supernet", *SUPERNET]),
    ("sn-unknown-option", ["train-supernet", *SUPERNET, "--frobnicate", "-o", "{T}"]),
    # train-supernet: paths and state
    ("sn-output-is-file", ["train-supernet", *SUPERNET, "-o", "{W}/file.txt"]),
    ("sn-used-folder", ["train-supernet", *SUPERNET, "-o", "{W}/sn"]),
    ("sn-resume-nothing", ["train-supernet", *SUPERNET, "--resume", "-o", "{T}"]),
    ("sn-resume-other-config", ["train-supernet", *SUPERNET, "--epochs", "3", "--resume", "-o", "{W}/sn"]),
    ("sn-data-dir-missing", ["train-supernet", *SUPERNET, "--data-dir", "{W}/nothing", "-o", "{T}"]),
    ("sn-data-dir-file", ["train-supernet", *SUPERNET, "--dataset", "fashion-mnist", "--data-dir", "{W}/file.txt",
                          "-o", "{T}"]),
    # search
    ("se-metric", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--metric", "sharpness"]),
    ("se-strategy", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--strategy", "bayes"]),
    ("se-stds-order", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--stds", "0.003,0.001"]),
    ("se-stds-text", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--stds", "a,b"]),
    ("se-noise-mode", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--noise-mode", "relative"]),
    ("se-bn-mode", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--bn-mode", "fancy"]),
    ("se-population-0", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--population", "0"]),
    ("se-mutation-prob", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--mutation-prob", "2"]),
    ("se-alpha-neg", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--alpha", "-1"]),
    ("se-alpha-text", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--alpha", "xyz"]),
    ("se-val-images-neg", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--val-images", "-5"]),
    ("se-preset", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--flatness-preset", "nope"]),
    ("se-children-above-population", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--mutations", "5"]),
    ("se-run-missing", ["search", "--run", "{W}/nothing", *SEARCH]),
    ("se-run-not-supernet", ["search", "--run", "{W}/bench", *SEARCH]),
    ("se-run-and-oracle", ["search", "--run", "{W}/sn", "--oracle", "{W}/table.csv", "--oracle-column", "acc"]),
    ("se-neither", ["search", *SEARCH]),
    ("se-used-search", ["search", "--run", "{W}/sn", *SEARCH]),
    ("se-oracle-missing", ["search", "--oracle", "{W}/nothing.csv", "--oracle-column", "acc", "-o", "{T}"]),
    ("se-oracle-column", ["search", "--oracle", "{W}/table.csv", "--oracle-column", "tau", "-o", "{T}"]),
    ("se-oracle-not-csv", ["search", "--oracle", "{W}/latin1.txt", "--oracle-column", "acc", "-o", "{T}"]),
    ("se-oracle-space", ["search", "--oracle", "{W}/table.csv", "--oracle-column", "acc", "--space", "nope",
                         "-o", "{T}"]),
    # run
    ("run-preset", ["run", "--preset", "nope", "-o", "{T}"]),
    ("run-metric", ["run", "--metric", "nope", "-o", "{T}"]),
    ("run-space", ["run", "--space", "nope", "-o", "{T}"]),
    ("run-used-folder", ["run", "-o", "{W}/sn", "--dataset", "synthetic"]),
    # retrain
    ("rt-genotype", ["retrain", *RETRAIN[:2], "--genotype", "|nope~0|", *RETRAIN[4:], "-o", "{T}"]),
    ("rt-genotype-and-result", ["retrain", *RETRAIN, "--result", "{W}/sn/search-flatness/result.json", "-o", "{T}"]),
    ("rt-result-missing", ["retrain", "--result", "{W}/nothing.json", "-o", "{T}"]),
    ("rt-result-not-result", ["retrain", "--result", "{W}/not_result.json", "-o", "{T}"]),
    ("rt-result-not-json", ["retrain", "--result", "{W}/not_json.json", "-o", "{T}"]),
    ("rt-preset", ["retrain", *RETRAIN, "--preset", "nope", "-o", "{T}"]),
    ("rt-space", ["retrain", *RETRAIN, "--space", "nope", "-o", "{T}"]),
    ("rt-schedule", ["retrain", *RETRAIN, "--schedule", "exotic", "-o", "{T}"]),
    ("rt-label-smoothing", ["retrain", *RETRAIN, "--label-smoothing", "1.5", "-o", "{T}"]),
    ("rt-cutout-neg", ["retrain", *RETRAIN, "--cutout", "-1", "-o", "{T}"]),
    ("rt-nb201-auxiliary", ["retrain", *RETRAIN, "--auxiliary", "-o", "{T}"]),
    ("rt-nb201-drop-path", ["retrain", *RETRAIN, "--drop-path", "0.2", "-o", "{T}"]),
    ("rt-imagenet-nb201", ["retrain", *RETRAIN, "--preset", "imagenet", "-o", "{T}"]),
    ("rt-output-is-file", ["retrain", *RETRAIN, "-o", "{W}/file.txt"]),
    ("rt-output-used", ["retrain", *RETRAIN, "-o", "{W}/sn"]),
    ("rt-resume-nothing", ["retrain", "--resume", "-o", "{T}"]),
    # export
    ("ex-run-missing", ["export", "--run", "{W}/nothing", "-o", "{T}"]),
    ("ex-run-no-retrain", ["export", "--run", "{W}/sn", "-o", "{T}"]),
    # bench
    ("be-num-archs-0", ["bench", *BENCH, "--num-archs", "0", "-o", "{T}"]),
    ("be-genotypes-missing", ["bench", *BENCH, "--genotypes", "{W}/nothing.txt", "-o", "{T}"]),
    ("be-genotypes-bad", ["bench", *BENCH, "--genotypes", "{W}/bad_genotypes.txt", "-o", "{T}"]),
    ("be-genotypes-empty", ["bench", *BENCH, "--genotypes", "{W}/empty.txt", "-o", "{T}"]),
    ("be-genotypes-undecodable", ["bench", *BENCH, "--genotypes", "{W}/latin1.txt", "-o", "{T}"]),
    ("be-epochs-0", ["bench", *BENCH, "--epochs", "0", "-o", "{T}"]),
    ("be-used-without-resume", ["bench", *BENCH, "-o", "{W}/bench"]),
    ("be-other-recipe", ["bench", *BENCH, "--epochs", "2", "--resume", "-o", "{W}/bench"]),
    # score
    ("sc-bench-missing", ["score", "--bench", "{W}/nothing", "--metrics", "params", "-o", "{T}.jsonl"]),
    ("sc-metric", ["score", "--bench", "{W}/bench", "--metrics", "nope", "-o", "{T}.jsonl"]),
    ("sc-seeds", ["score", "--bench", "{W}/bench", "--metrics", "params", "--seeds", "a,b", "-o", "{T}.jsonl"]),
    ("sc-flatness-without-run", ["score", "--bench", "{W}/bench", "--metrics", "flatness", "-o", "{T}.jsonl"]),
    ("sc-run-missing", ["score", "--bench", "{W}/bench", "--run", "{W}/nothing", "--metrics", "flatness",
                        "-o", "{T}.jsonl"]),
    # noise-grid, calibrate, combine, outcome, correlate
    ("ng-grid", ["noise-grid", "--bench", "{W}/bench", "--run", "{W}/sn", "--grid", "nonsense", "-o", "{T}.jsonl"]),
    ("ng-run-missing", ["noise-grid", "--bench", "{W}/bench", "--run", "{W}/nothing", "-o", "{T}.jsonl"]),
    ("ca-grid-missing", ["calibrate", "--grid", "{W}/nothing.jsonl", "--truth", "{W}/bench/results.jsonl",
                         "-o", "{T}"]),
    ("ca-truth-missing", ["calibrate", "--grid", "{W}/grid.jsonl", "--truth", "{W}/nothing.jsonl", "-o", "{T}"]),
    ("ca-grid-damaged", ["calibrate", "--grid", "{W}/damaged.jsonl", "--truth", "{W}/bench/results.jsonl",
                         "-o", "{T}"]),
    ("ca-splits-neg", ["calibrate", "--grid", "{W}/grid.jsonl", "--truth", "{W}/bench/results.jsonl",
                       "--splits", "-1", "-o", "{T}"]),
    ("co-scores-missing", ["combine", "--scores", "{W}/nothing.jsonl", "-o", "{T}.jsonl"]),
    ("co-scores-lacking", ["combine", "--scores", "{W}/scores.jsonl", "-o", "{T}.jsonl"]),
    ("co-output-is-input", ["combine", "--scores", "{W}/scores.jsonl", "-o", "{W}/scores.jsonl"]),
    ("ou-searches-missing", ["outcome", "--searches", "{W}/nothing", "--truth", "{W}/bench/results.jsonl",
                             "-o", "{T}"]),
    ("cr-truth-missing", ["correlate", "--truth", "{W}/nothing.jsonl", "--proxies", "{W}/scores.jsonl", "-o", "{T}"]),
    ("cr-truth-damaged", ["correlate", "--truth", "{W}/damaged.jsonl", "--proxies", "{W}/scores.jsonl", "-o", "{T}"]),
    ("cr-negate-unknown", ["correlate", "--truth", "{W}/bench/results.jsonl", "--proxies", "{W}/scores.jsonl",
                           "--negate", "nope", "-o", "{T}"]),
    ("cr-top-fraction", ["correlate", "--truth", "{W}/bench/results.jsonl", "--proxies", "{W}/scores.jsonl",
                         "--top-fraction", "0", "-o", "{T}"]),
    ("cr-bootstrap-neg", ["correlate", "--truth", "{W}/bench/results.jsonl", "--proxies", "{W}/scores.jsonl",
                          "--bootstrap", "-1", "-o", "{T}"]),
    ("cli-unknown-command", ["frobnicate"]),
    # the common device check, on every command that has --device
    ("se-device", ["search", "--run", "{W}/sn", "--name", "x", *SEARCH, "--device", "tpu"]),
    ("rt-device", ["retrain", *RETRAIN, "--device", "tpu", "-o", "{T}"]),
    ("be-device", ["bench", *BENCH, "--device", "tpu", "-o", "{T}"]),
    ("sc-device", ["score", "--bench", "{W}/bench", "--metrics", "params", "--device", "tpu", "-o", "{T}.jsonl"]),
    ("run-device", ["run", "--device", "tpu", "-o", "{T}"]),
    # outputs that are regular files
    ("be-output-is-file", ["bench", *BENCH, "-o", "{W}/file.txt"]),
    ("se-oracle-output-is-file", ["search", "--oracle", "{W}/table.csv", "--oracle-column", "acc", "-o", "{W}/file.txt"]),
    ("cr-output-is-file", ["correlate", "--truth", "{W}/bench/results.jsonl", "--proxies", "{W}/zc.jsonl",
                           "-o", "{W}/file.txt"]),
    ("run-output-is-file", ["run", "-o", "{W}/file.txt"]),
    # outputs that would replace earlier results
    ("ex-existing-export", ["export", "--run", "{W}/rt", "-o", "{W}/exp"]),
    ("co-output-is-its-input", ["combine", "--scores", "{W}/full_scores.jsonl", "-o", "{W}/full_scores.jsonl"]),
    ("co-output-exists", ["combine", "--scores", "{W}/full_scores.jsonl", "-o", "{W}/scores.jsonl"]),
    ("cr-output-exists", ["correlate", "--truth", "{W}/bench/results.jsonl", "--proxies", "{W}/zc.jsonl",
                          "-o", "{W}/report"]),
    ("ou-output-exists", ["outcome", "--searches", "{W}/sn/search-flatness", "--truth", "{W}/bench/results.jsonl",
                          "-o", "{W}/report"]),
    ("ca-output-exists", ["calibrate", "--grid", "{W}/grid.jsonl", "--truth", "{W}/bench/results.jsonl",
                          "-o", "{W}/report"]),
    ("sc-added-metric-would-be-skipped", ["score", "--bench", "{W}/bench", "--metrics", "params,flops",
                                          "-o", "{W}/zc.jsonl"]),
    ("rt-resume-other-recipe", ["retrain", *RETRAIN[:-3], "--epochs", "3", "--no-progress", "--resume", "-o", "{W}/rt"]),
]
ORACLE_CASES = [
    ("se-oracle-resume-other-column", ["search", "--oracle", str(NB201_TABLE), "--oracle-column",
                                       "CIFAR100TestAccuracy200Epochs", "--population", "4", "--generations", "2",
                                       "--topk", "2", "--mutations", "2", "--crossovers", "2", "-o", "{W}/oracle",
                                       "--resume", "--no-progress"]),
    ("se-oracle-fresh-into-used", ["search", "--oracle", str(NB201_TABLE), "--oracle-column",
                                   "CIFAR10TestAccuracy200Epochs", "-o", "{W}/oracle"]),
]
if NB201_TABLE.is_file():
    CASES += ORACLE_CASES


@pytest.mark.parametrize("argv", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(world, tmp_path, capsys, argv):
    before = files_of(world)
    args = [a.replace("{W}", str(world)).replace("{T}", str(tmp_path / "out")) for a in argv]
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse errors end through SystemExit
        rc = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, f"exit code {rc}, stderr: {err[-1500:]}"
    assert len(lines) == 1 and lines[0].startswith("genas: error: "), err[-1500:]
    assert "Traceback" not in err
    assert files_of(world) == before, "an earlier file changed"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "a failed command wrote files"


def test_the_corpus_is_large():
    assert len(CASES) >= 60


def _write(rel: str, data: bytes):
    return lambda root: (root / rel).write_bytes(data)


def _cut_line(rel: str, index: int):
    def damage(root):
        path = root / rel
        lines = path.read_text().splitlines()
        lines[index] = lines[index][: len(lines[index]) // 2]
        path.write_text("\n".join(lines) + "\n")
    return damage


# (id, folder of the world to copy, damage, argv with {C} = the damaged copy)
STATE_CASES = [
    ("sn-config-not-object", "sn", _write("config.json", b"[1, 2]\n"),
     ["train-supernet", *SUPERNET, "--resume", "-o", "{C}"]),
    ("sn-config-unknown-key", "sn", _write("config.json", b'{"epochs": 1, "frobnicate": 2}\n'),
     ["train-supernet", *SUPERNET, "--resume", "-o", "{C}"]),
    ("sn-config-not-json", "sn", _write("config.json", b"{oops"),
     ["train-supernet", *SUPERNET, "--resume", "-o", "{C}"]),
    ("sn-data-json-not-json", "sn", _write("data.json", b"\xff\xfe"), ["search", "--run", "{C}", "--name", "y", *SEARCH]),
    ("sn-final-garbage", "sn", _write("final.pt", b"garbage"), ["search", "--run", "{C}", "--name", "y", *SEARCH]),
    ("sn-final-empty", "sn", _write("final.pt", b""), ["search", "--run", "{C}", "--name", "y", *SEARCH]),
    ("sn-init-garbage", "sn", _write("init.pt", b"garbage"),
     ["search", "--run", "{C}", "--name", "y", *SEARCH, "--metric", "angle"]),
    ("se-candidates-damaged", "sn", _cut_line("search-flatness/candidates.jsonl", 0),
     ["search", "--run", "{C}", *SEARCH, "--resume"]),
    ("se-state-not-json", "sn", _write("search-flatness/state.json", b"{oops"),
     ["search", "--run", "{C}", *SEARCH, "--resume"]),
    ("se-scoring-not-json", "sn", _write("search-flatness/scoring.json", b"{oops"),
     ["search", "--run", "{C}", *SEARCH, "--resume"]),
    ("rt-last-garbage", "rt", _write("last.pt", b"garbage"), ["export", "--run", "{C}", "-o", "{T}"]),
    ("rt-result-not-json", "rt", _write("result.json", b"{oops"), ["export", "--run", "{C}", "-o", "{T}"]),
    ("be-results-damaged", "bench", _cut_line("results.jsonl", 0), ["bench", *BENCH, "--resume", "-o", "{C}"]),
    ("be-config-not-json", "bench", _write("bench.json", b"{oops"), ["bench", *BENCH, "--resume", "-o", "{C}"]),
]


@pytest.mark.parametrize("source,damage,argv", [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES])
def test_damaged_state_files_are_one_line_and_left_as_they_are(world, tmp_path, capsys, source, damage, argv):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(world / source, copy)
    damage(copy)
    before = files_of(copy)
    args = [a.replace("{C}", str(copy)).replace("{T}", str(tmp_path / "out")) for a in argv]
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, f"exit code {rc}, stderr: {err[-1500:]}"
    assert len(lines) == 1 and lines[0].startswith("genas: error: ") and "Traceback" not in err, err[-1500:]
    assert files_of(copy) == before, "the damaged folder was changed"


@pytest.mark.parametrize("failure", ["disk-full", "permission-denied"])
def test_an_unwritable_output_is_one_line(tmp_path, capsys, monkeypatch, failure):
    """A full disk or an unwritable folder (simulated: the tests run as root, which ignores
    permissions) ends in one line naming the path and the reason, whatever write hits it."""
    import errno
    import os

    import genas.io

    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    if failure == "disk-full":
        monkeypatch.setattr(genas.io.os, "fsync", full_disk)
    else:
        monkeypatch.setattr("genas.run_folder.os.open", denied)
    capsys.readouterr()
    rc = main(["train-supernet", *SUPERNET, "-o", str(tmp_path / "run")])
    monkeypatch.setattr(genas.io.os, "fsync", real_fsync)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("genas: error: ")
    assert str(tmp_path / "run") in err[0]
    assert ("No space left" in err[0]) if failure == "disk-full" else ("Permission denied" in err[0])
