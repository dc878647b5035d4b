"""Benchmark: scoring leads x reps with precomputed affinity representations.

Prints, for each factor size, the scores per second of the chunked ``affinity`` of the
LightFM engine (lead representation from sparse features + one GEMM per chunk) next to a
bare numpy ``A @ B.T`` of the same shape and dtype measured in the same run, then
``LightFM.predict`` on a small slice for the speedup, and checks the ranks agree.

Run: ``python bench/bench_affinity.py [--leads 200000] [--reps 1000] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommender.models.affinity import RepAffinity, row_normalise
from recommender.models.affinity_lightfm import LightFMAffinity


def lead_matrix(n: int, rng: np.random.Generator, fields: tuple[int, ...]) -> sp.csr_matrix:
    """One-hot lead features: one value per field, ``sum(fields)`` columns."""
    offsets = np.cumsum((0, *fields[:-1]))
    cols = np.stack([o + rng.integers(f, size=n) for o, f in zip(offsets, fields, strict=True)], 1)
    rows = np.repeat(np.arange(n), len(fields))
    return sp.csr_matrix(
        (np.ones(cols.size, dtype=np.float32), (rows, cols.ravel())), shape=(n, sum(fields))
    )


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest wall time (seconds) of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_size(
    x: sp.csr_matrix, n_reps: int, d: int, threads: int, rng: np.random.Generator
) -> None:
    """Fit a LightFM engine with ``d`` factors and print its scoring figures."""
    n_train = 20_000
    eng = LightFMAffinity(n_components=d, epochs=5, n_threads=threads).fit(
        rng.integers(n_reps, size=n_train),
        np.arange(n_train),
        (rng.random(n_train) < 0.3).astype(float),
        x,
        n_reps=n_reps,
    )
    n = x.shape[0]
    lead = eng.lead_embeddings(x)
    reps = np.ascontiguousarray(eng.rep_embeddings())
    # Interleaved repeats, best of each: the machine is shared, so alternate the runs.
    t_gemm, t_ours, t_stream = (
        min(ts)
        for ts in zip(
            *(
                (
                    best_of(lambda: lead @ reps.T, 1),
                    best_of(lambda: eng.affinity(x, chunk_size=65536), 1),
                    best_of(lambda: sum(1 for _ in RepStream(eng, x)), 1),
                )
                for _ in range(5)
            ),
            strict=True,
        )
    )
    pairs = n * n_reps
    print(
        f"d={d:3d} shape {n}x{n_reps}x{d + 2}: "
        f"bare numpy GEMM {pairs / t_gemm / 1e6:8.1f} M scores/s ({t_gemm:.3f} s) | "
        f"chunked affinity from features {pairs / t_ours / 1e6:8.1f} M scores/s "
        f"({t_ours:.3f} s) = {100 * t_gemm / t_ours:5.1f} % of bare | "
        f"streamed chunks, no full matrix {pairs / t_stream / 1e6:8.1f} M scores/s "
        f"= {100 * t_gemm / t_stream:5.1f} %"
    )
    check_against_predict(eng, x[:1000], n_reps, threads)


class RepStream:
    """Iterate over row-chunks of affinity without keeping them (bounded memory)."""

    def __init__(self, eng: LightFMAffinity, x: sp.csr_matrix) -> None:
        self.eng, self.x = eng, x

    def __iter__(self):  # type: ignore[no-untyped-def]
        from recommender.models.affinity import iter_chunked_scores

        reps = self.eng.rep_embeddings()
        for _rows, block in iter_chunked_scores(self.x, self.eng.lead_embeddings, reps):
            yield block.shape[0]


def check_against_predict(
    eng: LightFMAffinity, x: sp.csr_matrix, n_reps: int, threads: int
) -> None:
    """Time LightFM.predict on a slice and compare its ranks with ours."""
    lfm = eng.to_lightfm()
    items = row_normalise(x)
    users = np.repeat(np.arange(n_reps, dtype=np.int32), x.shape[0])
    leads = np.tile(np.arange(x.shape[0], dtype=np.int32), n_reps)
    t = time.perf_counter()
    ref = (
        lfm.predict(
            users, leads, user_features=eng.user_features_, item_features=items, num_threads=threads
        )
        .reshape(n_reps, x.shape[0])
        .T
    )
    t_pred = time.perf_counter() - t
    t_ours = best_of(lambda: eng.affinity(x))
    ours = eng.affinity(x)
    same_top = np.mean(np.argmax(ours, axis=1) == np.argmax(ref, axis=1))
    rank_ours = np.argsort(np.argsort(-ours, axis=1), axis=1)
    rank_ref = np.argsort(np.argsort(-ref, axis=1), axis=1)
    print(
        f"      LightFM.predict {x.shape[0]}x{n_reps}: {ours.size / t_pred / 1e6:6.2f} M scores/s;"
        f" ours {ours.size / t_ours / 1e6:8.1f} M scores/s = {t_pred / t_ours:6.0f}x faster;"
        f" max |diff| {np.max(np.abs(ours - ref)):.2e}; same best rep {100 * same_top:.2f} %;"
        f" identical full rank {100 * np.mean(rank_ours == rank_ref):.3f} % of cells"
    )


def bench_combiner(x: sp.csr_matrix, n_reps: int, threads: int, rng: np.random.Generator) -> None:
    """Throughput of RepAffinity.iter_proba (GEMM + offset + sigmoid per chunk)."""
    m = 20_000
    rep = rng.integers(n_reps, size=m)
    seg = np.asarray(x[:m, :8].argmax(axis=1)).ravel()
    aff = rng.normal(0, 1, (n_reps, 8))
    y = (rng.random(m) < 1 / (1 + np.exp(1.0 - aff[rep, seg]))).astype(float)
    model = RepAffinity(n_components=16, epochs=5, n_threads=threads).fit(
        rep, np.arange(m), y, np.full(m, -1.0), x, None, n_reps=n_reps
    )
    base = np.full(x.shape[0], -1.0)
    t = best_of(lambda: sum(b.shape[0] for b in model.iter_proba(base, x, 65536)), 2)
    print(
        f"RepAffinity.iter_proba {x.shape[0]}x{n_reps}: {x.shape[0] * n_reps / t / 1e6:.1f} "
        f"M probabilities/s ({t:.3f} s; strength {model.strength_:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = lead_matrix(args.leads, rng, (8, 6, 12, 20))
    with threadpool_limits(limits=args.threads):
        print(f"{args.leads} leads x {args.reps} reps, float32, {args.threads} threads")
        for d in (16, 64):
            bench_size(x, args.reps, d, args.threads, rng)
        bench_combiner(x, args.reps, args.threads, rng)


if __name__ == "__main__":
    main()
