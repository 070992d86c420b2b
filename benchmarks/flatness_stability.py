"""Ranking stability of the flatness score (FBS) versus its cost (issue #6, item 3).

Measure once at high fidelity, derive every cost point offline:

``measure``  For N seeded, connected NB201 candidates of a trained supernet, record per validation
             batch (``--batch``, 250) the summed cross-entropy of the BN-recalibrated candidate

             * without noise, on ``--clean-images`` search-validation images, and
             * under Gaussian weight noise at every std of ``--stds`` (independent mode, as the
               scorer's default), on the first ``--noise-images`` of them, for noise samples
               0..S-1, once with common random numbers (CRN: the noise key is the supernet
               parameter, ``candidate_key=None``) and once with per-candidate noise
               (``candidate_key`` = crc32 of the genotype string, like ``flatness_proxy``).

             Noise comes from :func:`genas.proxies.perturb.perturbed_levels` with the same keys as
             ``flatness_proxy``, so sample s of a mode is exactly what the scorer would draw with
             ``noise_samples > s``. Work is done in rounds, so a run stopped early still covers every
             candidate: first the clean pass and sample 0 of both modes per candidate; then CRN
             sample 1, the clean loss on the further images up to ``--extra-clean-images`` and
             per-candidate sample 1, each for all candidates; then samples 2, 3, ... Records are
             appended to a JSONL file; a rerun skips what is there (resume).

             Antithetic pairs (issue #15, ``--antithetic-samples S``): the minus side (theta - s d) of
             CRN sample s on the noise images (kind ``anti``), then the plus side on images
             ``--noise-images``..``--ext-noise-images`` (``crn_ext``) and the minus side on
             ``--noise-images``..``--anti-ext-images`` (``anti_ext``), for s = 0..S-1; all before
             the extra clean images and further plain samples. ``--extraction identity-affine`` scores the candidate
             as ``records.jsonl`` was measured (before the extraction fix of 69e9540: cell BNs with
             identity affine parameters that the noise also perturbs), so the minus sides pair
             exactly with the recorded plus sides.

``analyze``  Kendall tau-b (i) between two independent noise samples on the same images and
             (ii) of each cost point against the reference ranking, averaged over disjoint image
             subsets and sample choices; forward-pass cost relative to the official single-draw
             scheme at the whole validation half (30k images x 3 stds = 90k image passes per
             candidate); successive halving (racing) over validation batches; a clean-loss
             half-against-half comparison; a Gaussian error model fitted to the measured taus that
             predicts tau against the true ranking; table (JSON, CSV, Markdown) and plot.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flatness_stability.py measure \
        --run results/flatness-stability/supernet --out results/flatness-stability/records.jsonl
    .venv/bin/python benchmarks/flatness_stability.py analyze \
        --records results/flatness-stability/records.jsonl --out results/flatness-stability
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

OFFICIAL_IMAGES = 30000  # the whole search-validation half of Fashion-MNIST (CIFAR-10: 25k)
PAPER_STDS = (0.001, 0.003, 0.006)


# ----------------------------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------------------------
def sample_candidates(space, n: int, seed: int) -> list[tuple[int, ...]]:
    """n distinct connected genotypes from the space's sampler, seeded."""
    from genas import seeding

    rng = seeding.derive_rng(seed, seeding.SEARCH, 606)
    out, seen = [], set()
    while len(out) < n:
        g = space.sample(rng)
        if g in seen or (hasattr(space, "is_connected") and not space.is_connected(g)):
            continue
        seen.add(g)
        out.append(g)
    return out


def batch_losses(net, batches) -> list[float]:
    import torch

    out = []
    for x, y in batches:
        out.append(float(torch.nn.functional.cross_entropy(net(x).float(), y, reduction="sum")))
    return out


