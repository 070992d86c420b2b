"""One self-contained HTML report of a run folder (``report.html``): what a person opens.

It gathers what the folder's records hold, each section only where its records exist: the
supernet training curves (``log.jsonl``), every search's progress, its top-k *distinct*
architectures (by the space's canonical form) with cell diagrams, the validation loss against the
noise std, score against MACs (when candidates carry ``macs``), the retraining curves and result
(final-epoch top-1 first, and how ``best.pt`` was selected), the environment (``env.json``) and
the commands that reproduce it. Every image is embedded (base64 PNG from matplotlib, SVG from
Graphviz), so the file has no external resources and can be mailed or archived on its own. The
Markdown reports (``report.md``) stay; this one is made from the same records.

A folder may be a ``genas run`` folder (supernet + ``search-*/`` + ``retrain/``), a supernet run,
a search folder (its supernet is the parent folder) or a retrain folder.
"""
from __future__ import annotations

import base64
import html
import io
import shlex
from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..io import atomic_write, load_json, read_jsonl  # noqa: E402
from ..spaces import get_space  # noqa: E402
from .plots import draw_nb201_cell, plot_loss_vs_sigma  # noqa: E402

HTML = "report.html"
TOP = 5  # distinct architectures shown with diagrams
ENV = "env.json"
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;
padding:1.2em 2em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
pre{background:#f6f8fa;padding:.7em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
img{max-width:100%;height:auto}figure{margin:.6em 0}figcaption{font-size:.85em;color:#555}
.key{font-size:1.15em}.note{color:#8a5a00}.grid{display:flex;flex-wrap:wrap;gap:1em}
.grid figure{flex:0 1 330px}
"""


# --- small helpers -----------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def _json(path: Path) -> dict | None:
    return load_json(path) if path.is_file() else None


def _rows(path: Path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return _data_uri(buf.getvalue(), "image/png")


def _img(uri: str, alt: str, caption: str = "", max_width: int | None = None) -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    style = f' style="max-width:min(100%,{max_width}px)"' if max_width else ""
    return f'<figure><img src="{uri}" alt="{_e(alt)}"{style}>{cap}</figure>'


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if any(header) else ""
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_e(_fmt(v))}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
        else f"<td>{v if isinstance(v, _Raw) else _e(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


class _Raw(str):
    """Table cell content that is already HTML."""


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    pts = [(r["epoch"] + 1, r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "epoch" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def _curves(rows: list[dict], panels: Sequence[tuple[str, Sequence[tuple[str, str]]]], title: str,
            mark_epoch: int | None = None) -> str | None:
    """One panel per (y label, [(key, legend)]) over epochs; ``None`` when no key has values."""
    panels = [(ylabel, [(k, lab) for k, lab in keys if _series(rows, k)[0]]) for ylabel, keys in panels]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False, layout="constrained")
    for ax, (ylabel, keys) in zip(axes[0], panels):
        for key, label in keys:
            x, y = _series(rows, key)
            ax.plot(x, y, marker="o", ms=3, label=label)
        if mark_epoch is not None:
            ax.axvline(mark_epoch + 1, color="gray", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


# --- the folder's parts ------------------------------------------------------------------------------

def _is_supernet(d: Path) -> bool:
    return (d / "log.jsonl").is_file() and ((d / "init.pt").is_file() or (d / "summary.json").is_file())


def _is_search(d: Path) -> bool:
    return (d / "result.json").is_file() and (d / "candidates.jsonl").is_file()


def _is_retrain(d: Path) -> bool:
    return (d / "log.jsonl").is_file() and ((d / "last.pt").is_file() or (d / "best.pt").is_file())


def parts(folder: Path) -> dict:
    """The supernet run, searches and retrain folder that a report on ``folder`` covers."""
    folder = Path(folder)
    out: dict[str, Any] = dict(run=folder if (folder / "run.json").is_file() else None, supernet=None, searches=[],
                               retrain=None)
    if _is_search(folder):
        out["searches"] = [folder]
        if _is_supernet(folder.parent):
            out["supernet"] = folder.parent
        best = load_json(folder / "result.json").get("best", {}).get("genotype")
        rt = folder.parent / "retrain"
        if _is_retrain(rt) and (_json(rt / "config.json") or {}).get("genotype") == best:
            out["retrain"] = rt
        return out
    if _is_supernet(folder):
        out["supernet"] = folder
    elif _is_retrain(folder):
        out["retrain"] = folder
    out["searches"] = sorted(d for d in folder.glob("search-*") if _is_search(d))
    if out["retrain"] is None and _is_retrain(folder / "retrain"):
        out["retrain"] = folder / "retrain"
    return out


# --- sections ---------------------------------------------------------------------------------------

def _supernet_section(d: Path) -> str:
    rows = _rows(d / "log.jsonl")
    cfg = _json(d / "config.json") or {}
    summary = _json(d / "summary.json") or {}
    fig = _curves(rows, [("loss", [("train_loss", "train (sampled paths)"), ("val_loss", "validation, sampled subnet")]),
                         ("accuracy", [("train_acc", "train (sampled paths)"), ("val_acc", "validation, sampled subnet")]),
                         ("learning rate", [("lr", "lr")])], f"supernet training ({d.name})")
    facts = [("space", cfg.get("space")), ("dataset", cfg.get("dataset")), ("preset", cfg.get("preset")),
             ("channels / cells", f"C={cfg.get('channels')}, N={cfg.get('cells_per_stage')}, "
                                  f"layers={cfg.get('layers')}"),
             ("epochs", f"{len(rows)} of {cfg.get('epochs')}"), ("seed", cfg.get("seed")),
             ("final sampled-subnet val acc", summary.get("final_val_acc")),
             ("images/s", summary.get("images_per_s"))]
    body = _table(("setting", "value"), [(k, v) for k, v in facts if v is not None])
    if fig:
        body += _img(fig, "supernet training curves",
                     "per epoch: SPOS training loss/accuracy over the sampled paths, and a sampled subnet's "
                     "accuracy on search-validation images (one random path per epoch, so it is noisy)")
    else:
        body += "<p>No epochs logged yet.</p>"
    return f"<h2>Supernet training</h2>{body}"


def _distinct_topk(space, topk: list[dict], k: int) -> list[dict]:
    seen, out = set(), []
    for entry in topk:
        try:
            key = space.canonical(space.parse(entry["genotype"]))
        except (ValueError, KeyError):
            key = entry["genotype"]
        if key in seen:
            continue
        seen.add(key)
        out.append(entry)
        if len(out) == k:
            break
    return out


def _cell_image(space, genotype: str, title: str) -> str | None:
    """The cell diagram as an SVG data URI (Graphviz), a matplotlib PNG for NB201 without ``dot``,
    or ``None`` for spaces without diagrams."""
    from . import cells

    if space.name not in ("nb201", "darts"):
        return None
    if cells.graphviz_available():
        svg = cells.build_graph(space, genotype, title).pipe(format="svg", quiet=True)
        return _data_uri(cells._GENERATOR_COMMENT.sub(b"", svg), "image/svg+xml")
    if space.name == "nb201":
        buf = io.BytesIO()
        draw_nb201_cell([space.ops[i] for i in space.parse(genotype)], space.edges, buf, title)
        return _data_uri(buf.getvalue(), "image/png")
    return None


def _search_section(d: Path, name: str) -> str:
    result = load_json(d / "result.json")
    space = get_space(result["space"])
    metric = result.get("metric", "score")
    cands = _rows(d / "candidates.jsonl")
    scored = [r for r in cands if "copy_of" not in r]
    by_genotype = {r["genotype"]: r for r in scored}
    best = result["best"]
    parts_ = [f"<h2>Search: {_e(name)}</h2>",
              f'<p class="key">best <code>{_e(best["genotype"])}</code>, {_e(metric)} = {_e(_fmt(best["score"]))}</p>',
              _table(("setting", "value"), [("strategy", result.get("strategy")), ("space", result["space"]),
                                            ("metric", metric), ("evaluations", result.get("evaluations")),
                                            ("seed", result.get("config", {}).get("seed"))]
                     + ([("supernet final.pt sha256", result["supernet"][:16] + "…")] if "supernet" in result else [])
                     + ([("oracle", f"{result['oracle']['csv']} column {result['oracle']['column']}")]
                        if "oracle" in result else []))]

    # progress: every candidate's score and the best so far
    if scored:
        fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
        gens = [r.get("generation", 0) for r in scored]
        sc = ax.scatter(range(1, len(scored) + 1), [r["score"] for r in scored], c=gens, cmap="viridis", s=12,
                        label="candidate")
        hist = result.get("best_per_generation", [])
        if hist:
            ax.step([h["evaluations"] for h in hist], [h["best_score"] for h in hist], where="post", color="crimson",
                    label="best so far")
        ax.set_xlabel("candidates evaluated")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.colorbar(sc, ax=ax, label="generation")
        parts_.append("<h3>Search progress</h3>" + _img(_png(fig), "search progress",
                                                        f"every scored candidate ({len(scored)}) and the best "
                                                        f"{metric} after each generation"))

    # top-k distinct architectures with diagrams
    top = _distinct_topk(space, result.get("topk", []), TOP)
    if top:
        header = ["rank", "genotype", metric]
        extra = [k for k in ("params", "macs") if any(k in by_genotype.get(t["genotype"], {}) for t in top)]
        rows = [[i, _Raw(f"<code>{_e(t['genotype'])}</code>"), t["score"],
                 *[by_genotype.get(t["genotype"], {}).get(k, "") for k in extra]] for i, t in enumerate(top, 1)]
        parts_.append(f"<h3>Top {len(top)} distinct architectures</h3>"
                      "<p>Distinct by the space's canonical form: isomorphic cells (the same function) are shown "
                      "once.</p>" + _table(header + extra, rows))
        figs = []
        for i, t in enumerate(top, 1):
            uri = _cell_image(space, t["genotype"], f"#{i}")
            if uri:
                figs.append(_img(uri, f"cell #{i}", f"#{i}: {metric} {_fmt(t['score'])}"))
        if figs:
            parts_.append('<div class="grid">' + "".join(figs) + "</div>")

    # loss vs noise std of the top candidates
    curves = [(f"#{i}", r["raw"]["stds"], r["raw"]["losses"]) for i, t in enumerate(top, 1)
              if isinstance((r := by_genotype.get(t["genotype"], {})).get("raw"), dict) and "losses" in r["raw"]]
    if curves:
        buf = io.BytesIO()
        plot_loss_vs_sigma(curves, buf)
        parts_.append("<h3>Validation loss vs noise std</h3>" + _img(
            _data_uri(buf.getvalue(), "image/png"), "loss vs sigma",
            "the flatness measurement of the top architectures: mean validation loss under Gaussian weight "
            "noise of each std σ (flatter = smaller rise)", max_width=600))

    # score vs MACs
    costed = [r for r in scored if isinstance(r.get("macs"), (int, float))]
    if costed:
        fig, ax = plt.subplots(figsize=(6.0, 3.4), layout="constrained")
        ax.scatter([r["macs"] / 1e6 for r in costed], [r["score"] for r in costed], s=12, alpha=0.6, label="candidate")
        tops = [by_genotype[t["genotype"]] for t in top if "macs" in by_genotype.get(t["genotype"], {})]
        if tops:
            ax.scatter([r["macs"] / 1e6 for r in tops], [r["score"] for r in tops], s=40, facecolors="none",
                       edgecolors="crimson", label="top distinct")
        ax.set_xlabel("MACs (M) of the evaluation network")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        parts_.append("<h3>Score vs MACs</h3>" + _img(_png(fig), "score vs MACs",
                                                     f"{len(costed)} candidates"))
    return "".join(parts_)


def _retrain_section(d: Path) -> str:
    rows = _rows(d / "log.jsonl")
    result = _json(d / "result.json")
    cfg = _json(d / "config.json") or {}
    out = ["<h2>Stand-alone retraining</h2>"]
    if result:
        top5 = result.get("final_top5")
        out.append(f'<p class="key">final-epoch test top-1 <b>{_e(_fmt(result.get("final_top1")))}</b>'
                   + (f", top-5 {_e(_fmt(top5))}" if top5 is not None else "") + "</p>")
        note = result.get("selection_note", "best on test — optimistic")
        cls = ' class="note"' if result.get("selection", "test") == "test" else ""
        if result.get("best_epoch") is not None:
            out.append(f"<p{cls}>best.pt: epoch {result['best_epoch'] + 1}, test top-1 "
                       f"{_e(_fmt(result.get('best_top1')))} ({_e(note)})</p>")
        facts = [("genotype", _Raw(f"<code>{_e(result.get('genotype'))}</code>")), ("recipe", result.get("preset")),
                 ("epochs", result.get("epochs")), ("training images", result.get("train_images")),
                 ("held-out images", result.get("holdout_images")), ("test images", result.get("test_images")),
                 ("params (auxiliary excluded)", result.get("params")), ("MACs", result.get("macs")),
                 ("seconds", result.get("seconds")),
                 ("initialised from supernet", (result.get("supernet_digest") or "")[:16] or None)]
        out.append(_table(("", ""), [(k, v) for k, v in facts if v is not None]))
    else:
        out.append(f"<p>Not finished: {len(rows)} of {cfg.get('epochs', '?')} epochs logged.</p>")
    fig = _curves(rows, [("loss", [("train_loss", "train"), ("test_loss", "test"), ("holdout_loss", "held-out")]),
                         ("accuracy", [("train_acc", "train"), ("top1", "test top-1"),
                                       ("holdout_top1", "held-out top-1")]),
                         ("learning rate", [("lr", "lr")])], f"retraining ({d.name})",
                  mark_epoch=(result or {}).get("best_epoch"))
    if fig:
        out.append(_img(fig, "retraining curves", "per epoch; the dotted line marks best.pt's epoch"))
    return "".join(out)


def _env_section(folders: Iterable[Path]) -> str:
    seen, out = set(), []
    for d in folders:
        env = _json(d / ENV)
        if not env or repr(env) in seen:
            continue
        seen.add(repr(env))
        rows = [(k, " ".join(map(str, v)) if isinstance(v, list) else v) for k, v in env.items()
                if not isinstance(v, dict)]
        rows += [(f"{k}.{k2}", v2) for k, v in env.items() if isinstance(v, dict) for k2, v2 in v.items()]
        out.append(f"<h3>{_e(d.name)}/{ENV}</h3>" + _table(("", ""), rows))
    return "<h2>Environment</h2>" + ("".join(out) if out else f"<p>No {ENV} recorded (folders made before it "
                                                               f"existed).</p>")


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _commands(p: dict, folder: Path) -> str:
    lines = []
    for d in [folder, p["supernet"], *p["searches"], p["retrain"]]:
        env = _json(d / ENV) if d is not None else None
        if env and env.get("argv"):
            lines.append(f"# made {d.name}:\n" + " ".join(shlex.quote(a) for a in env["argv"]))
    run = _json(folder / "run.json") if p["run"] is not None else None
    if run:
        cfg = _json(folder / "config.json") or {}
        extra = "".join(f" --{k.replace('_', '-')} {shlex.quote(str(cfg[k]))}" for k in ("dataset", "data_dir")
                        if cfg.get(k) is not None)
        search = _json(folder / f"search-{run['metric']}" / "result.json") or {}
        searched = search.get("config", {})  # the search settings `genas run` takes (dedup as it ran, limits)
        extra += "".join(f" --{k.replace('_', '-')} {searched[k]:g}" for k in ("min_params", "max_params",
                                                                               "min_macs", "max_macs")
                         if searched.get(k) is not None)
        if searched.get("dedup") is not None:
            extra += f" --dedup {searched['dedup']}"
        detect = _json(folder / "detect" / "config.json")
        if detect:
            extra += f" --detect {detect['preset']}"
        lines.append(f"# the whole run\ngenas run --preset {run['preset']} --space {run['space']} --metric "
                     f"{run['metric']} --seed {run['seed']}{extra} -o {_q(folder)}")
    if p["supernet"] is not None and not run:
        lines.append(f"# the supernet (its resolved config)\ngenas train-supernet --config "
                     f"{_q(p['supernet'] / 'config.json')} -o NEW_FOLDER")
    for s in p["searches"] if not run else []:
        result = load_json(s / "result.json")
        if "oracle" in result:
            continue
        flags = "".join(f" --{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in result.get("config", {}).items() if v is not None and not isinstance(v, bool))
        lines.append(f"# this search (scoring settings in {s.name}/scoring.json)\ngenas search --run "
                     f"{_q(s.parent)} --metric {result.get('metric')} --strategy {result.get('strategy')}"
                     f"{flags} --name NEW_NAME --config {_q(s / 'scoring.json')}")
    if p["retrain"] is not None and not run:
        lines.append(f"# the retraining (its resolved recipe)\ngenas retrain --config "
                     f"{_q(p['retrain'] / 'config.json')} -o NEW_FOLDER")
    return "<h2>Reproduce</h2><pre>" + _e("\n\n".join(lines) or "(no commands recorded)") + "</pre>"


def build_html(folder: str | Path) -> str:
    """The report's HTML text for ``folder`` (see :func:`write_html_report`)."""
    folder = Path(folder)
    p = parts(folder)
    run = _json(folder / "run.json") if p["run"] is not None else None
    title = f"genas report: {folder.resolve().name}"
    head = [f"<h1>{_e(title)}</h1>", f"<p><code>{_e(folder)}</code></p>"]
    if run:
        head.append(_table(("", ""), [
            ("preset / space / metric / seed", f"{run['preset']} / {run['space']} / {run['metric']} / {run['seed']}"),
            ("best architecture", _Raw(f"<code>{_e(run['best']['genotype'])}</code>")),
            ("score", run["best"]["score"]),
            ("test accuracy (retrained, final epoch)", run.get("test_accuracy")),
            ("params", run.get("params")), ("MACs", run.get("macs")),
            ("seconds per step", ", ".join(f"{k.removesuffix('_s')} {v}" for k, v in
                                           (run.get("seconds") or run.get("seconds_this_session") or {}).items())),
        ]))
    body = head
    if p["supernet"] is not None:
        body.append(_supernet_section(p["supernet"]))
    for s in p["searches"]:
        body.append(_search_section(s, s.name))
    if p["retrain"] is not None:
        body.append(_retrain_section(p["retrain"]))
    body.append(_env_section([d for d in [folder, p["supernet"], *p["searches"], p["retrain"]] if d is not None]))
    body.append(_commands(p, folder))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_html_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (default ``folder/report.html``); returns its path."""
    folder = Path(folder)
    out = Path(out) if out is not None else folder / HTML
    text = build_html(folder).encode("utf-8")
    atomic_write(out, lambda f: f.write(text))
    return out


__all__ = ["HTML", "build_html", "parts", "write_html_report"]
