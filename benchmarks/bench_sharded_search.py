"""Speed-up of sharding a flatness search's scoring across torchrun ranks (issue 6, item 4).

Runs the same `genas search` (same seed, same candidates) three ways and times each end to end:

  a) one process, 1 intra-op thread        b) one process, N threads (N = ranks)
  c) torchrun with N ranks x 1 thread (each rank scores its share of every generation)

Besides the wall time of the whole command (start-up and data loading included) it reports the
scoring time: for one process the sum of its per-candidate times; for torchrun, per generation, the
busiest rank's total (the critical path, load imbalance included). It also checks that every mode
wrote the same result.json bytes.

The supernet's weights do not change how long scoring takes, so without ``--run`` a quick-preset
NB201 supernet is trained for ``--epochs`` epochs (default 1) into ``--work`` first; pass
``--prepare-only`` to do that outside a timed session. Every timed run is kept in ``--work``, so the
modes can be timed in separate short windows (``--modes c,a`` then ``--modes c,b``); the summary, the
last line printed (JSON), takes each mode's fastest run so far, since on a shared machine the
fastest run is the least disturbed.

    python benchmarks/bench_sharded_search.py --prepare-only
    /tmp/jobs/quiet.sh .venv/bin/python benchmarks/bench_sharded_search.py --modes c,a
    /tmp/jobs/quiet.sh .venv/bin/python benchmarks/bench_sharded_search.py --modes c,b
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = ("config.json", "data.json", "init.pt", "final.pt", "summary.json")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a finished supernet run folder (default: train a quick one into --work)")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "genas-bench-sharded"),
                   help="folder for the prepared supernet and the search folders")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset of the prepared supernet")
    p.add_argument("--epochs", type=int, default=1, help="epochs of the prepared quick supernet")
    p.add_argument("--prepare-only", action="store_true", help="only train the supernet, time nothing")
    p.add_argument("--ranks", type=int, default=2, help="torchrun ranks (and threads of mode b)")
    p.add_argument("--metric", default="flatness")
    p.add_argument("--population", type=int, default=20, help="candidates per generation")
    p.add_argument("--candidates", type=int, default=40, help="candidates scored in all")
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1,
                   help="time each mode this often now; the summary keeps each mode's fastest run so far")
    p.add_argument("--modes", default="a,b,c", help="which of a, b, c to run now; modes timed by earlier "
                   "invocations with the same settings are kept in --work and summarized too")
    return p.parse_args(argv)


def prepare_run(args) -> Path:
    """A finished supernet run to score on: ``--run`` as given, or a quick one trained once into --work."""
    if args.run:
        return Path(args.run)
    run = Path(args.work) / "supernet"
    if not (run / "final.pt").exists():
        cmd = [sys.executable, "-m", "genas", "train-supernet", "--preset", "quick", "--dataset", args.dataset,
               "--epochs", str(args.epochs), "-o", str(run), "--device", "cpu", "--no-progress"]
        if (run / "config.json").exists():
            cmd.append("--resume")
        subprocess.run(cmd, check=True, cwd=REPO)
    return run


def private_run(run: Path, work: Path) -> Path:
    """A folder linking to ``run``'s files, so the benchmark's search folders land in ``work``, not beside
    someone else's supernet."""
    mirror = work / "run"
    mirror.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        link = mirror / name
        if (run / name).exists() and not link.exists():
            link.symlink_to((run / name).resolve())
    return mirror


def search_args(args, run: Path, name: str) -> list[str]:
    generations = -(-args.candidates // args.population)
    half = args.population // 2
    return ["search", "--run", str(run), "--name", name, "--metric", args.metric, "--seed", str(args.seed),
            "--population", str(args.population), "--mutations", str(half), "--crossovers", str(args.population - half),
            "--generations", str(generations), "--max-evaluations", str(args.candidates),
            "--val-images", str(args.val_images), "--device", "cpu", "--no-progress"]


def command(mode: str, args, run: Path, name: str) -> tuple[list[str], int]:
    """(argv, OMP threads per process) of one mode."""
    genas_args = search_args(args, run, name)
    if mode == "a":
        return [sys.executable, "-m", "genas", *genas_args], 1
    if mode == "b":
        return [sys.executable, "-m", "genas", *genas_args], args.ranks
    # "--" keeps torchrun's own parser from taking genas's --run for an abbreviation of --run-path
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.ranks}",
            "-m", "genas", "--", *genas_args], 1


