"""Graphviz cell diagrams (genas.analysis.cells): files, content, determinism, missing-dot errors.

Rendering tests skip when the ``graphviz`` package or the ``dot`` executable is missing; the
error-path tests fake a missing ``dot`` and run wherever the package imports.
"""
from __future__ import annotations

import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from genas.analysis import cells
from genas.errors import GenasError
from genas.spaces import get_space

SVG_NS = "{http://www.w3.org/2000/svg}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# DARTS_V2 from the DARTS paper's genotypes.py
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
# two none edges (1->2, 1->3): four live edges
NB201_TWO_NONE = "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"


@pytest.fixture
def dot():
    pytest.importorskip("graphviz", reason="the 'graphviz' Python package is not installed")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' executable not on PATH (apt-get install graphviz)")


def parse_svg(path: Path) -> dict:
    """Nodes ``{graphviz name: label}`` and edges ``[(graphviz 'a->b', label or None)]`` of an SVG."""
    root = ET.parse(path).getroot()
    nodes, edges, clusters = {}, [], []
    for g in root.iter(f"{SVG_NS}g"):
        title = g.find(f"{SVG_NS}title").text if g.find(f"{SVG_NS}title") is not None else None
        texts = [t.text.strip() for t in g.findall(f"{SVG_NS}text") if t.text and t.text.strip()]
        if g.get("class") == "node":
            nodes[title] = " ".join(texts)
        elif g.get("class") == "edge":
            edges.append((title, " ".join(texts) or None))
        elif g.get("class") == "cluster":
            clusters.append((title, " ".join(texts)))
    return {"nodes": nodes, "edges": edges, "clusters": clusters,
            "text": " ".join(t.text for t in root.iter(f"{SVG_NS}text") if t.text)}


def test_files_are_png_and_svg(dot, tmp_path):
    paths = cells.draw_cell(get_space("nb201"), NB201_TWO_NONE, tmp_path / "sub" / "cell", title="t")
    assert paths == [tmp_path / "sub" / "cell.png", tmp_path / "sub" / "cell.svg"]
    assert paths[0].read_bytes()[:8] == PNG_MAGIC
    assert ET.parse(paths[1]).getroot().tag == f"{SVG_NS}svg"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["cell.png", "cell.svg"]  # no .gv left


def test_nb201_live_edges_labelled_none_omitted(dot, tmp_path):
    space = get_space("nb201")
    _, svg = cells.draw_cell(space, NB201_TWO_NONE, tmp_path / "cell")
    info = parse_svg(svg)
    assert info["nodes"] == {str(i): str(i) for i in range(4)}
    assert sorted(info["edges"]) == [("0->1", "nor_conv_3x3"), ("0->2", "avg_pool_3x3"),
                                     ("0->3", "skip_connect"), ("2->3", "nor_conv_1x1")]
    assert "none" not in info["text"]
    # a tuple genotype and the space by name give the same diagram as the arch string
    _, svg2 = cells.draw_cell("nb201", space.parse(NB201_TWO_NONE), tmp_path / "cell2.svg")
    assert svg2 == tmp_path / "cell2.svg"
    assert svg2.read_bytes() == svg.read_bytes()


def test_darts_both_cells_like_plot_genotype(dot, tmp_path):
    space = get_space("darts")
    png, svg = cells.draw_cell(space, DARTS_V2, tmp_path / "best_cell", title="DARTS_V2")
    assert png.read_bytes()[:8] == PNG_MAGIC
    info = parse_svg(svg)
    assert sorted(label for _, label in info["clusters"]) == ["normal cell", "reduction cell"]
    pairs = space.to_pairs(space.parse(DARTS_V2))
    names = ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3"]
    for which in ("normal", "reduce"):
        nodes = {k: v for k, v in info["nodes"].items() if k.startswith(which + "_")}
        assert nodes == {f"{which}_{n}": n for n in names + ["c_{k}"]}
        edges = [(t, lab) for t, lab in info["edges"] if t.startswith(which + "_")]
        op_edges = [(t, lab) for t, lab in edges if lab is not None]
        assert len(op_edges) == 8
        # the edge set is exactly the DARTS (op, input) pairs: two per intermediate node
        expected = sorted((f"{which}_{names[src]}->{which}_{node // 2}", op)
                          for node, (op, src) in enumerate(pairs[which]))
        assert sorted(op_edges) == expected
        # the concatenation: every intermediate node feeds c_{k}, unlabelled
        assert sorted(t for t, lab in edges if lab is None) == [
            f"{which}_{i}->{which}_c_{{k}}" for i in range(4)]
    assert "none" not in info["text"]
    for op in {op for cell in pairs.values() for op, _ in cell}:
        assert op in info["text"]


def test_darts_invalid_cell_still_drawn():
    pytest.importorskip("graphviz", reason="the 'graphviz' Python package is not installed")
    # every gene live (breaks the 2-input rule): all 14 edges of each cell are drawn
    src = cells.build_graph("darts", [4] * 14 + [1] * 14).source
    assert src.count("label=\" sep_conv_3x3 \"") == 14
    assert src.count("label=\" max_pool_3x3 \"") == 14


def test_output_is_deterministic(dot, tmp_path):
    a = cells.draw_cell("darts", DARTS_V2, tmp_path / "a" / "cell", title="same")
    b = cells.draw_cell("darts", DARTS_V2, tmp_path / "b" / "cell", title="same")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
    assert b"Generated by graphviz" not in a[1].read_bytes()


def test_missing_dot_raises_genas_error(monkeypatch, tmp_path):
    pytest.importorskip("graphviz", reason="the 'graphviz' Python package is not installed")
    monkeypatch.setattr(cells.shutil, "which", lambda name: None)
    assert cells.graphviz_available() is False
    with pytest.raises(GenasError, match="apt-get install graphviz") as err:
        cells.draw_cell("nb201", NB201_TWO_NONE, tmp_path / "cell")
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_dot_not_executable_raises_genas_error(monkeypatch, tmp_path):
    graphviz = pytest.importorskip("graphviz", reason="the 'graphviz' Python package is not installed")
    monkeypatch.setattr(cells.shutil, "which", lambda name: "/usr/bin/dot")

    def fail(self, *args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot", "-Tpng"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", fail)
    with pytest.raises(GenasError, match="apt-get install graphviz") as err:
        cells.draw_cell("darts", DARTS_V2, tmp_path / "cell")
    assert "\n" not in str(err.value)


def test_missing_graphviz_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    assert cells.graphviz_available() is False
    with pytest.raises(GenasError, match="pip install graphviz"):
        cells.draw_cell("nb201", NB201_TWO_NONE, tmp_path / "cell")
