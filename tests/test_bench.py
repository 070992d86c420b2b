import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from genas.groundtruth import BenchConfig, run_bench, sample_archs
from genas.groundtruth import runner
from genas.groundtruth.corruptions import corrupt, shifted_sets
from genas.data import load_data
from genas.errors import GenasError
from genas.spaces import get_space

TINY = dict(dataset="synthetic", channels=4, cells_per_stage=1, epochs=1, batch_size=32, max_train_images=64,
            val_images=64, shifted_images=64)


def rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_sample_is_prefix_stable_and_distinct():
    space = get_space("nb201")
    a, b = sample_archs(space, 20, 0), sample_archs(space, 50, 0)
    assert b[:20] == a and len(set(b)) == 50
    assert sample_archs(space, 20, 1) != a


def test_rows_resume_and_extend(tmp_path):
    out = tmp_path / "b"
    run_bench(out, BenchConfig(num_archs=2, **TINY), progress=False)
    first = (out / "results.jsonl").read_text()
    r = rows(out)
    assert len(r) == 2 and not all(row["disconnected"] for row in r)
    for row in r:
        assert {"genotype", "test_accuracy", "val_accuracy", "test_loss", "shifted_accuracy", "shifted", "params",
                "macs", "train_seconds"} <= set(row)
        assert len(row["shifted"]) == 6
        assert row["shifted_accuracy"] == pytest.approx(sum(row["shifted"].values()) / 6)
        if not row["disconnected"]:  # the training side of the generalization gap
            assert 0 <= row["train_accuracy"] <= 1 and 0 <= row["train_eval_accuracy"] <= 1
            assert row["train_loss"] > 0 and row["train_eval_loss"] > 0
    with pytest.raises(GenasError, match="--resume"):
        run_bench(out, BenchConfig(num_archs=3, **TINY), progress=False)
    with pytest.raises(GenasError, match="recipe"):
        run_bench(out, BenchConfig(num_archs=3, **{**TINY, "epochs": 2}), resume=True, progress=False)
    run_bench(out, BenchConfig(num_archs=3, **TINY), resume=True, progress=False)
    assert (out / "results.jsonl").read_text().startswith(first)
    assert len(rows(out)) == 3 and len({x["genotype"] for x in rows(out)}) == 3


def test_disconnected_cells_are_not_trained(tmp_path, monkeypatch):
    space = get_space("nb201")
    cells = [(3, 0, 0, 0, 0, 0), (0, 3, 3, 0, 0, 0)]
    assert not any(space.is_connected(c) for c in cells)
    monkeypatch.setattr(runner, "sample_archs", lambda space, n, seed: cells[:n])
    run_bench(tmp_path / "d", BenchConfig(num_archs=2, **TINY), progress=False)
    r = rows(tmp_path / "d")
    assert all(x["disconnected"] and x["train_seconds"] == 0.0 and x["test_accuracy"] == 0.1 for x in r)


def test_claims_prevent_duplicates_and_stale_claims_are_taken_over(tmp_path):
    claims = tmp_path / "claims"
    claims.mkdir()
    assert runner._claim(claims, 0)
    assert not runner._claim(claims, 0)  # held by a live process (us)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (claims / "1.claim").write_text(f"{socket.gethostname()} {dead.pid}")
    assert runner._claim(claims, 1)
    # claims are named by genotype, not list position: another list's first architecture is not blocked
    a, b = runner.claim_key("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"), runner.claim_key("|x~0|")
    assert a != b and len(a) == 16 and runner._claim(claims, a) and runner._claim(claims, b)
    assert runner.claim_key("|x~0|") == b


@pytest.mark.slow
def test_two_workers_share_without_duplicates(tmp_path):
    out = tmp_path / "w"
    run_bench(out, BenchConfig(num_archs=4, **TINY), workers=2, progress=False)
    r = rows(out)
    assert len(r) == 4 and len({x["genotype"] for x in r}) == 4
    assert not any((out / "claims").iterdir())


def test_corruptions_are_seeded_and_change_images():
    data = load_data("synthetic")
    a = shifted_sets(data.test, 32, seed=0)
    b = shifted_sets(data.test, 32, seed=0)
    assert list(a) == ["gaussian_noise@0.1", "gaussian_noise@0.2", "gaussian_blur@0.8", "gaussian_blur@1.2",
                       "contrast@0.7", "contrast@0.5"]
    for k in a:
        assert torch.equal(a[k].x, b[k].x) and a[k].x.dtype == torch.uint8 and a[k].x.shape == (32, 1, 16, 16)
        assert not torch.equal(a[k].x, data.test.x[:32])
    x = data.test.x[:8]
    assert corrupt(x, "contrast", 1.0).eq(x).all()
    assert corrupt(x, "gaussian_noise", 0.2, seed=1).ne(corrupt(x, "gaussian_noise", 0.2, seed=2)).any()
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", 1.0)


def test_explicit_genotypes_are_trained_and_a_longer_list_extends_them(tmp_path, capsys):
    from genas.cli import main

    space = get_space("nb201")
    wanted = [space.format(g) for g in sample_archs(space, 3, 5)]
    out, listing = tmp_path / "w", tmp_path / "winners.txt"
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    listing.write_text(f"# search winners\n{wanted[0]}\n\n{wanted[1]}  # seed 1\n{wanted[0]}\n")
    assert main(["bench", "-o", str(out), "--genotypes", str(listing), "--no-progress", *opts]) == 0
    assert [r["genotype"] for r in rows(out)] == wanted[:2]
    listing.write_text("\n".join(wanted) + "\n")
    assert main(["bench", "-o", str(out), "--genotypes", str(listing), "--resume", "--no-progress", *opts]) == 0
    assert [r["genotype"] for r in rows(out)] == wanted
    listing.write_text(wanted[2] + "\n")  # another, shorter list (e.g. a later search's winners): nothing to train
    capsys.readouterr()
    assert main(["bench", "-o", str(out), "--genotypes", str(listing), "--resume", "--no-progress", *opts]) == 0
    assert capsys.readouterr().out.startswith("1/1 architectures")  # counts this list, not the folder
    listing.write_text("|not_an_op~0|\n")
    assert main(["bench", "-o", str(out), "--genotypes", str(listing), "--resume", "--no-progress", *opts]) == 2
    assert main(["bench", "-o", str(out), "--genotypes", str(tmp_path / "missing.txt"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("genas: error:") for e in err)
    assert [r["genotype"] for r in rows(out)] == wanted  # nothing lost
