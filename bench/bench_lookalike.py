"""Benchmark of recommender.lookalike against bare FAISS, measured in the same run.

For two synthetic catalogues (a Gaussian mixture, which is what learned embeddings look
like, and isotropic Gaussian noise, the worst case), prints build time (``--build-threads``
threads), single-query latency p50/p99 (``--threads`` threads, one query at a time) and
recall@k against exact search, for: bare ``IndexFlatIP``, bare ``IndexIVFFlat`` with the
same nlist / training sample as ours searched with our two tuned nprobes (single-seed /
multi-seed), and ``LookalikeIndex`` (its chosen kind) through ``query_vector`` (raw
vectors; includes the whitening, id mapping and exact re-scoring) and through ``query``
(seed ids, the product path; the seeds are left out of the results and of the truth).

Latency and recall are measured on two query sets: ``rows`` (catalogue rows, one seed:
the single-seed width) and ``mix4`` (normalised mean of 4 random rows: a centroid query
over mixed seeds, the hard case: the multi-seed width).
Everything is measured in the index's own space (``--space``: ``whitened``, the default,
or ``cosine``): the bare FAISS indexes and the exact truth are built on the
``LookalikeIndex``'s stored rows (``embeddings_``), and ours is queried with raw vectors
through ``query_vector`` (which maps them into that space).

Then compares the seed-combination methods (centroid, contrast, max) on the mixture:
seeds drawn from planted clusters, hit rate = share of the top-k results that belong to the
seeds' clusters (the seeds themselves never count).

    python bench/bench_lookalike.py --n 1000000 --d 64 --threads 1

Measured on 2026-11-23 before the multi-seed width (this 2-core machine, shared;
--build-threads 1 --threads 1; one nprobe for every query, tuned on rows and centroids
together): n=1,000,000 whitened: nprobe 42, build 21.0 s (bare IVF 13.4 s), p50 0.67 ms,
p99 0.86 ms, recall@100 rows / mix4 0.998 / 0.897. Seed methods on the planted mixture
(hit rate, 10 seeds of one cluster / 12 of three / 8 + 2 noise, offset 1.0): whitened
0.743 / 0.323 / 0.581 for centroid = contrast, cosine 0.966 / 0.583 / 0.797 for contrast.

Measured on 2026-11-23 with separate single-seed / multi-seed widths, quiet machine
(default --build-threads 2 --threads 1), n=1,000,000 whitened structured, nprobe 18 / 67,
--queries 1000, two runs; only the product call is timed (ids are mapped back to rows
for recall afterwards):
build 14.8 / 15.3 s (bare IVF same run 10.4 / 9.4 s);
query_vector rows p50 0.31 / 0.30 ms, p99 0.61 / 0.46 ms (bare IVF p99 0.32);
mix4 p50 0.67 / 0.72 ms, p99 0.84 / 0.91 ms (bare IVF at nprobe 67: p99 0.72 / 0.74);
query by ids (seeds left out): rows p99 0.46 / 0.49 ms, mix4 p99 0.90 / 0.93 ms;
recall@100 rows / mix4: query_vector 0.946 / 0.959, by ids 0.945 / 0.958 (bare IVF
0.945 / 0.958; with one width for both kinds: 0.998 / 0.897).
Seed methods (earlier run on a loaded machine; the 200k mixture fell back to exact
search): whitened 0.730 / 0.307 / 0.632 for centroid = contrast, max 0.168 / 0.231 / 0.119.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from recommender.lookalike import METHODS, SPACES, LookalikeIndex, lift_at


def mixture(
    n: int, d: int, clusters: int, offset: float, rng: np.random.Generator, separation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture: uneven cluster sizes and spreads, plus a shared direction.

    ``offset`` is the norm of the direction every centre shares, relative to a centre's
    own norm (learned embeddings are anisotropic: they share a mean direction);
    ``separation`` scales the centres (smaller: clusters overlap more).
    Returns (embeddings float32 (n, d), cluster label per row).
    """
    centres = separation * rng.standard_normal((clusters, d)).astype(np.float32)
    shared = rng.standard_normal(d).astype(np.float32)
    centres += offset * separation * np.sqrt(d) * shared / np.linalg.norm(shared)
    sizes = rng.dirichlet(np.full(clusters, 2.0))
    labels = rng.choice(clusters, size=n, p=sizes)
    spread = rng.uniform(0.4, 0.9, size=clusters).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 200_000):
        part = labels[start : start + 200_000]
        noise = rng.standard_normal((len(part), d), dtype=np.float32)
        x[start : start + len(part)] = centres[part] + noise * spread[part, None]
    return x, labels


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, float32."""
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def latency(search: Callable[[Any], object], queries: Sequence[Any]) -> tuple[float, float]:
    """p50 and p99 in ms of ``search`` called one query at a time (after 5 warm-up calls)."""
    for q in queries[:5]:
        search(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each truth row (row ids) found in the matching ``found`` row."""
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]))