def measure(args) -> int:
    import torch

    from genas.proxies import ScoringConfig
    from genas.workflows.scoring import scoring_context
    from genas.proxies.measure import _FastTwin
    from genas.proxies.perturb import perturbed_levels

    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: measured again
                continue
            done.add((r["cand"], r["kind"], r.get("sample", -1)))
    meta_path = out.parent / "measure_meta.json"
    old_meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if done and old_meta.get("extraction", "identity-affine") != args.extraction:  # key missing: made before it
        raise SystemExit(f"{out} was measured with --extraction {old_meta.get('extraction', 'identity-affine')}; "
                         f"use another --out")
    total_clean = max(args.clean_images, args.extra_clean_images or 0)
    cfg = ScoringConfig(val_images=total_clean, batch_size=args.batch, seed=args.seed)
    ctx = scoring_context(args.run, cfg, device="cpu")
    cands = sample_candidates(ctx.space, args.candidates, args.seed)
    n_noise = math.ceil(args.noise_images / args.batch)
    noise_batches = ctx.val_batches[:n_noise]
    ext_parts = {"crn_ext": ctx.val_batches[n_noise: math.ceil((args.ext_noise_images or 0) / args.batch)],
                 "anti_ext": ctx.val_batches[n_noise: math.ceil((args.anti_ext_images or 0) / args.batch)]}
    n_first = math.ceil(args.clean_images / args.batch)
    clean_parts = {"clean": ctx.val_batches[:n_first], "clean2": ctx.val_batches[n_first:]}
    stds = tuple(args.stds)
    meta = dict(run=str(args.run), seed=args.seed, clean_images=args.clean_images, extra_clean_images=total_clean,
                noise_images=sum(len(y) for _, y in noise_batches), batch=args.batch, stds=list(stds),
                candidates=[ctx.space.format(g) for g in cands], samples=max(args.samples, old_meta.get("samples", 0)),
                torch=torch.__version__, python=platform.python_version(),
                machine=platform.processor() or platform.machine(), extraction=args.extraction,
                antithetic_samples=max(args.antithetic_samples, old_meta.get("antithetic_samples", 0)),
                ext_noise_images=args.ext_noise_images or old_meta.get("ext_noise_images"),
                anti_ext_images=args.anti_ext_images or old_meta.get("anti_ext_images"))
    meta_path.write_text(json.dumps(meta, indent=1))
    nets: dict[int, torch.nn.Module] = {}

    def extracted(g):
        if args.extraction == "current":
            net = ctx.recalibrated(g)
            ctx._last = None  # keep our own cache; the context's holds one net only
            return net
        from genas.engine.bn import recalibrate_bn
        from genas.spaces.nb201_net import NB201Network

        sn = ctx.supernet  # the extraction before 69e9540: identity affine cell BNs, as records.jsonl
        net = NB201Network(g, channels=sn.channels, cells_per_stage=sn.cells_per_stage, num_classes=sn.num_classes,
                           in_channels=sn.in_channels, affine=True)
        state = net.state_dict()
        state.update(sn.subnet_state_dict(g))
        net.load_state_dict(state, strict=True)
        recalibrate_bn(net, ctx.bn_batches, cfg.bn_mode)
        return net

    def net_of(i):
        if i not in nets:
            nets[i] = extracted(cands[i])
        return nets[i]

    units = [(0, i, "clean") for i in range(len(cands))]
    if clean_parts["clean2"]:
        units += [(1, i, "clean2") for i in range(len(cands))]
    for s in range(args.samples):
        units += [(s, i, kind) for i in range(len(cands)) for kind in ("crn", "ind")]
    units = [u for u in units if (u[1], u[2], u[0] if u[2] in ("crn", "ind") else -1) not in done]
    # round order: clean + sample 0 of both modes per candidate first; then CRN sample 1 for
    # everyone, the extra clean images, per-candidate sample 1; then samples 2, 3, ... (so a run
    # stopped early still covers every candidate)
    order = {"clean": 0, "crn": 1, "clean2": 2, "ind": 3}
    units.sort(key=lambda u: (u[0], 0 if u[0] == 0 else order[u[2]], u[1], order[u[2]]))
    # antithetic: the minus sides on the noise images, the extra clean images, then per sample the
    # plus and minus sides on further images; all before further plain samples
    S_a = range(args.antithetic_samples)
    anti = [(s, i, "anti") for s in S_a for i in range(len(cands))]
    ext = [(s, i, kind) for s in S_a for kind in ("crn_ext", "anti_ext") if ext_parts[kind]
           for i in range(len(cands))]
    anti, ext = ([u for u in us if (u[1], u[2], u[0]) not in done] for us in (anti, ext))
    if anti or ext:  # per draw: its minus side, then its extension to further images
        rank = {"anti": 0, "crn_ext": 1, "anti_ext": 2}
        units = sorted(anti + ext, key=lambda u: (u[0], rank[u[2]], u[1])) + units
    if args.only_kinds:  # a share of the work, for parallel processes writing separate files
        units = [u for u in units
                 if u[2] in args.only_kinds and (args.only_samples is None or u[0] in args.only_samples)]
    if args.only_cands:
        units = [u for u in units if u[1] in args.only_cands]
    t0, passes = time.time(), 0
    if out.exists() and out.stat().st_size and not out.read_bytes().endswith(b"\n"):
        with out.open("a") as f:
            f.write("\n")  # close a line cut by a kill
    with out.open("a") as f, torch.inference_mode():
        for n_done, (s, i, kind) in enumerate(units):
            net = net_of(i).eval()
            g = cands[i]
            rec = dict(cand=i, genotype=ctx.space.format(g), kind=kind)
            if args.nhwc:  # NHWC forward (measure.py's twin): ~1.7x here, rounding only (~1e-7)
                rec["forward"] = "nhwc"
                twin = _FastTwin(net, False, True)

                def forward(x):
                    return twin(x)
            else:
                forward = net
            if kind in clean_parts:
                part = clean_parts[kind]
                if args.nhwc:
                    twin.refresh()
                rec.update(sample=-1, batch_sizes=[len(y) for _, y in part], losses=[batch_losses(forward, part)])
                passes += sum(len(y) for _, y in part)
            else:
                ckey = zlib.crc32(ctx.space.format(g).encode()) if kind == "ind" else None
                part = ext_parts.get(kind, noise_batches)
                levels = []
                for _k, _std in perturbed_levels(net, stds, mode="independent", sample=s, seed=args.seed,
                                                 key_of=ctx.noise_key(g), candidate_key=ckey,
                                                 sign=-1 if kind.startswith("anti") else 1):
                    if args.nhwc:
                        twin.refresh()
                    levels.append(batch_losses(forward, part))
                rec.update(sample=s, stds=list(stds), batch_sizes=[len(y) for _, y in part], losses=levels)
                if kind in ext_parts:
                    rec["first_image"] = n_noise * args.batch
                passes += len(stds) * sum(len(y) for _, y in part)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            el = time.time() - t0
            if n_done % 10 == 0 or n_done == len(units) - 1:
                print(f"[{n_done + 1}/{len(units)}] round {s} cand {i} {kind}: {passes / el:.0f} img/s, "
                      f"{el / 60:.1f} min", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------
# analysis
# ----------------------------------------------------------------------------------------------
def fbs(losses, stds, alpha=1.0, eps=1e-5):
    """Vectorised genas.proxies.flatness.flatness_score over the last axis (losses [..., levels])."""
    losses = np.asarray(losses, dtype=np.float64)
    stds = np.asarray(stds, dtype=np.float64)
    slopes = np.abs(np.diff(losses, axis=-1) / np.diff(stds)).sum(-1)
    return 1.0 / (slopes + alpha * np.abs(losses[..., 0] / stds[0]) + eps)


def tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def topk(a, ref, k: int = 10) -> float:
    """Share of the reference's top-k (highest scores) that ``a`` also puts in its top-k."""
    return len(set(np.argsort(-np.asarray(a))[:k]) & set(np.argsort(-np.asarray(ref))[:k])) / k


def load(records: Path):
    """clean [C, Bc] batch sums, noise {mode: [C, S, K, Bn]} batch sums, batch sizes, meta, {mode: S}."""
    meta = json.loads((records.parent / "measure_meta.json").read_text())
    rows = []
    for line in records.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    n_cand = len(meta["candidates"])
    clean = {r["cand"]: r for r in rows if r["kind"] == "clean"}
    noise = {(r["cand"], r["kind"], r["sample"]): r for r in rows if r["kind"] in ("crn", "ind")}
    # keep the candidates with a clean pass and sample 0 of both modes, and per mode the samples
    # complete for all of them (a run stopped early)
    cands = [i for i in range(n_cand) if i in clean and (i, "crn", 0) in noise and (i, "ind", 0) in noise]
    if len(cands) < 5:
        raise SystemExit(f"too few complete candidates: {len(cands)}")
    samples = {}
    for m in ("crn", "ind"):
        samples[m] = 0
        while all((i, m, samples[m]) in noise for i in cands):
            samples[m] += 1
    C = np.array([clean[i]["losses"][0] for i in cands])
    bc = np.array(clean[cands[0]]["batch_sizes"], dtype=float)
    clean2 = {r["cand"]: r for r in rows if r["kind"] == "clean2"}
    if clean2 and all(i in clean2 for i in cands):  # the extra clean images, when measured for all
        n2 = min(len(clean2[i]["batch_sizes"]) for i in cands)  # as many as every candidate has
        C = np.concatenate([C, np.array([clean2[i]["losses"][0][:n2] for i in cands])], axis=1)
        bc = np.concatenate([bc, np.array(clean2[cands[0]]["batch_sizes"][:n2], dtype=float)])
    meta["analysed_clean_images"] = int(bc.sum())
    N = {m: np.array([[noise[(i, m, s)]["losses"] for s in range(samples[m])] for i in cands]) for m in ("crn", "ind")}
    bn = np.array(noise[(cands[0], "crn", 0)]["batch_sizes"], dtype=float)
    meta["analysed_candidates"] = len(cands)
    return C, bc, N, bn, meta, samples


def racing(est_fn, n_cand: int, n_batches: int, first: int = 1, keep: float = 0.5, min_keep: int = 1):
    """Successive halving over validation batches on pre-measured per-batch data.

    ``est_fn(idx, b)`` -> score estimates (higher better) of candidates ``idx`` from their first ``b``
    batches. All candidates get ``first`` batches; after each rung the best ``keep`` share goes on with
    twice as many batches, until one rung would exceed ``n_batches`` or ``min_keep`` remain. Returns the
    final ranking key (rung reached, then estimate) and the total candidate-batches consumed.
    """
    alive = np.arange(n_cand)
    rung_of = np.zeros(n_cand)
    last = np.zeros(n_cand)
    b, used, rung = first, 0, 0
    while True:
        est = est_fn(alive, b)
        used += len(alive) * b
        last[alive] = est
        rung_of[alive] = rung
        if 2 * b > n_batches or len(alive) <= min_keep:
            break
        k = max(min_keep, int(math.ceil(len(alive) * keep)))
        alive = alive[np.argsort(-est, kind="stable")[:k]]
        b, rung = 2 * b, rung + 1
    # eliminated earlier ranks below; estimates are on comparable per-image scales
    key = rung_of * 1e6 + (np.argsort(np.argsort(last)) / n_cand)
    return key, used


def antithetic_rows(records: Path, C, bc, bn, meta, lists, alphas, official, curves):
    """Antithetic pairs vs single draws at equal forward passes (issue #15; the rule is in the README).

    Every scheme uses CRN draws 0..S-1: ``single`` = the plus side of one draw, ``2 draws`` = two
    independent plus sides, ``pair`` = the mean of a draw's plus and minus side, ``2 pairs`` = both
    draws paired; on disjoint image subsets of the images where those sides were measured. References:
    the clean loss on the images no scheme uses (``clean2``, 3000-8000 when measured) + the mean noise
    shift on the first noise images over every draw measured there (``all draws``: both signs and the
    per-candidate draws) or over the plus sides only (``plus only``, the definition of the rows above).
    """
    rows_in = []
    for line in Path(records).read_text().splitlines():
        try:
            rows_in.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    n_cand = len(meta["candidates"])
    rec = {(r["cand"], r["kind"], r.get("sample", -1)): r for r in rows_in}

    def complete(kind):  # samples 0..S-1 of ``kind`` measured for every candidate
        S = 0
        while all((i, kind, S) in rec for i in range(n_cand)):
            S += 1
        return S

    def arr(kind, S):  # [C, S, K, B] per-batch summed losses
        return np.array([[rec[(i, kind, s)]["losses"] for s in range(S)] for i in range(n_cand)])

    S_p, S_m, S_i = complete("crn"), complete("anti"), complete("ind")
    if S_m == 0 or C.shape[0] != n_cand:
        return []
    S_pe, S_me = min(complete("crn_ext"), S_p), min(complete("anti_ext"), S_m)
    P, M, I = arr("crn", S_p), arr("anti", S_m), arr("ind", S_i)
    nb = P.shape[-1]
    # the sides on the noise images (all draws) and, where measured, extended to further images
    Pf = np.concatenate([P[:, :S_pe], arr("crn_ext", S_pe)], axis=-1) if S_pe else P
    Mf = np.concatenate([M[:, :S_me], arr("anti_ext", S_me)], axis=-1) if S_me else M
    bsz = float(bn.mean())
    used = max(Pf.shape[-1], Mf.shape[-1])  # batches of the clean images some scheme uses
    if len(bc) <= used:
        return []  # no held-out clean images left
    held = C[:, used:].sum(1) / bc[used:].sum()
    clean_nb = C[:, :nb].sum(1) / bn[:nb].sum()
    out = []
    for list_name, lv in lists.items():
        stds = np.array(meta["stds"])[lv]
        for alpha in alphas:
            def score(L):
                return fbs(L, stds, alpha)

            first = lambda X: X[:, :, lv, :nb].sum(-1) / bn[:nb].sum()  # noqa: E731  [C, S, K] on the noise images
            delta_all = np.concatenate([first(P), first(M), first(I)], axis=1).mean(1) - clean_nb[:, None]
            delta_plus = np.concatenate([first(P), first(I)], axis=1).mean(1) - clean_nb[:, None]
            refs = {"all": score(held[:, None] + delta_all), "plus": score(held[:, None] + delta_plus)}
            curves[f"{list_name} | alpha={alpha:g} | antithetic refs all~plus"] = tau(refs["all"], refs["plus"])

            def est(sides, sl):  # sides: list of [C, K, B] arrays, averaged; sl: batch slice
                L = np.mean([X[:, lv, sl].sum(-1) for X in sides], axis=0) / (bsz * (sl.stop - sl.start))
                return score(L)

            def draw_sets(name, P, M):  # the draws of a scheme: lists of (array, sample) averaged together
                S_pm = min(P.shape[1], M.shape[1])
                return {"single": [[(P, s)] for s in range(P.shape[1])],
                        "2 draws": [[(P, 0), (P, 1)]] if P.shape[1] >= 2 else [],
                        "pair": [[(P, s), (M, s)] for s in range(S_pm)],
                        "2 pairs": [[(P, 0), (M, 0), (P, 1), (M, 1)]] if S_pm >= 2 else []}[name]

            for name, sides_per_draw in (("single", 1), ("2 draws", 2), ("pair", 2), ("2 pairs", 4)):
                uses_minus = "pair" in name
                avail = min(Pf.shape[-1], Mf.shape[-1]) if uses_minus else Pf.shape[-1]
                for nbat in sorted({1, 2, 4, 6, 8, 12} & set(range(1, avail + 1))):
                    if nbat <= nb:  # within the noise images: every draw measured there
                        ds_all, avail_n = draw_sets(name, P, M), nb
                    else:
                        ds_all, avail_n = draw_sets(name, Pf, Mf), avail
                    if not ds_all:
                        continue
                    draw_sets_n = ds_all
                    t = {k: [] for k in refs}
                    t_top, t_seed = [], []
                    for st in range(0, avail_n - nbat + 1, nbat):
                        sl = slice(st, st + nbat)
                        scs = [est([X[:, s] for X, s in ds], sl) for ds in draw_sets_n]
                        for sc in scs:
                            for k in refs:
                                t[k].append(tau(sc, refs[k]))
                            t_top.append(topk(sc, refs["all"]))
                        if len(scs) >= 2:
                            t_seed.append(tau(scs[0], scs[1]))
                    n_img = int(bsz * nbat)
                    cost = n_img * len(lv) * sides_per_draw
                    out.append(dict(stds=list_name, alpha=alpha, scheme=f"antithetic study: {name}", crn=True,
                                    samples=sides_per_draw, images=n_img, passes=cost, rel_cost=cost / official,
                                    tau_ref=None, tau_ref_min=float(np.min(t["all"])),
                                    tau_ref_held=float(np.mean(t["all"])), tau_ref_held_plus=float(np.mean(t["plus"])),
                                    tau_seed=float(np.mean(t_seed)) if t_seed else None, top10=float(np.mean(t_top)),
                                    n_subsets=len(t["all"]) // len(draw_sets_n), n_sample_sets=len(draw_sets_n)))
            model = curves.get(f"{list_name} | alpha={alpha:g} | model")
            if model:  # noise-draw error of a pair, from pair-vs-pair tau on the same images (as error_model)
                c = model["image_error_c"]
                es = [(1 + c / r["images"]) * (1 / _rho(r["tau_seed"]) - 1) for r in out
                      if r["stds"] == list_name and r["alpha"] == alpha and r["scheme"] == "antithetic study: pair"
                      and r["tau_seed"] is not None]
                if es:
                    e = float(np.mean(es))
                    model["noise_error_crn_pair"] = e
                    for n in (500, 1000, 1500, 3000, 5000, 10000, 15000):
                        cost = n * len(lv) * 2
                        out.append(dict(stds=list_name, alpha=alpha, scheme="model: noise crn antithetic pair",
                                        crn=True, samples=1, images=n, passes=cost, rel_cost=cost / official,
                                        tau_truth=2 / math.pi * math.asin(1 / math.sqrt(1 + c / n + e)),
                                        tau_ref=None, tau_seed=None, tau_ref_min=None))
    return out


def analyze(args) -> int:
    out = Path(args.out)
    C, bc, N, bn, meta, S_of = load(Path(args.records))
    stds_all = np.array(meta["stds"])
    nb = len(bn)  # noise batches
    n_cand = C.shape[0]
    # per-image mean clean loss on the noise images and on the held-out (clean-only) images
    clean_noise_imgs = C[:, :nb].sum(1) / bn.sum()
    held_C, held_n = C[:, nb:].sum(1), bc[nb:].sum()
    lists = {"paper 0.001/0.003/0.006": [list(stds_all).index(s) for s in PAPER_STDS]}
    for name, idx in (args.extra_lists or {}).items():
        lists[name] = idx
    rows, curves = [], {}
    official = OFFICIAL_IMAGES * 3
    for list_name, lv in lists.items():
        stds = stds_all[lv]
        for alpha in args.alphas:
            def score_of(L):  # L [..., K] per-image mean losses
                return fbs(L, stds, alpha)

            # reference: all noise images x all samples of both modes (2S draws per candidate) ...
            allN = np.concatenate([N["crn"], N["ind"]], axis=1)[:, :, lv, :]  # [C, 2S, K, B]
            L_all = allN.sum(-1).mean(1) / bn.sum()  # [C, K]
            ref_plain = score_of(L_all)
            # ... and the control-variate reference: clean loss on ALL clean images + mean noise delta
            delta = L_all - clean_noise_imgs[:, None]
            ref_cv = score_of(C.sum(1)[:, None] / bc.sum() + delta)
            # held-out reference: clean part only on images no subset uses (disjoint from noise images)
            ref_held = score_of(held_C[:, None] / held_n + delta) if held_n > 0 else None
            refs = {"plain": ref_plain, "cv": ref_cv}
            if ref_held is not None:
                refs["held"] = ref_held
            key = f"{list_name} | alpha={alpha:g}"
            curves[key] = {f"{a}~{b}": tau(refs[a], refs[b]) for a, b in itertools.combinations(refs, 2)}
            for mode in ("crn", "ind"):
                S = S_of[mode]
                X = N[mode][:, :, lv, :]  # [C, S, K, B]
                for m in (1, 2, 4):
                    if m > S:
                        continue
                    for nbat in sorted({1, 2, 4, 8, 16, 32, 64, nb} & set(range(1, nb + 1))):
                        n_img = int(bn[:nbat].mean() * nbat)
                        t_ref, t_held, t_cv, t_seed, t_top = [], [], [], [], []
                        starts = list(range(0, nb - nbat + 1, nbat))  # disjoint image subsets
                        sample_sets = [list(c) for c in itertools.combinations(range(S), m)]
                        for st in starts:
                            sl = slice(st, st + nbat)
                            imgs = bn[sl].sum()
                            for ss in sample_sets:
                                sc = score_of(X[:, ss, :, sl].sum(-1).mean(1) / imgs)
                                t_ref.append(tau(sc, ref_plain))
                                t_top.append(topk(sc, ref_plain))
                                t_cv.append(tau(sc, ref_cv))
                                if ref_held is not None:
                                    t_held.append(tau(sc, ref_held))
                            # (i) two disjoint sample sets on the same images: noise-seed stability
                            pairs = [(a, b) for a, b in itertools.combinations(sample_sets, 2) if not set(a) & set(b)]
                            for a, b in pairs:
                                t_seed.append(tau(score_of(X[:, a, :, sl].sum(-1).mean(1) / imgs),
                                                  score_of(X[:, b, :, sl].sum(-1).mean(1) / imgs)))
                        # two independent draws of different kinds: CRN sample s vs per-candidate sample s
                        t_cross = []
                        if m == 1 and mode == "crn":
                            Y = N["ind"][:, :, lv, :]
                            for st in starts:
                                sl = slice(st, st + nbat)
                                for s_ in range(min(S, S_of["ind"])):
                                    t_cross.append(tau(score_of(X[:, s_, :, sl].sum(-1) / bn[sl].sum()),
                                                       score_of(Y[:, s_, :, sl].sum(-1) / bn[sl].sum())))
                        cost = n_img * len(lv) * m
                        rows.append(dict(tau_crn_vs_ind=float(np.mean(t_cross)) if t_cross else None,
                                         stds=list_name, alpha=alpha, scheme="plain", crn=mode == "crn", samples=m,
                                         images=n_img, passes=cost, rel_cost=cost / official,
                                         tau_ref=float(np.mean(t_ref)), tau_ref_min=float(np.min(t_ref)),
                                         tau_ref_cv=float(np.mean(t_cv)), top10=float(np.mean(t_top)),
                                         tau_ref_held=float(np.mean(t_held)) if t_held else None,
                                         tau_seed=float(np.mean(t_seed)) if t_seed else None,
                                         n_subsets=len(starts), n_sample_sets=len(sample_sets)))
                # racing / successive halving over batches, one sample, this mode
                for first in (1, 2):
                    for keep in (0.5,):
                        t_r, t_rh, costs, t_top = [], [], [], []
                        for s in range(S):
                            for st in range(0, nb, max(1, nb // args.racing_orders)):
                                order = np.roll(np.arange(nb), -st)  # a different batch order per run
                                Xs = X[:, s][:, :, order]
                                cum = np.cumsum(Xs, axis=-1)
                                cimg = np.cumsum(bn[order])

                                def est(idx, b):
                                    return score_of(cum[idx, :, b - 1] / cimg[b - 1])

                                key_r, used = racing(est, n_cand, nb, first=first, keep=keep)
                                t_r.append(tau(key_r, ref_plain))
                                t_top.append(topk(key_r, ref_plain))
                                if ref_held is not None:
                                    t_rh.append(tau(key_r, ref_held))
                                costs.append(used)
                        used = float(np.mean(costs))
                        cost = used / n_cand * bn.mean() * len(lv)
                        rows.append(dict(stds=list_name, alpha=alpha, scheme=f"racing(first={first},keep={keep})",
                                         crn=mode == "crn", samples=1, images=int(bn.mean() * first),
                                         max_images=int(bn[:nb].sum()), passes=cost, rel_cost=cost / official,
                                         tau_ref=float(np.mean(t_r)), tau_ref_min=float(np.min(t_r)),
                                         top10=float(np.mean(t_top)),
                                         tau_ref_held=float(np.mean(t_rh)) if t_rh else None,
                                         tau_seed=None, n_subsets=len(t_r) // S, n_sample_sets=S))
            # clean-loss-only ranking (no noise) at more images: what the image count alone gives
            half = len(bc) // 2
            for nbat in [] if alpha == 0 else sorted({1, 2, 4, 8, 16, 32, 64, half} & set(range(1, half + 1))):
                t_ref, t_pair = [], []
                starts = list(range(0, len(bc) - nbat + 1, nbat))
                scs = []
                for st in starts:
                    sl = slice(st, st + nbat)
                    L = C[:, sl].sum(1) / bc[sl].sum()
                    sc = score_of(np.repeat(L[:, None], len(lv), 1))
                    scs.append(sc)
                    t_ref.append(tau(sc, ref_cv))
                for a, b in zip(scs[::2], scs[1::2]):
                    t_pair.append(tau(a, b))
                n_img = int(bc[:nbat].mean() * nbat)
                rows.append(dict(stds=list_name, alpha=alpha, scheme="clean-loss only", crn=None, samples=0,
                                 images=n_img, passes=n_img, rel_cost=n_img / official,
                                 tau_ref=None, tau_ref_cv=float(np.mean(t_ref)), tau_ref_min=float(np.min(t_ref)),
                                 tau_ref_held=None, tau_seed=None,
                                 tau_images=float(np.mean(t_pair)) if t_pair else None,
                                 n_subsets=len(starts), n_sample_sets=0))
            if alpha == 1.0:
                rows += clean_split_rows(C, bc, len(lv), list_name, alpha, official, args.racing_orders)
                model = error_model(rows, list_name, alpha, int(bc.sum()) // 2)
                if model:
                    curves[key + " | model"] = model
                    rows += model_rows(model, list_name, alpha, len(lv), official)
    rows += antithetic_rows(Path(args.records), C, bc, bn, meta, lists, args.alphas, official, curves)
    write_outputs(out, rows, curves, meta, S_of, args)
    return 0


def _rho(t: float) -> float:
    """Pearson correlation of a bivariate normal with Kendall tau t (Greiner: tau = 2/pi asin rho)."""
    return math.sin(max(min(t, 0.999), 1e-6) * math.pi / 2)


def error_model(rows, list_name, alpha, half_images):
    """Error variances relative to the spread of the true scores, fitted to the measured taus.

    Model: a candidate's estimate = truth + image error (variance c/n) + noise-draw error (variance
    e/m, the same for any number of images since one draw moves the loss of every image), all
    Gaussian and independent across candidates, so tau = 2/pi asin(rho). c comes from the clean
    half-vs-half rows (rho = 1/sqrt((1 + c/n)(1 + c/H))); e from two draws on the same images
    (they share the image error: rho = (1 + c/n) / (1 + c/n + e)), per noise kind.
    """
    cs = []
    for r in rows:
        if r["stds"] == list_name and r["alpha"] == alpha and r["scheme"] == "clean-loss split: plain":
            rho, n, h = _rho(r["tau_ref_held"]), r["images"], half_images
            # solve (1 + c/n)(1 + c/h) = 1/rho^2 for c > 0
            a_, b_, c_ = 1 / (n * h), 1 / n + 1 / h, 1 - 1 / rho ** 2
            cs.append((-b_ + math.sqrt(b_ * b_ - 4 * a_ * c_)) / (2 * a_))
    if not cs:
        return None
    c = float(np.median(cs))
    model = dict(image_error_c=c, image_error_c_each=cs)
    for kind, field_, crn in (("crn", "tau_seed", True), ("ind", "tau_seed", False), ("cross", "tau_crn_vs_ind", True)):
        es = []
        for r in rows:
            if (r["stds"] == list_name and r["alpha"] == alpha and r["scheme"] == "plain" and r["samples"] == 1
                    and r["crn"] == crn and r.get(field_) is not None):
                es.append((1 + c / r["images"]) * (1 / _rho(r[field_]) - 1))
        if es:
            model[f"noise_error_{kind}"] = float(np.mean(es))
    if "noise_error_ind" not in model and {"noise_error_crn", "noise_error_cross"} <= set(model):
        # the cross pair's error is the mean of the two kinds' errors
        model["noise_error_ind"] = 2 * model["noise_error_cross"] - model["noise_error_crn"]
    return model


def model_rows(model, list_name, alpha, n_levels, official):
    """Model-predicted tau against the TRUE ranking (infinitely many images and draws)."""
    c = model["image_error_c"]
    out = []
    kinds = [(k, model[f"noise_error_{k}"]) for k in ("crn", "ind") if f"noise_error_{k}" in model]
    if not kinds and "noise_error_cross" in model:
        kinds = [("crn/ind (from the cross pair)", model["noise_error_cross"])]
    for kind, e in kinds:
        for n in (500, 1000, 2000, 3000, 5000, 10000, 30000):
            for m in (1, 2, 4):
                rho = 1 / math.sqrt(1 + c / n + e / m)
                cost = n * n_levels * m
                out.append(dict(stds=list_name, alpha=alpha, scheme=f"model: noise {kind}", crn=kind == "crn",
                                samples=m, images=n, passes=cost, rel_cost=cost / official,
                                tau_truth=2 / math.pi * math.asin(rho), tau_ref=None, tau_seed=None,
                                tau_ref_min=None))
    return out


def clean_split_rows(C, bc, n_levels, list_name, alpha, official, racing_orders):
    """Plain vs racing on the clean loss (the alpha=1 score's dominant term), half against half.

    The clean images are split into two halves; each scheme runs on one half and is compared with
    the ranking by the other, held-out half (then the roles swap). Cost counts the images as if
    measured at ``n_levels`` stds with one noise sample, like the noisy scheme.
    """
    h = len(bc) // 2
    halves = [(slice(0, h), slice(h, 2 * h)), (slice(h, 2 * h), slice(0, h))]
    n_cand = C.shape[0]
    out = []

    def loss_rank(L):  # higher is better
        return -L

    for nbat in sorted({1, 2, 4, 8, 16, 32, 64, h} & set(range(1, h + 1))):
        t = []
        for a, b in halves:
            ref = loss_rank(C[:, b].sum(1) / bc[b].sum())
            Ca, ba = C[:, a], bc[a]
            for st in range(0, h - nbat + 1, nbat):
                sl = slice(st, st + nbat)
                t.append(tau(loss_rank(Ca[:, sl].sum(1) / ba[sl].sum()), ref))
        n_img = int(bc[:nbat].mean() * nbat)
        out.append(dict(stds=list_name, alpha=alpha, scheme="clean-loss split: plain", crn=None, samples=1,
                        images=n_img, passes=n_img * n_levels, rel_cost=n_img * n_levels / official,
                        tau_ref_held=float(np.mean(t)), tau_ref_min=float(np.min(t)), tau_ref=None, tau_seed=None,
                        n_subsets=len(t) // 2, n_sample_sets=0))
    for first in (1, 2, 4):
        if first > h:
            continue
        t, costs = [], []
        for a, b in halves:
            ref = loss_rank(C[:, b].sum(1) / bc[b].sum())
            Ca, ba = C[:, a], bc[a]
            for st in range(0, h, max(1, h // racing_orders)):
                order = np.roll(np.arange(h), -st)
                cum, cimg = np.cumsum(Ca[:, order], axis=1), np.cumsum(ba[order])
                key, used = racing(lambda idx, k: loss_rank(cum[idx, k - 1] / cimg[k - 1]), n_cand, h, first=first)
                t.append(tau(key, ref))
                costs.append(used)
        img = float(np.mean(costs)) / n_cand * bc.mean()
        out.append(dict(stds=list_name, alpha=alpha, scheme=f"clean-loss split: racing(first={first},keep=0.5)",
                        crn=None, samples=1, images=int(bc.mean() * first), max_images=int(bc[:h].sum()),
                        passes=img * n_levels, rel_cost=img * n_levels / official, tau_ref_held=float(np.mean(t)),
                        tau_ref_min=float(np.min(t)), tau_ref=None, tau_seed=None, n_subsets=len(t) // 2,
                        n_sample_sets=0))
    return out


def write_outputs(out: Path, rows, curves, meta, S, args):
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), measure=meta,
                   complete_samples_per_mode=S, official_passes_per_candidate=OFFICIAL_IMAGES * 3,
                   reference_agreement=curves, rows=rows)
    (out / "stability.json").write_text(json.dumps(summary, indent=1))
    cols = ["stds", "alpha", "scheme", "crn", "samples", "images", "passes", "rel_cost", "tau_ref", "tau_ref_cv",
            "tau_ref_held", "tau_ref_min", "tau_seed", "tau_crn_vs_ind", "tau_truth", "top10", "tau_images",
            "n_subsets", "n_sample_sets", "tau_ref_held_plus"]
    with (out / "stability.csv").open("w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + "\n")

    def fmt(v, p=3):
        return "–" if v is None else (f"{v:.{p}f}" if isinstance(v, float) else str(v))

    lines = ["| σ list | α | scheme | CRN | samples | images | passes/cand | cost vs official | τ vs ref | "
             "τ vs held-out ref | τ min | τ seed-vs-seed | τ CRN-vs-per-candidate draw | top-10 overlap |",
             "|" + "---|" * 14]
    for r in rows:
        if r["scheme"].startswith(("clean-loss", "model", "antithetic")):
            continue
        lines.append(f"| {r['stds']} | {r['alpha']:g} | {r['scheme']} | {'on' if r['crn'] else 'off'} | "
                     f"{r['samples']} | "
                     f"{r['images']} | {r['passes']:.0f} | 1/{1 / r['rel_cost']:.0f} | {fmt(r['tau_ref'])} | "
                     f"{fmt(r.get('tau_ref_held'))} | {fmt(r['tau_ref_min'])} | {fmt(r['tau_seed'])} | "
                     f"{fmt(r.get('tau_crn_vs_ind'))} | {fmt(r.get('top10'), 2)} |")
    lines += ["", "Clean validation loss only (no noise), disjoint image subsets of the clean images:", "",
              "| α | images | τ vs control-variate ref | τ between two disjoint image sets |", "|---|---|---|---|"]
    for r in rows:
        if r["scheme"] == "clean-loss only":
            lines.append(f"| {r['alpha']:g} | {r['images']} | {fmt(r['tau_ref_cv'])} | {fmt(r.get('tau_images'))} |")
    lines += ["", "Clean loss, half against held-out half (plain subsets and racing within one half; cost as if "
              "at 3 stds x 1 sample):", "", "| scheme | images (racing: first rung) | passes/cand | cost vs official | "
              "τ vs held-out half | τ min |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["scheme"].startswith("clean-loss split"):
            lines.append(f"| {r['scheme'][18:]} | {r['images']} | {r['passes']:.0f} | 1/{1 / r['rel_cost']:.0f} | "
                         f"{fmt(r['tau_ref_held'])} | {fmt(r['tau_ref_min'])} |")
    lines += ["", "Model-predicted τ against the true ranking (Gaussian errors fitted to the rows above; see "
              "`error_model` in the script):", "", "| noise | images | samples | passes/cand | cost vs official | "
              "predicted τ vs truth |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["scheme"].startswith("model"):
            lines.append(f"| {r['scheme'][13:]} | {r['images']} | {r['samples']} | {r['passes']:.0f} | "
                         f"{r['rel_cost']:.3f} | {r['tau_truth']:.3f} |")
    anti = [r for r in rows if r["scheme"].startswith("antithetic")]
    if anti:
        lines += ["", "Antithetic pairs vs single draws (CRN; held-out reference = clean loss on images no scheme uses "
                  "+ the mean noise shift over all draws measured, or over the plus sides only; see "
                  "`antithetic_rows`):", "", "| σ list | α | scheme | images | passes/cand | cost vs official | "
                  "τ vs held-out ref (all draws) | τ vs held-out ref (plus only) | τ min | τ draw-vs-draw | "
                  "top-10 overlap | subsets × draws |", "|" + "---|" * 12]
        for r in sorted(anti, key=lambda r: (r["stds"], -r["alpha"], r["passes"], r["scheme"])):
            lines.append(f"| {r['stds']} | {r['alpha']:g} | {r['scheme'][18:]} | {r['images']} | {r['passes']:.0f} | "
                         f"1/{1 / r['rel_cost']:.0f} | {fmt(r['tau_ref_held'])} | {fmt(r['tau_ref_held_plus'])} | "
                         f"{fmt(r['tau_ref_min'])} | {fmt(r['tau_seed'])} | {fmt(r['top10'], 2)} | "
                         f"{r['n_subsets']} × {r['n_sample_sets']} |")
    (out / "stability.md").write_text("\n".join(lines) + "\n")
    plot(out, rows)


def plot(out: Path, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = sorted({r["alpha"] for r in rows}, reverse=True)
    lists = list(dict.fromkeys(r["stds"] for r in rows))
    fig, axes = plt.subplots(len(lists), len(alphas), figsize=(6.5 * len(alphas), 4.8 * len(lists)), squeeze=False)
    for i, ln in enumerate(lists):
        for j, a in enumerate(alphas):
            ax = axes[i][j]
            sub = [r for r in rows if r["stds"] == ln and r["alpha"] == a and r["scheme"] == "plain"]
            for crn in (True, False):
                for m in sorted({r["samples"] for r in sub}):
                    pts = sorted((r["rel_cost"], r["tau_ref"]) for r in sub if r["crn"] == crn and r["samples"] == m)
                    if pts:
                        ax.plot(*zip(*pts), marker="o", ls="-" if crn else "--",
                                label=f"CRN {'on' if crn else 'off'}, {m} sample{'s' if m > 1 else ''}")
            for r in rows:
                if r["stds"] == ln and r["alpha"] == a and r["scheme"].startswith("racing"):
                    ax.plot(r["rel_cost"], r["tau_ref"], marker="*", ms=12, ls="none",
                            label=f"{r['scheme']}, CRN {'on' if r['crn'] else 'off'}")
            for m in (1, 2, 4):
                pts = sorted((r["rel_cost"], r["tau_truth"]) for r in rows if r["stds"] == ln and r["alpha"] == a
                             and r["scheme"] == "model: noise crn" and r["samples"] == m)
                if pts:
                    ax.plot(*zip(*pts), ls=":", color="black", alpha=0.3 + 0.2 * m / 2, marker=".",
                            label=f"model, CRN on, {m} sample(s): τ vs TRUE ranking")
            ax.axhline(0.9, color="grey", lw=0.8)
            ax.axvline(0.1, color="grey", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("forward passes / official (30k images x 3 stds, 1 draw)")
            ax.set_ylabel("Kendall τ vs reference ranking")
            ax.set_title(f"{ln}, α={a:g}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "stability.png", dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--run", default="results/flatness-stability/supernet")
    m.add_argument("--out", default="results/flatness-stability/records.jsonl")
    m.add_argument("--candidates", type=int, default=50)
    m.add_argument("--clean-images", type=int, default=3000)
    m.add_argument("--noise-images", type=int, default=1000)
    m.add_argument("--batch", type=int, default=250)
    m.add_argument("--extra-clean-images", type=int, default=None,
                   help="also measure the clean loss up to this many images (after CRN sample 1)")
    m.add_argument("--samples", type=int, default=4)
    m.add_argument("--stds", type=float, nargs="+", default=list(PAPER_STDS))
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--antithetic-samples", type=int, default=0,
                   help="measure the minus side of CRN samples 0..N-1 (antithetic pairs), see the module doc")
    m.add_argument("--ext-noise-images", type=int, default=None,
                   help="antithetic study: plus side of those samples on the images up to this count")
    m.add_argument("--anti-ext-images", type=int, default=None,
                   help="antithetic study: minus side of those samples on the images up to this count")
    m.add_argument("--only-kinds", nargs="+", help="measure only these record kinds (e.g. anti crn_ext anti_ext)")
    m.add_argument("--only-samples", type=int, nargs="+", help="with --only-kinds: only these samples")
    m.add_argument("--only-cands", type=int, nargs="+", help="measure only these candidates (indices)")
    m.add_argument("--nhwc", action="store_true", help="forward in NHWC (rounding only); marked in each record")
    m.add_argument("--extraction", choices=("identity-affine", "current"), default="identity-affine",
                   help="how candidates are extracted (identity-affine: as records.jsonl was measured)")
    a = sub.add_parser("analyze")
    a.add_argument("--records", default="results/flatness-stability/records.jsonl")
    a.add_argument("--out", default="results/flatness-stability")
    a.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.0])
    a.add_argument("--racing-orders", type=int, default=4)
    a.add_argument("--extra-lists", type=json.loads, default=None,
                   help='JSON {"name": [level indices]} of further std lists among the measured stds')
    args = ap.parse_args(argv)
    return measure(args) if args.cmd == "measure" else analyze(args)


if __name__ == "__main__":
    sys.exit(main())
