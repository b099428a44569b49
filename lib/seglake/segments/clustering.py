"""Customer clusters with Spark MLlib: the preprocessing pipeline, k chosen by silhouette, a
Gaussian mixture for soft membership, PCA for plots, profiles, names and stable cluster ids.

Everything here is a function of a features frame and ``config.clustering``; the stage
(``segments/stage.py``) reads, writes and records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.feature import PCA, Imputer, SQLTransformer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target
from scipy.optimize import linear_sum_assignment

from seglake.config import ClusteringConfig

VECTOR = "vector"
RAW = "_cluster_index"

# words for a cluster whose mean z-score of a feature is high / low (settings as data);
# features not listed here are described as "high <name>" / "low <name>"
DESCRIPTORS: dict[str, tuple[str, str]] = {
    "monetary_365d": ("high-value", "low-spend"),
    "frequency_365d": ("frequent buyers", "rare buyers"),
    "frequency_90d": ("frequent buyers", "no recent purchase"),
    "tenure_days": ("long-standing", "new"),
    "sessions_365d": ("heavy browsers", "rare visitors"),
    "sessions_90d": ("heavy browsers", "rare visitors"),
    "product_views_365d": ("product explorers", "few product views"),
    "product_views_90d": ("product explorers", "few product views"),
    "orders_per_session": ("decisive buyers", "browsing without buying"),
    "avg_basket": ("big baskets", "small baskets"),
    "coupon_share": ("discount-driven", "full-price"),
    "email_open_rate_365d": ("email-engaged", "email-cold"),
    "email_open_rate_90d": ("email-engaged", "email-cold"),
    "days_since_last_activity": ("lapsing", "recently active"),
    "days_since_last_visit": ("lapsing", "recently active"),
    "avg_session_seconds_365d": ("long visits", "short visits"),
    "pages_per_session_365d": ("deep browsing", "shallow browsing"),
    "app_preferred": ("app users", "web users"),
}


@dataclass(frozen=True)
class KScore:
    k: int
    silhouette: float
    wssse: float
    seed: int


def inputs(features: DataFrame, config: ClusteringConfig) -> DataFrame:
    """``customer_key``, ``monetary_365d`` (for revenue shares) and each configured input as a
    double, from its expression."""
    return features.select(
        "customer_key", F.coalesce(F.col("monetary_365d"), F.lit(0.0)).alias("_revenue"),
        *[F.expr(text).cast("double").alias(name) for name, text in config.features.items()])


def preprocessing(config: ClusteringConfig) -> list[Transformer]:
    """Median imputation, log1p of the skewed inputs, assembly, standardisation."""
    names = list(config.features)
    imputed = [f"_i_{n}" for n in names]
    logged = ", ".join(
        f"{f'log1p(greatest({i}, 0D))' if n in config.log_features else i} AS _x_{n}"
        for n, i in zip(names, imputed, strict=True))
    return [
        Imputer(strategy="median", inputCols=names, outputCols=imputed),
        SQLTransformer(statement=f"SELECT *, {logged} FROM __THIS__"),
        VectorAssembler(inputCols=[f"_x_{n}" for n in names], outputCol="_unscaled"),
        StandardScaler(inputCol="_unscaled", outputCol=VECTOR, withMean=True, withStd=True),
    ]


def clusterer(config: ClusteringConfig, k: int, seed: int | None = None):
    """The configured assignment estimator (K-means or bisecting K-means) for ``k``."""
    kind = KMeans if config.algorithm == "kmeans" else BisectingKMeans
    return kind(k=k, seed=config.seed if seed is None else seed, maxIter=config.max_iter,
                featuresCol=VECTOR, predictionCol=RAW)


def cluster_sums(x: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, sum of the rows' vectors) per cluster index 0..k-1."""
    sums = np.stack([np.bincount(index, weights=x[:, d], minlength=k)
                     for d in range(x.shape[1])], axis=1)
    return np.bincount(index, minlength=k), sums


