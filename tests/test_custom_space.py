"""A user's own search space, defined here and registered with ``genas.register_space``, runs the
whole pipeline (supernet training, flatness search, retraining, export) through the Python API
and through the CLI, with no change under src/. A proxy it cannot serve (angle: its supernet has
no ``path_vector``) is one line: a GenasError in Python, exit code 2 and one ``genas: error:``
line through ``genas.cli.main``.

The space: a chain of 3 layers, each one of conv3x3 / conv1x1 / skip, between a stem and a
classifier head; 27 architectures.
"""
from __future__ import annotations

import json
from typing import Sequence

import pytest
import torch
from torch import nn

import genas
from genas.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

CHAIN_OPS = ("conv3x3", "conv1x1", "skip")
LAYERS = 3


def make_op(name: str, channels: int, affine: bool) -> nn.Module:
    if name == "skip":
        return nn.Identity()
    k = 3 if name == "conv3x3" else 1
    return nn.Sequential(nn.Conv2d(channels, channels, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(channels, affine=affine), nn.ReLU())


class _Body(nn.Module):
    """Stem conv+BN, then the layers (filled by subclasses), then pooling and a linear head."""

    def __init__(self, spec: genas.NetworkSpec, make_layer):
        super().__init__()
        c = spec.channels
        self.stem = nn.Sequential(nn.Conv2d(spec.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.layers = nn.ModuleList(make_layer(i) for i in range(LAYERS))
        self.classifier = nn.Linear(c, spec.num_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class ChainSupernet(_Body):
    """Every op of every layer; ``forward(x, genotype)`` runs one path (the Supernet protocol)."""

    def __init__(self, spec: genas.NetworkSpec):
        super().__init__(spec, lambda i: nn.ModuleList(make_op(op, spec.channels, spec.affine) for op in CHAIN_OPS))
        self.spec = spec

    def forward(self, x: torch.Tensor, genotype: Sequence[int]) -> torch.Tensor:
        x = self.stem(x)
        for layer, op in zip(self.layers, genotype):
            x = layer[op](x)
        return self.head(x)

    def subnet_state_dict(self, genotype: Sequence[int]) -> dict:
        """``layers.i.<op>.*`` of the chosen ops, renamed ``layers.i.*`` as in :class:`ChainNet`."""
        out = {}
        for name, value in self.state_dict().items():
            parts = name.split(".")
            if parts[0] != "layers":
                out[name] = value
            elif int(parts[2]) == genotype[int(parts[1])]:
                out[".".join(parts[:2] + parts[3:])] = value
        return out

    def supernet_param_name(self, name: str, genotype: Sequence[int]) -> str:
        parts = name.split(".")
        if parts[0] != "layers":
            return name
        return ".".join(parts[:2] + [str(genotype[int(parts[1])])] + parts[2:])

    def extract(self, genotype: Sequence[int]) -> "ChainNet":
        net = ChainNet(genotype, self.spec)
        net.load_state_dict(self.subnet_state_dict(genotype), strict=True)
        return net.to(next(self.parameters()).device)


class ChainNet(_Body):
    """The stand-alone network of one genotype: ``forward(x, return_aux=False)``."""

    def __init__(self, genotype: Sequence[int], spec: genas.NetworkSpec):
        self.genotype = tuple(genotype)
        self.drop_path_prob = 0.0
        super().__init__(spec, lambda i: make_op(CHAIN_OPS[self.genotype[i]], spec.channels, spec.affine))

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        logits = self.head(x)
        return (logits, None) if return_aux else logits


class ChainSpace(genas.SearchSpace):
    name = "chain3"
    ops = CHAIN_OPS
    num_genes = LAYERS

    def parse(self, text: str):
        tokens = text.strip().split("-") if isinstance(text, str) else []
        if len(tokens) != LAYERS or any(t not in CHAIN_OPS for t in tokens):
            raise ValueError(f"malformed chain genotype {text!r}: expected {LAYERS} of {', '.join(CHAIN_OPS)} "
                             f"joined by '-'")
        return tuple(CHAIN_OPS.index(t) for t in tokens)

    def format(self, genotype):
        return "-".join(CHAIN_OPS[g] for g in self.check(genotype))

    def size(self) -> int:
        return len(CHAIN_OPS) ** LAYERS

    def build_supernet(self, spec=None, **fields):
        return ChainSupernet(self.spec(spec, **fields))

    def build_network(self, genotype, spec=None, **fields):
        s = self.spec(spec, affine=True, **fields)
        if s.style != "cifar" or s.auxiliary:
            raise ValueError("chain networks come in one style (cifar) and have no auxiliary head")
        return ChainNet(self.check(genotype), s)


@pytest.fixture(scope="module", autouse=True)
def chain_space():
    genas.register_space(ChainSpace.name, ChainSpace)
    yield ChainSpace()
    from genas.spaces import SPACES

    SPACES.unregister(ChainSpace.name)


TINY = dict(dataset="synthetic", space="chain3", channels=4, epochs=1, batch_size=32, max_train_images=128,
            val_images=64, save_every=1)
SEARCH = dict(population=4, topk=2, generations=2, mutations=2, crossovers=2, val_images=64, bn_images=64,
              bn_batch_size=32)
RETRAIN = dict(dataset="synthetic", channels=4, epochs=1, batch_size=32, max_train_images=128)


def test_supernet_extract_matches_its_path(chain_space):
    from test_contracts import check_extract_matches_supernet, check_genotype_contract

    check_genotype_contract(chain_space)
    check_extract_matches_supernet(chain_space, genas.NetworkSpec(channels=4, num_classes=3, in_channels=1))


def test_python_api_end_to_end(tmp_path):
    run = tmp_path / "run"
    summary = genas.train_supernet(genas.supernet_config("quick", **TINY), run, device="cpu", progress=False)
    assert summary["epochs"] == 1 and json.loads((run / "config.json").read_text())["space"] == "chain3"
    found = genas.search_run(run, metric="flatness", seed=0, device="cpu", **SEARCH)
    assert found["space"] == "chain3" and found["evaluations"] >= 4
    genotype = found["best"]["genotype"]
    assert genas.get_space("chain3").parse(genotype)
    rcfg = genas.retrain_config("quick", space="chain3", genotype=genotype, **RETRAIN)
    result = genas.retrain(rcfg, run / "retrain", device="cpu", progress=False)
    assert result["space"] == "chain3" and 0.0 <= result["final_top1"] <= 1.0
    out = genas.export_run(run, tmp_path / "export")
    meta = json.loads((out / "genotype.json").read_text())
    assert meta["space"] == "chain3" and meta["genotype"] == genotype and meta["input_shape"] == [1, 16, 16]
    assert meta["mean"] == [0.5] and meta["std"] == [0.25] and len(meta["data_fingerprint"]) == 64
    program = torch.export.load(out / "model.pt2").module()
    assert program(torch.zeros(3, 1, 16, 16)).shape == (3, 10)

    with pytest.raises(genas.GenasError) as exc:
        genas.search_run(run, metric="angle", device="cpu", **SEARCH)
    msg = str(exc.value)
    assert "\n" not in msg and "angle" in msg and "chain3" in msg and "path_vector" in msg
    assert not (run / "search-angle" / "state.json").exists()


def _cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_end_to_end(tmp_path, capsys):
    run, retrained = tmp_path / "run", tmp_path / "retrained"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    code, _, err = _cli(["train-supernet", "-o", run, "--preset", "quick", *flags, "--device", "cpu",
                         "--no-progress"], capsys)
    assert code == 0, err
    search = ["search", "--run", run, "--device", "cpu", "--no-progress",
              *[f"--{k.replace('_', '-')}={v}" for k, v in SEARCH.items()]]
    code, out, err = _cli([*search, "--metric", "flatness"], capsys)
    assert code == 0, err
    result = run / "search-flatness" / "result.json"
    assert json.loads(result.read_text())["space"] == "chain3" and (run / "search-flatness" / "report.md").exists()
    code, _, err = _cli(["retrain", "-o", retrained, "--result", result, "--preset", "quick", "--device", "cpu",
                         "--no-progress", *[f"--{k.replace('_', '-')}={v}" for k, v in RETRAIN.items()]], capsys)
    assert code == 0, err
    code, out, err = _cli(["export", "--run", retrained, "-o", tmp_path / "export"], capsys)
    assert code == 0, err
    assert (tmp_path / "export" / "model.pt2").exists()

    code, out, err = _cli([*search, "--metric", "angle"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("genas: error:"), err
    assert "angle" in lines[0] and "chain3" in lines[0]