def scoring_seconds(log: list[dict]) -> float:
    """Scoring time on the critical path: per generation, the busiest rank's summed candidate times."""
    per_gen: dict[int, dict[int, float]] = {}
    for r in log:
        ranks = per_gen.setdefault(r["generation"], {})
        ranks[r.get("rank", 0)] = ranks.get(r.get("rank", 0), 0.0) + r["seconds"]
    return sum(max(ranks.values()) for ranks in per_gen.values())


def best_of(runs: list[dict]) -> dict:
    """One mode's fastest run (the machine is shared, so the minimum is the least disturbed), with every time."""
    best = min(runs, key=lambda r: r["wall_s"])
    return {**{k: v for k, v in best.items() if k != "runs"}, "all_wall_s": [r["wall_s"] for r in runs],
            "all_scoring_s": [r["scoring_s"] for r in runs], "min_scoring_s": min(r["scoring_s"] for r in runs),
            "same_result_every_run": len({r["result"] for r in runs}) == 1}


def time_once(mode: str, args, run: Path, name: str) -> dict:
    argv, threads = command(mode, args, run, name)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mode {mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = run / f"search-{name}"
    log = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    return dict(mode=mode, threads=threads, processes=args.ranks if mode == "c" else 1, wall_s=round(wall, 2),
                scoring_s=round(scoring_seconds(log), 2), candidates=len(log),
                per_candidate_s=round(sum(r["seconds"] for r in log) / len(log), 4),
                result=(out / "result.json").read_bytes())


def code_digest() -> str:
    """A short hash of the package source: runs timed with another version of the scorer are not mixed."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((REPO / "src" / "genas").rglob("*.py")):
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def rows_file(args) -> Path:
    """Where timed modes are kept, per setting and source version, so each mode can be timed in its own
    short quiet window."""
    key = (f"{args.metric}-c{args.candidates}-p{args.population}-v{args.val_images}-s{args.seed}-r{args.ranks}"
           f"-{code_digest()}")
    return Path(args.work) / f"rows-{key}.json"


def load_rows(path: Path) -> dict:
    if not path.exists():
        return {}
    return {m: [{**r, "result": r["result"].encode()} for r in runs] for m, runs in json.loads(path.read_text()).items()}


def save_rows(rows: dict, path: Path) -> None:
    """Every timed run so far (a later invocation adds to them), result bytes kept to compare modes."""
    path.write_text(json.dumps({m: [{**r, "result": r["result"].decode()} for r in runs] for m, runs in rows.items()},
                               indent=1))


def summarize(rows: dict[str, dict], args) -> dict:
    out = dict(benchmark="sharded_search", metric=args.metric, candidates=args.candidates,
               population=args.population, val_images=args.val_images, ranks=args.ranks, cpus=os.cpu_count(),
               modes={m: {k: v for k, v in r.items() if k != "result"} for m, r in rows.items()})
    results = {r["result"] for r in rows.values()}
    out["identical_result"] = {m: r["result"] == rows[min(rows)]["result"] for m, r in rows.items()}
    out["all_identical"] = len(results) == 1 if rows else None
    if "c" in rows:
        for key in ("wall_s", "min_scoring_s"):
            c = rows["c"][key]
            if "a" in rows:
                out[f"speedup_{key[:-2].replace('min_', '')}_vs_1thread"] = round(rows["a"][key] / c, 3)
            singles = [rows[m][key] for m in ("a", "b") if m in rows]
            if singles:
                out[f"speedup_{key[:-2].replace('min_', '')}_vs_best_single"] = round(min(singles) / c, 3)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    run = prepare_run(args)
    if args.prepare_only:
        print(json.dumps(dict(prepared=str(run.resolve()))))
        return 0
    mirror = private_run(run, Path(args.work))
    store = rows_file(args)
    rows = load_rows(store)
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        for i in range(args.repeats):
            row = time_once(mode, args, mirror, f"bench-{mode}-{os.getpid()}-{i}")
            rows.setdefault(mode, []).append({**row, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            save_rows(rows, store)
            print(f"{mode}: {row['processes']} process(es) x {row['threads']} thread(s): "
                  f"wall {row['wall_s']} s, scoring {row['scoring_s']} s", flush=True)
    print(json.dumps(summarize({m: best_of(runs) for m, runs in sorted(rows.items())}, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
