"""Default search protocol (population 50, 20 generations) with and without dedup on one supernet.

    OMP_NUM_THREADS=1 python results/dedup-protocol/dedup_protocol.py RUN OUT [off|default|strict ...]

RUN: a finished NB201 supernet run (here a copy of results/flatness-stability/supernet); the searches
go to RUN/search-protocol-<dedup>-s<seed>/ and resume there; OUT gets one summary JSON per search.
"""
import json, sys, time, shutil
from pathlib import Path
import torch
torch.set_num_threads(1)
from genas.workflows.search import search_supernet
from genas.search import make_config
from genas.proxies import scoring_config
from genas.search import TabularOracle
from genas.spaces import get_space

run = Path(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
space = get_space("nb201")
csv = Path(__file__).resolve().parents[3] / "shared/data/nb201/nats_tss_test_acc_200ep.csv"
c10 = TabularOracle(csv, "CIFAR10TestAccuracy200Epochs", space)
c10m = TabularOracle(csv, "CIFAR10TestAccuracy200Epochs", space, canonical_rule="default")
for seed in (0,):
    for dedup in sys.argv[3:] or ("off", "default"):
        name = f"protocol-{dedup}-s{seed}"
        if (out / f"{name}.json").exists():
            continue
        t0 = time.time()
        result, d = search_supernet(run, "flatness", "evolution", make_config("evolution", seed=seed, dedup=dedup),
                                    scoring_config(None, seed=seed, val_images=1000), name=name, resume=(run / f"search-{name}").exists(),
                                    device="cpu", progress=False)
        rows = [json.loads(l) for l in (d / "candidates.jsonl").read_text().splitlines()]
        scored = [r for r in rows if "copy_of" not in r]
        forms = [space.canonical(space.parse(r["genotype"])) for r in scored]
        strict = [space.canonical(space.parse(r["genotype"]), "strict") for r in scored]
        best = space.parse(result["best"]["genotype"])
        rec = dict(seed=seed, dedup=dedup, wall_s=round(time.time() - t0, 1), scored=len(scored),
                   distinct_scored=len(set(forms)), distinct_scored_strict=len(set(strict)), copies=len(rows) - len(scored),
                   scoring_s=round(sum(r["seconds"] for r in scored), 1), best=result["best"],
                   top5_distinct=len({space.canonical(space.parse(t["genotype"])) for t in result["topk"][:5]}),
                   top5_distinct_strict=len({space.canonical(space.parse(t["genotype"]), "strict") for t in result["topk"][:5]}),
                   best_c10=c10([best])[0], best_c10_class_mean=c10m([best])[0], torch_threads=1)
        (out / f"{name}.json").write_text(json.dumps(rec, indent=1))
        print(json.dumps(rec), flush=True)
