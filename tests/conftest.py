"""Shared fixtures: the NAS-Bench-201 tables in ../shared/data/nb201 (beside the repository), one torch thread."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

NB201_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201"


@pytest.fixture(scope="session")
def nb201_dir() -> Path:
    if not (NB201_DIR / "nats_tss_test_acc_200ep.csv").is_file():
        pytest.skip(f"NB201 data not found at {NB201_DIR} (expected shared/data/nb201 beside the repository)")
    return NB201_DIR


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def nats_rows(nb201_dir) -> list[dict[str, str]]:
    """nats_tss_test_acc_200ep.csv: row i is NB201 index i."""
    return read_csv(nb201_dir / "nats_tss_test_acc_200ep.csv")


@pytest.fixture(scope="session")
def params_rows(nb201_dir) -> list[dict[str, str]]:
    """nb201_params_flops_derived.csv: official NB201 parameter counts per arch."""
    path = nb201_dir / "nb201_params_flops_derived.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return read_csv(path)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks gain nothing from intra-op threads; on a busy 2-core machine they lose 10-50x.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