def squared_distances(x: np.ndarray, centers: np.ndarray,
                      norms: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distance of every row of ``x`` to every center (``norms``: the rows'
    squared norms, when already at hand)."""
    norms = (x ** 2).sum(axis=1) if norms is None else norms
    return norms[:, None] - 2 * x @ centers.T + (centers ** 2).sum(axis=1)[None, :]


def driver_kmeans(x: np.ndarray, k: int, seed: int, max_iter: int,
                  tol: float = 1e-4) -> tuple[np.ndarray, float]:
    """K-means (k-means++ seeding, Lloyd) on the driver: (labels, cost). The k search runs on
    a bounded sample, where a Spark job per iteration would be nearly all latency."""
    rng = np.random.default_rng(seed)
    n = len(x)
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    nearest = ((x - centers[0]) ** 2).sum(axis=1)
    for i in range(1, k):
        total = nearest.sum()
        centers[i] = x[rng.choice(n, p=nearest / total) if total > 0 else rng.integers(n)]
        nearest = np.minimum(nearest, ((x - centers[i]) ** 2).sum(axis=1))
    norms = (x ** 2).sum(axis=1)
    for _ in range(max_iter + 1):
        distances = squared_distances(x, centers, norms)
        labels = distances.argmin(axis=1)
        sizes, sums = cluster_sums(x, labels, k)
        moved = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centers)
        if np.abs(moved - centers).max() <= tol:
            break
        centers = moved
    cost = float(np.maximum(distances[np.arange(n), labels], 0.0).sum())
    return labels, cost


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with squared Euclidean distances, as Spark's ClusteringEvaluator
    computes it (from per-cluster sums: linear in the rows)."""
    ids = np.unique(labels)
    if len(ids) < 2:
        return 0.0
    index = np.searchsorted(ids, labels)
    counts, sums = cluster_sums(x, index, len(ids))
    counts = counts.astype(float)
    square_sums = np.bincount(index, weights=(x ** 2).sum(axis=1))
    norms = (x ** 2).sum(axis=1)
    mean_distance = norms[:, None] + (square_sums / counts)[None, :] - 2 * (x @ sums.T) / counts
    rows = np.arange(len(x))
    own = counts[index]
    a = mean_distance[rows, index] * own / np.maximum(own - 1, 1)
    others = mean_distance.copy()
    others[rows, index] = np.inf
    b = others.min(axis=1)
    s = np.where(a < b, 1 - a / np.where(b > 0, b, 1), np.where(a > b, b / np.where(a > 0, a, 1)
                                                               - 1, 0.0))
    return float(np.where(own > 1, s, 0.0).mean())


def sample_vectors(vectors: DataFrame) -> tuple[list[str], np.ndarray]:
    """The customer keys and scaled vectors of the fit sample (at most
    ``clustering.fit_sample`` rows), collected once for the driver's k search and refits."""
    rows = vectors.select("customer_key", VECTOR).collect()
    return [r["customer_key"] for r in rows], np.array([r[VECTOR].toArray() for r in rows])


def k_scores(x: np.ndarray, config: ClusteringConfig) -> list[KScore]:
    """Silhouette and within-cluster sum of squares for every k of the configured range, each
    of the best of ``config.starts`` seeds by WSSSE; computed on the driver from the fit
    sample's vectors."""
    seeds = range(config.seed, config.seed + config.starts)
    scores = []
    for k in range(config.k_min, config.k_max + 1):
        fits = [(*driver_kmeans(x, k, seed, config.max_iter), seed) for seed in seeds]
        labels, cost, seed = min(fits, key=lambda fit: (fit[1], fit[2]))
        scores.append(KScore(k, silhouette(x, labels), cost, seed))
    return scores


def best_fit(vectors: DataFrame, config: ClusteringConfig, k: int):
    """The lowest-WSSSE Spark fit at ``k`` of ``config.starts`` seeds (bisecting K-means is
    deterministic: one)."""
    seeds = range(config.seed, config.seed + (config.starts if config.algorithm == "kmeans"
                                              else 1))

    def fit(seed: int) -> tuple[float, int, Any]:
        model = clusterer(config, k, seed=seed).fit(vectors)
        return float(model.summary.trainingCost), seed, model

    # each small fit is mostly job latency: Spark runs the jobs of parallel fits side by side;
    # the threads carry the caller's Spark thread properties, as CrossValidator's do
    with ThreadPoolExecutor(config.parallelism) as pool:
        return min(pool.map(inheritable_thread_target(fit), seeds), key=lambda f: f[:2])[2]


def best_k(scores: Sequence[KScore]) -> KScore:
    """Highest silhouette; ties go to the smaller k."""
    return max(scores, key=lambda s: (s.silhouette, -s.k))


def kept_pipeline(preprocessing: PipelineModel, model: Transformer,
                  vectors: DataFrame) -> PipelineModel:
    """The fitted preprocessing + the kept clusterer + PCA to 2-D, as one persisted model."""
    pca = PCA(k=2, inputCol=VECTOR, outputCol="_pca").fit(vectors)
    return PipelineModel(stages=[*preprocessing.stages, model, pca])


def mixture(vectors: DataFrame, config: ClusteringConfig, k: int):
    return GaussianMixture(k=k, seed=config.seed, maxIter=config.max_iter, featuresCol=VECTOR,
                           predictionCol="_gmm_index", probabilityCol="_gmm_probability") \
        .fit(vectors)


def centers(model: PipelineModel) -> np.ndarray:
    return np.array([np.asarray(c) for c in model.stages[-2].clusterCenters()])


def matched_ids(current: np.ndarray, previous: dict[int, np.ndarray]) -> list[int]:
    """Stable id of each current cluster: the previous cluster with the nearest centroid
    (a one-to-one assignment minimising total distance), else the next unused id."""
    ids: list[int | None] = [None] * len(current)
    if previous:
        keys = sorted(previous)
        old = np.array([previous[key] for key in keys])
        cost = np.linalg.norm(current[:, None, :] - old[None, :, :], axis=2)
        for row, col in zip(*linear_sum_assignment(cost), strict=True):
            ids[row] = keys[col]
    fresh = max(previous, default=-1) + 1
    for i, found in enumerate(ids):
        if found is None:
            ids[i] = fresh
            fresh += 1
    return [int(i) for i in ids]


def centroids(assigned: DataFrame, cluster: str) -> dict[int, np.ndarray]:
    """Mean vector of each cluster of ``assigned`` (``cluster``, ``vector`` columns)."""
    rows = assigned.groupBy(cluster).agg(Summarizer.mean(F.col(VECTOR)).alias("mean")) \
        .collect()
    return {int(r[cluster]): np.asarray(r["mean"]) for r in rows}


def relabelled(column: str, ids: Sequence[int]) -> F.Column:
    """``column`` (0..k-1) mapped to the stable ids."""
    return F.element_at(F.array(*[F.lit(i) for i in ids]), F.col(column) + 1)


def mixture_probabilities(gmm, kmeans_centers: np.ndarray, ids: Sequence[int]) -> F.Column:
    """Each customer's mixture probabilities as a map stable cluster id -> probability; the
    mixture's components are matched to the K-means clusters by their means."""
    means = np.array([np.asarray(g.mean) for g in gmm.gaussians])
    cost = np.linalg.norm(kmeans_centers[:, None, :] - means[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    probs = vector_to_array(F.col("_gmm_probability"))
    return F.map_from_arrays(F.array(*[F.lit(ids[r]) for r in rows]),
                             F.array(*[probs[int(c)] for c in cols]))


def adjusted_rand_index(df: DataFrame, a: str, b: str) -> float:
    """ARI of two labelings (columns ``a`` and ``b``); only the contingency table (one cell
    per pair of labels) reaches the driver."""
    cells = df.groupBy(a, b).agg(F.count(F.lit(1)).alias("n")).collect()
    rows = {v: i for i, v in enumerate(sorted({r[a] for r in cells}, key=str))}
    cols = {v: i for i, v in enumerate(sorted({r[b] for r in cells}, key=str))}
    table = np.zeros((len(rows), len(cols)))
    for r in cells:
        table[rows[r[a]], cols[r[b]]] = r["n"]
    return contingency_ari(table)


def contingency_ari(cells: np.ndarray) -> float:
    """Adjusted Rand index from the contingency table of two labelings (rows: one labeling's
    labels, columns: the other's, cells: rows labelled both ways)."""
    def pairs(n: np.ndarray) -> float:
        return float((n * (n - 1) / 2).sum())
    index, rows, cols = pairs(cells), pairs(cells.sum(axis=1)), pairs(cells.sum(axis=0))
    n = cells.sum()
    total = n * (n - 1) / 2
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2
    return 1.0 if maximum == expected else float((index - expected) / (maximum - expected))


def pair_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same rows held on the driver."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    cells = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(cells, (a, b), 1)
    return contingency_ari(cells)


def bootstrap_ari(x: np.ndarray, kept: np.ndarray, config: ClusteringConfig,
                  k: int) -> list[float]:
    """ARI between the kept assignment of the fit sample and K-means refits (each the best of
    ``config.starts`` seeds, as the kept model is) on bootstrap samples of it, each predicting
    the whole sample; on the driver, like the k search."""
    out = []
    for run in range(config.bootstrap_runs):
        seed = config.seed + 1 + run
        drawn = x[np.random.default_rng(seed).integers(len(x), size=len(x))]
        labels, _ = min((driver_kmeans(drawn, k, seed * 1000 + start, config.max_iter)
                         for start in range(config.starts)), key=lambda fit: fit[1])
        sizes, sums = cluster_sums(drawn, labels, k)
        centers = sums[sizes > 0] / sizes[sizes > 0, None]
        refit = squared_distances(x, centers).argmin(axis=1)
        out.append(pair_agreement(kept, refit))
    return out


def profiles(assigned: DataFrame, names: Sequence[str]) -> list[dict]:
    """Per cluster: customers, revenue, and the mean z-score of each input (``_z_<name>``
    columns of the scaled vector)."""
    z = vector_to_array(F.col(VECTOR))
    rows = assigned.groupBy("cluster").agg(
        F.count(F.lit(1)).alias("customers"), F.sum("_revenue").alias("revenue"),
        *[F.avg(z[i]).alias(n) for i, n in enumerate(names)]).orderBy("cluster").collect()
    total = sum(r["customers"] for r in rows) or 1
    revenue = sum(r["revenue"] or 0.0 for r in rows) or 1.0
    return [{"cluster": r["cluster"], "customers": r["customers"],
             "share": r["customers"] / total, "revenue": float(r["revenue"] or 0.0),
             "revenue_share": float(r["revenue"] or 0.0) / revenue,
             "z": {n: float(r[n]) for n in names}} for r in rows]


def cluster_name(z: dict[str, float], threshold: float, words: int = 2) -> str:
    """The ``words`` strongest traits (|mean z| ≥ ``threshold``) of a profile, in words."""
    traits = sorted(((abs(v), n, v) for n, v in z.items() if abs(v) >= threshold),
                    reverse=True)[:words]
    if not traits:
        return "average"
    said = []
    for _, n, v in traits:
        high, low = DESCRIPTORS.get(n, (f"high {n}", f"low {n}"))
        said.append(high if v > 0 else low)
    return ", ".join(said)


def cluster_names(profiles: Iterable[dict], threshold: float) -> dict[int, str]:
    """A distinct name per cluster: more traits where two would read the same, then the id."""
    profiles = list(profiles)
    names = {p["cluster"]: cluster_name(p["z"], threshold) for p in profiles}
    for p in profiles:
        clash = [q for q in profiles if names[q["cluster"]] == names[p["cluster"]]]
        if len(clash) > 1:
            for q in clash:
                names[q["cluster"]] = cluster_name(q["z"], threshold, words=3)
    seen: dict[str, int] = {}
    for cluster in sorted(names):
        seen[names[cluster]] = seen.get(names[cluster], 0) + 1
        if seen[names[cluster]] > 1:
            names[cluster] = f"{names[cluster]} ({cluster})"
    return names
