"""Tabular oracle: look up a genotype's score in a per-architecture CSV (e.g. NAS-Bench-201).

It stands in for the expensive evaluator, so a strategy can be benchmarked over hundreds of seeds in
seconds. Only the ``csv`` module is used, to keep the search package free of heavy imports.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from ..errors import GenasError
from ..spaces.base import Genotype, SearchSpace

ARCH_COLUMNS = ("arch_str", "ArchitectureString")  # NB201 files in shared/data/nb201 use one of these


class TabularOracle:
    """``evaluate(genotypes) -> list[float]`` backed by column ``column`` of ``csv_path``.

    ``canonical_rule`` (a dedup rule of the space, or None): score a genotype by the mean over every
    string of its function class in the table. A table trains each string separately, so the
    strings of one function carry independent training noise; a search that scores each function
    once (dedup) should see the function's value, not whichever string it happened to draw.
    """

    def __init__(self, csv_path: str | Path, column: str, space: SearchSpace, canonical_rule: str | None = None):
        self.path, self.column, self.space = Path(csv_path), column, space
        try:
            with open(self.path, newline="") as f:
                rows = csv.reader(f)
                header = next(rows, None)
                if header is None:
                    raise GenasError(f"tabular file {self.path} is empty")
                arch_col = next((c for c in ARCH_COLUMNS if c in header), None)
                if arch_col is None:
                    raise GenasError(f"tabular file {self.path} has no architecture column "
                                     f"(expected one of {', '.join(ARCH_COLUMNS)})")
                self.columns = [c for c in header if c != arch_col]
                if column not in self.columns:
                    raise GenasError(f"unknown column {column!r} in {self.path.name}; "
                                     f"available: {', '.join(self.columns)}")
                self.table = self._read(rows, header.index(arch_col), header.index(column))
        except FileNotFoundError:
            raise GenasError(f"tabular file {self.path} not found") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise GenasError(f"cannot read tabular file {self.path}: {exc}") from None
        self.scores = self.table if canonical_rule in (None, "off") else self._class_means(canonical_rule)

    def _class_means(self, rule: str) -> dict[Genotype, float]:
        groups: dict[str, list[Genotype]] = {}
        for g in self.table:
            groups.setdefault(self.space.canonical(g, rule), []).append(g)
        means = {}
        for members in groups.values():
            mean = math.fsum(self.table[g] for g in members) / len(members)
            means.update((g, mean) for g in members)
        return means

    def _read(self, rows, arch_idx: int, value_idx: int) -> dict[Genotype, float]:
        table: dict[Genotype, float] = {}
        for row in rows:
            where = f"{self.path.name} line {rows.line_num}"
            if len(row) <= max(arch_idx, value_idx):
                raise GenasError(f"{where}: row has {len(row)} fields, too few for column {self.column!r}")
            try:
                g = self.space.parse(row[arch_idx])
            except ValueError as exc:
                raise GenasError(f"{where}: {exc}") from None
            try:
                value = float(row[value_idx])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise GenasError(f"{where}: column {self.column!r} has a non-numeric or non-finite value {row[value_idx]!r}")
            if g in table:
                raise GenasError(f"{where}: architecture {row[arch_idx]} appears twice")
            table[g] = value
        return table

    def __len__(self) -> int:
        return len(self.table)

    def __call__(self, genotypes: Sequence[Genotype]) -> list[float]:
        out = []
        for g in genotypes:
            try:
                out.append(self.scores[tuple(g)])
            except KeyError:
                raise GenasError(f"architecture {self.space.format(g)} is not in {self.path.name}") from None
        return out

    def optimum(self) -> tuple[Genotype, float]:
        """The best row of the table by score (first one on ties), for reference."""
        return max(self.scores.items(), key=lambda item: item[1])
