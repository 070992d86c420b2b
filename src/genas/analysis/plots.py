"""Matplotlib figures for search reports (headless: the Agg backend, PNG files)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_best_per_generation(history: list[dict], path: Path, metric: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([h["evaluations"] for h in history], [h["best_score"] for h in history], marker="o")
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel(f"best {metric} so far")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss_vs_sigma(curves: list[tuple[str, Sequence[float], Sequence[float]]], path: Path) -> Path:
    """One line per candidate: validation loss at each noise std (``curves``: label, stds, losses)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, stds, losses in curves:
        ax.plot(stds, losses, marker="o", label=label)
    ax.set_xlabel("noise std σ")
    ax.set_ylabel("validation loss")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_nb201_cell(ops: Sequence[str], edges: Sequence[tuple[int, int]], path: Path, title: str = "") -> Path:
    """The NB201 cell as a DAG: nodes 0 (input) to 3 (output) on a line, skip-ahead edges as arcs."""
    bends = {(0, 2): -0.5, (1, 3): 0.5, (0, 3): -0.6}  # arc3 rad: negative bends above the line
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for (src, dst), op in zip(edges, ops):
        if op == "none":
            continue
        rad = bends.get((src, dst), 0.0)
        ax.annotate("", xy=(dst, 0), xytext=(src, 0),
                    arrowprops=dict(arrowstyle="-|>", lw=1.4, shrinkA=14, shrinkB=14,
                                    connectionstyle=f"arc3,rad={rad}"))
        # midpoint of matplotlib's arc3 quadratic Bezier: control point offset by -rad*dx vertically
        ax.text((src + dst) / 2, -rad * (dst - src) / 2, op, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.2", fc="lightyellow", ec="gray", lw=0.5))
    for node in range(4):
        ax.add_patch(plt.Circle((node, 0), 0.17, color="lightblue" if node in (0, 3) else "white", ec="black", zorder=3))
        ax.text(node, 0, str(node), ha="center", va="center", zorder=4)
    ax.set_xlim(-0.4, 3.4)
    ax.set_ylim(-1.0, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower cost, higher score), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_score_vs_cost(costs: Sequence[float], scores: Sequence[float], path: Path, metric: str,
                       cost_label: str = "MACs (evaluation network)") -> Path:
    """Every scored candidate's score against its cost, with the Pareto front."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.scatter(costs, scores, s=10, alpha=0.6, label="candidates")
    front = pareto_front(list(zip(costs, scores)))
    ax.plot([costs[i] for i in front], [scores[i] for i in front], color="C3", marker="o", ms=4, label="Pareto front")
    ax.set_xlabel(cost_label)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
