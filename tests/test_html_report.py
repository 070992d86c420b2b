"""The HTML report: self-contained (every image embedded), every section from the folder's records,
and it renders in a real browser (headless Chromium: every image loads, a screenshot is taken)."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest

from genas.analysis.html_report import HTML, build_html, write_html_report

G1 = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"
G2 = "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"  # the same function as G1
G3 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ARGV = ["genas", "run", "--preset", "quick", "-o", "runs/demo"]


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def run(tmp_path):
    """A `genas run` folder's records, in the shapes the steps write them (no weights needed)."""
    r = tmp_path / "demo"
    _json(r / "config.json", dict(preset="quick", space="nb201", dataset="fashion-mnist", data_dir=None, channels=8,
                                  cells_per_stage=1, layers=8, epochs=3, seed=0))
    _json(r / "summary.json", dict(final_val_acc=0.7, images_per_s=545.1))
    (r / "init.pt").write_bytes(b"")
    _jsonl(r / "log.jsonl", [dict(epoch=e, lr=0.025 / (e + 1), train_loss=2.0 - 0.4 * e, train_acc=0.25 + 0.15 * e,
                                  val_arch=G3, val_acc=0.49 + 0.05 * e, val_loss=1.37 - 0.2 * e, seconds=16.0,
                                  images_per_s=600.0) for e in range(3)])
    _json(r / "env.json", dict(genas="0.1.0", torch="2.14.1", python="3.11.2", threads=2, argv=ARGV))
    s = r / "search-flatness"
    topk = [dict(genotype=G1, score=0.00128), dict(genotype=G2, score=0.00128), dict(genotype=G3, score=0.00121)]
    _json(s / "result.json", dict(strategy="evolution", space="nb201", metric="flatness", evaluations=4,
                                  config=dict(population=2, topk=3, generations=2, seed=0, mutations=1, crossovers=1,
                                              mutation_prob=0.1, max_evaluations=None, dedup="strict",
                                              max_params=4e5, min_macs=None),
                                  best=topk[0], topk=topk, supernet="ab" * 32,
                                  best_per_generation=[dict(generation=0, evaluations=2, best_score=0.00121),
                                                       dict(generation=1, evaluations=4, best_score=0.00128)]))
    _json(s / "scoring.json", dict(metric="flatness", scoring=dict(val_images=1000), supernet="ab" * 32))
    raw = lambda d: dict(losses=[0.77 + d, 0.78 + d, 0.79 + 2 * d], stds=[0.001, 0.003, 0.006], seconds=1.0)  # noqa
    _jsonl(s / "candidates.jsonl", [
        dict(genotype=G3, score=0.00121, raw=raw(0.02), generation=0, seconds=1.0, time=1.0, params=120000, macs=1.1e7),
        dict(genotype="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", score=0.0009, raw=raw(0.2), generation=0,
             seconds=1.0, time=1.0, params=90000, macs=8e6),
        dict(genotype=G1, score=0.00128, raw=raw(0.0), generation=1, seconds=1.0, time=2.0, params=121626, macs=1.2e7),
        dict(genotype=G2, score=0.00128, raw=raw(0.0), generation=1, seconds=1.0, time=2.0, params=121626, macs=1.2e7),
        dict(genotype=G1, score=0.00128, copy_of=G1, generation=1, seconds=0.0, time=2.0, params=121626, macs=1.2e7)])
    t = r / "retrain"
    _json(t / "config.json", dict(genotype=G1, epochs=2, preset="quick"))
    (t / "last.pt").write_bytes(b"")
    _jsonl(t / "log.jsonl", [
        dict(epoch=0, lr=0.05, train_loss=1.1, train_acc=0.61, test_loss=2.8, top1=0.2812, top5=0.94, holdout_loss=2.7,
             holdout_top1=0.29),
        dict(epoch=1, lr=0.01, train_loss=0.6, train_acc=0.77, test_loss=0.83, top1=0.6894, top5=0.99, holdout_loss=0.8,
             holdout_top1=0.7)])
    _json(t / "result.json", dict(genotype=G1, preset="quick", epochs=2, final_top1=0.6894, final_top5=0.99,
                                  best_epoch=1, best_top1=0.6894, best_top5=0.99, selection="held-out",
                                  selection_note="best.pt selected on 3000 held-out training images",
                                  holdout_images=3000, train_images=10000, test_images=10000, params=121626,
                                  macs=11152256, seconds=155.7))
    _json(r / "run.json", dict(preset="quick", space="nb201", metric="flatness", seed=0, best=topk[0],
                               test_accuracy=0.6894, params=121626, macs=11152256, seconds=dict(supernet_s=1.0)))
    return r