def truth_without(
    xn: np.ndarray, queries: np.ndarray, seeds: Sequence[np.ndarray], k: int
) -> np.ndarray:
    """Exact top-``k`` rows per query with that query's ``seeds`` left out (row ids)."""
    extra = max(len(s) for s in seeds)
    found = faiss.knn(queries, xn, k + extra, metric=faiss.METRIC_INNER_PRODUCT)[1]
    return np.stack([f[~np.isin(f, s)][:k] for f, s in zip(found, seeds)])


def bench_case(name: str, x: np.ndarray, args: argparse.Namespace) -> None:
    """Build every index on ``x``, time and measure it, print one table."""
    n, d = x.shape
    k = args.k
    rng = np.random.default_rng(args.seed + 1)
    ids = np.char.add("a", np.arange(n).astype(str))
    faiss.omp_set_num_threads(args.build_threads)
    start = time.perf_counter()
    ours = LookalikeIndex(n_threads=args.build_threads, seed=args.seed, space=args.space).fit(
        ids.tolist(), x
    )
    ours_build = time.perf_counter() - start
    xn = ours.embeddings_  # the index space: whitened or normalised rows
    picked = rng.choice(n, size=args.queries, replace=False)
    groups = [rng.choice(n, 4, replace=False) for _ in picked]
    rows_q = normalise(xn[picked])
    mix_q = normalise(np.stack([xn[g].mean(0) for g in groups]))
    # the same queries as raw vectors for query_vector (transform is affine for whitened)
    raw_rows = x[picked]
    raw_mix = np.stack([(x if args.space == "whitened" else xn)[g].mean(0) for g in groups])
    raw_of = {"rows": raw_rows, "mix4": raw_mix}
    truth = {
        qs: faiss.knn(q, xn, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
        for qs, q in (("rows", rows_q), ("mix4", mix_q))
    }
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(xn)
    flat_build = time.perf_counter() - start

    nlist = max(1, round(4 * np.sqrt(n)))
    nprobe = ours.nprobe_ or max(1, int(ours.max_scan_fraction * nlist))
    start = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter, ivf.cp.spherical, ivf.cp.max_points_per_centroid = 10, True, 40
    ivf.train(xn[rng.choice(n, size=min(n, 40 * nlist), replace=False)])
    ivf.add(xn)
    ivf_build = time.perf_counter() - start
    ivf.nprobe = nprobe

    faiss.omp_set_num_threads(args.threads)
    ours.n_threads = args.threads
    row_of = {s: i for i, s in enumerate(ids.tolist())}
    multi = ours.nprobe_multi_ or nprobe
    bare_q = {"rows": rows_q, "mix4": mix_q}

    def ivf_search(width: int) -> Callable[[np.ndarray], np.ndarray]:
        params = faiss.SearchParametersIVF()
        params.nprobe = width
        return lambda q: ivf.search(q[None, :], k, params=params)[1][0]

    # Timed: the product call alone. Its ids are mapped back to rows for recall afterwards
    # (a lookup in a 1M-key dict that cost about 0.1 ms a query when it was timed too).
    def ours_search(n_seeds: int) -> Callable[[np.ndarray], Any]:
        return lambda q: ours.query_vector(q, k, n_seeds=n_seeds)

    def rows_of(results: Any) -> np.ndarray:
        if isinstance(results, np.ndarray):  # a bare FAISS search: rows already
            return results
        return np.array([row_of[i] for i, _ in results])

    def flat_search(q: np.ndarray) -> np.ndarray:
        return np.asarray(flat.search(q[None, :], k)[1][0])

    widths = f"nprobe={ours.nprobe_}/{ours.nprobe_multi_}" if ours.nprobe_ else ""
    table: list[tuple[str, float, dict[str, tuple[float, float, float]]]] = []
    for label, build, searches, queries in (
        ("faiss IndexFlatIP", flat_build, (flat_search, flat_search), bare_q),
        (
            f"faiss IndexIVFFlat nlist={nlist} nprobe={nprobe}/{multi}",
            ivf_build,
            (ivf_search(nprobe), ivf_search(multi)),
            bare_q,
        ),
        (
            f"LookalikeIndex.query_vector ({ours.kind_} {widths})",
            ours_build,
            (ours_search(1), ours_search(4)),
            raw_of,
        ),
    ):
        cells = {}
        for (qs, q_), search in zip(queries.items(), searches):
            found = np.stack([rows_of(search(q)) for q in q_])
            cells[qs] = (*latency(search, q_), recall(found, truth[qs]))
        table.append((label, build, cells))

    # The product path: seeds by id, left out of the results (and of the exact truth).
    seeds_of = {"rows": [np.array([r]) for r in picked], "mix4": groups}
    q_of = {"rows": rows_q, "mix4": mix_q}
    cells = {}
    for qs, seed_rows in seeds_of.items():
        id_lists = [ids[s_].tolist() for s_ in seed_rows]
        want = truth_without(xn, q_of[qs], seed_rows, k)

        def by_ids(seeds: list[str]) -> Any:
            return ours.query(seeds, k, method="centroid")

        found = np.stack([rows_of(by_ids(s_)) for s_ in id_lists])
        cells[qs] = (*latency(by_ids, id_lists), recall(found, want))
    table.append(("LookalikeIndex.query (ids, seeds left out)", ours_build, cells))

    print(
        f"\n## {name}: n={n:,} d={d} k={k}, space {args.space}, "
        f"build {args.build_threads} threads, "
        f"queries {args.threads} thread(s), {args.queries} queries"
    )
    print(
        f"LookalikeIndex: kind={ours.kind_} tuned recall_={ours.recall_:.3f} "
        f"nprobe single/multi={ours.nprobe_}/{ours.nprobe_multi_} fallback={ours.fallback_}"
    )
    print("latency in ms, one query at a time; rows = 1 seed, mix4 = centroid of 4 rows")
    print(
        f"{'index':<50} {'build s':>7} {'rows p50':>8} {'p99':>6} {'mix4 p50':>8} {'p99':>6} "
        f"{'R@k rows':>8} {'R@k mix4':>8}"
    )
    for label, build, c in table:
        print(
            f"{label:<50} {build:7.2f} {c['rows'][0]:8.3f} {c['rows'][1]:6.3f} "
            f"{c['mix4'][0]:8.3f} {c['mix4'][1]:6.3f} {c['rows'][2]:8.3f} {c['mix4'][2]:8.3f}"
        )


def bench_methods(args: argparse.Namespace) -> None:
    """Hit rate of centroid / contrast / max for seeds drawn from planted clusters."""
    n = min(args.n, args.methods_n)
    print(
        f"\n## seed-combination methods: mixture n={n:,}, {args.clusters} clusters, "
        f"separation {args.method_separation}, k={args.k}"
    )
    print("hit rate = share of the top-k in the seeds' cluster(s), seeds not counted")
    print(f"{'offset':>6} {'scenario':<22} " + " ".join(f"{m:>9}" for m in METHODS))
    for offset in (0.0, 1.0):
        rng = np.random.default_rng(args.seed + 2)
        x, labels = mixture(n, args.d, args.clusters, offset, rng, args.method_separation)
        ids = np.char.add("a", np.arange(n).astype(str))
        index = LookalikeIndex(n_threads=args.build_threads, seed=args.seed, space=args.space).fit(
            ids.tolist(), x
        )
        sizes = np.bincount(labels, minlength=args.clusters)
        big = np.flatnonzero(sizes >= args.k + 50)
        scenarios = {
            "10 seeds, 1 cluster": (1, 10, 0),
            "12 seeds, 3 clusters": (3, 4, 0),
            "8 + 2 noise seeds": (1, 8, 2),
        }
        for scenario, (n_clusters, per_cluster, noise) in scenarios.items():
            hits: dict[str, list[float]] = {m: [] for m in METHODS}
            for _ in range(args.method_trials):
                chosen = rng.choice(big, size=n_clusters, replace=False)
                seeds = np.concatenate(
                    [
                        rng.choice(np.flatnonzero(labels == c), per_cluster, replace=False)
                        for c in chosen
                    ]
                    + [rng.choice(n, noise, replace=False)]
                )
                targets = set(ids[np.isin(labels, chosen)].tolist()) - set(ids[seeds].tolist())
                for m in METHODS:
                    got = [i for i, _ in index.query(ids[seeds].tolist(), args.k, method=m)]
                    hits[m].append(float(np.mean([i in targets for i in got])))
            print(
                f"{offset:6.1f} {scenario:<22} "
                + " ".join(f"{np.mean(hits[m]):9.3f}" for m in METHODS)
            )
        # One realistic ranking check with lift_at: rank the whole catalogue by centroid.
        c = big[0]
        seeds = rng.choice(np.flatnonzero(labels == c), 10, replace=False)
        order = [i for i, _ in index.query(ids[seeds].tolist(), n, method="centroid")]
        lift = lift_at(order, set(ids[labels == c].tolist()), 0.1)
        print(
            f"{offset:6.1f} lift_at(full centroid ranking, cluster, 10%) = {lift:.2f} "
            f"(kind {index.kind_})"
        )


def main() -> None:
    """Parse arguments, run both cases and the method comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="query threads")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods-n", type=int, default=200_000)
    parser.add_argument("--method-trials", type=int, default=30)
    parser.add_argument("--method-separation", type=float, default=0.35)
    parser.add_argument("--skip-unstructured", action="store_true")
    parser.add_argument("--space", choices=SPACES, default="whitened")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x, _ = mixture(args.n, args.d, args.clusters, 0.0, rng)
    bench_case("structured (Gaussian mixture)", x, args)
    del x
    if not args.skip_unstructured:
        x = rng.standard_normal((args.n, args.d), dtype=np.float32)
        bench_case("unstructured (isotropic Gaussian)", x, args)
        del x
    if args.methods_n > 0:  # --methods-n 0 skips the seed-combination section
        bench_methods(args)


if __name__ == "__main__":
    main()