def _images(text: str) -> list[bytes]:
    srcs = re.findall(r'<img src="([^"]*)"', text)
    assert srcs and all(re.fullmatch(r"data:image/(png|svg\+xml);base64,[A-Za-z0-9+/=]+", s) for s in srcs)
    return [base64.b64decode(s.split(",", 1)[1]) for s in srcs]


def test_report_is_self_contained_with_every_section(run):
    path = write_html_report(run)
    assert path == run / HTML
    text = path.read_text()
    images = _images(text)
    assert all(b.startswith(b"\x89PNG") or b"<svg" in b[:400] for b in images)
    # supernet curves, search progress, 2 cell diagrams, loss vs sigma, score vs MACs, retrain curves
    assert len(images) == 7
    assert not re.search(r"(src|href)=\"(https?:|//|/)", text) and "<link" not in text and "<script" not in text
    for section in ("Supernet training", "Search progress", "Top 2 distinct architectures",
                    "Validation loss vs noise std", "Score vs MACs", "Stand-alone retraining", "Environment",
                    "Reproduce"):
        assert f">{section}<" in text, section
    top_table = text.split("Top 2 distinct architectures")[1].split("</table>")[0]
    assert G1 in top_table and G2 not in top_table and G3 in top_table  # G2 is G1's function
    retrain = text.split(">Stand-alone retraining<")[1]
    assert retrain.index("final-epoch test top-1 <b>0.6894</b>") < retrain.index("best.pt: epoch 2")
    assert "held-out training images" in retrain and "optimistic" not in retrain
    assert "2.14.1" in text and "genas run --preset quick -o runs/demo" in text
    assert (f"genas run --preset quick --space nb201 --metric flatness --seed 0 --dataset fashion-mnist "
            f"--max-params 400000 --dedup strict -o {run}") in text  # the search settings it ran with


def test_report_of_a_search_and_of_an_old_retrain(run):
    """A search folder's report has its supernet (the parent) and the retraining of its winner; a
    retrain folder made before selection was recorded is labelled optimistic; sections without
    records are left out."""
    p = run / "search-flatness" / "candidates.jsonl"  # candidates without MACs: no scatter
    _jsonl(p, [{k: v for k, v in json.loads(line).items() if k not in ("macs", "params")}
               for line in p.read_text().splitlines()])
    text = build_html(run / "search-flatness")
    assert ">Supernet training<" in text and ">Stand-alone retraining<" in text and ">Search progress<" in text
    assert ">Score vs MACs<" not in text and len(_images(text)) == 6
    result = json.loads((run / "retrain" / "result.json").read_text())
    for key in ("selection", "selection_note", "holdout_images"):
        del result[key]
    _json(run / "retrain" / "result.json", result)
    (run / "retrain" / "env.json").write_text(json.dumps(dict(torch="2.14.1")))
    text = build_html(run / "retrain")
    assert "best on test — optimistic" in text and ">Search" not in text and ">Supernet training<" not in text
    assert "genas retrain --config" in text and len(_images(text)) == 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHECK = ('<script>window.addEventListener("load",()=>{document.body.setAttribute("data-images",'
         '[...document.images].map(i=>i.complete&&i.naturalWidth>0?1:0).join(""));});</script></body>')


def _browser(html_path, tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", *args, html_path.as_uri()],
                          capture_output=True, text=True, timeout=60)


def _loaded(html_path, tmp_path) -> str:
    probe = html_path.with_name("probe.html")
    probe.write_text(html_path.read_text().replace("</body>", CHECK))
    res = _browser(probe, tmp_path, "--virtual-time-budget=10000", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'data-images="([01]*)"', res.stdout)
    assert found, res.stdout[-2000:]
    return found.group(1)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs headless Chromium (Debian package chromium)")
def test_report_renders_in_headless_chromium(run, tmp_path):
    import matplotlib.image

    path = write_html_report(run)
    n = len(_images(path.read_text()))
    assert _loaded(path, tmp_path) == "1" * n  # every image decoded, with a width
    shot = tmp_path / "report.png"
    res = _browser(path, tmp_path, "--window-size=1200,2400", f"--screenshot={shot}")
    assert res.returncode == 0 and shot.stat().st_size > 10000, res.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1200) and pixels[..., :3].std() > 0.05  # not a blank page
    # the probe can fail: a damaged image is reported as not loaded
    broken = path.with_name("broken.html")
    text = path.read_text()
    start = text.index("base64,") + len("base64,")
    broken.write_text(text[:start] + "AAAA" + text[start + 40:])
    assert _loaded(broken, tmp_path).startswith("0")
