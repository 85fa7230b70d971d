"""The theme model: spectral clustering into fine clusters, merged into themes; nearest-centroid assignment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from copilot.tasks.nps_themes.models import ThemeError

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

    from copilot.store.models import NpsThemeRun

FIT_SAMPLE = 10_000  # distinct sentences the clustering is fitted on; everything else is assigned
FINE_CLUSTERS = 40
MIN_FINE_SIZE = 6  # fewer fine clusters on small inputs, so that their centroids average several sentences
NEIGHBOURS = 15  # 10-30 measured on SemEval-2015 ABSA (torch and ONNX int8 vectors): within seed noise
MIN_NEIGHBOURS = 4
MERGE_DISTANCE = 0.45  # cosine distance between fine-cluster centroids (average linkage) below which they merge
# Up to this many distinct sentences every sentence is its own fine cluster (a spectral step would make clusters
# of a few unrelated sentences), and sentences merge up to POINT_MERGE_DISTANCE (average linkage between sentences).
# Measured on the demo's 53 distinct NPS sentences (9 topics): NMI 0.63 -> 0.73, purity 0.62 -> 0.82; on the golden
# suite's 38 Ledgerly comments (6 topics) 0.70 keeps the 6 topics apart where 0.75 merges them into 4.
SMALL_INPUT = 200
POINT_MERGE_DISTANCE = 0.7
MIN_THEME_SHARE = 0.01  # automatic mode: smaller themes fold into their nearest theme
MAX_AUTO_THEMES = 20  # automatic mode: more than this is not a readable dashboard; merge further up the same tree
ASSIGN_BLOCK = 65_536


def normalise(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)


@dataclass
class ThemeModel:
    """Fine-cluster centroids and the theme each belongs to: all that assigning a sentence needs."""

    centroids: np.ndarray  # (fine clusters, dimensions) float32, unit length
    theme_of: np.ndarray  # (fine clusters,) theme id, themes numbered by size in the fitted sample
    k_mode: str = "auto"

    @property
    def k(self) -> int:
        return int(self.theme_of.max()) + 1 if len(self.theme_of) else 0

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per vector: theme, fine cluster and cosine similarity to that cluster's centroid."""
        fine = np.empty(len(vectors), dtype=np.int64)
        similarity = np.empty(len(vectors), dtype=np.float32)
        for start in range(0, len(vectors), ASSIGN_BLOCK):
            sims = vectors[start : start + ASSIGN_BLOCK] @ self.centroids.T
            best = sims.argmax(axis=1)
            fine[start : start + len(best)] = best
            similarity[start : start + len(best)] = sims[np.arange(len(best)), best]
        return self.theme_of[fine], fine, similarity

    def to_bytes(self) -> bytes:
        return np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes()

    @classmethod
    def from_run(cls, run: NpsThemeRun) -> ThemeModel:
        centroids = np.frombuffer(run.centroids, dtype=np.float32).reshape(-1, run.dimensions)
        return cls(centroids=centroids, theme_of=np.asarray(run.theme_of, dtype=np.int64))


def fit_theme_model(
    vectors: np.ndarray, *, seed: int = 0, k: int | None = None, weights: np.ndarray | None = None
) -> ThemeModel:
    """Fit themes on unit-length sentence vectors (at most ``FIT_SAMPLE`` of them are used).

    Deterministic for a fixed seed. ``k`` None chooses the number of themes from the data.
    """
    n = len(vectors)
    if n == 0:
        raise ThemeError("there are no sentences to find themes in")
    if k is not None and k < 1:
        raise ThemeError("k must be at least 1")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, FIT_SAMPLE, replace=False)) if n > FIT_SAMPLE else np.arange(n)
    points = np.ascontiguousarray(vectors[sample], dtype=np.float32)
    point_weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)[sample]
    small = len(points) <= SMALL_INPUT
    centroids = _distinct(points) if small else _fine_centroids(points, k, seed)
    sizes = np.bincount((points @ centroids.T).argmax(axis=1), weights=point_weights, minlength=len(centroids))
    theme_of = _merge(centroids, sizes, k, POINT_MERGE_DISTANCE if small else MERGE_DISTANCE)
    # Number themes by their weight in the sample, biggest first (ties by first fine cluster).
    theme_weight = np.bincount(theme_of, weights=sizes)
    order = sorted(range(len(theme_weight)), key=lambda t: (-theme_weight[t], t))
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return ThemeModel(
        centroids=centroids.astype(np.float32), theme_of=renumber[theme_of], k_mode="given" if k else "auto"
    )


def _fine_centroids(points: np.ndarray, k: int | None, seed: int) -> np.ndarray:
    """Unit-length centroids of the fine clusters, each the nearest centroid of at least one point."""
    fine_count = max(min(FINE_CLUSTERS, len(points) // MIN_FINE_SIZE), k or 0, 2)
    if len(points) <= max(fine_count, 3):
        fine = np.arange(len(points))  # a handful of sentences: each one is its own fine cluster
    else:
        fine = _spectral_clusters(points, fine_count, seed)
    fine = np.unique(fine, return_inverse=True)[1]
    centroids = normalise(np.stack([points[fine == c].mean(axis=0) for c in range(fine.max() + 1)]))
    # Sentences go to their nearest centroid: drop centroids nearest to none, or a theme could come out empty.
    for _ in range(10):
        used = np.unique((points @ centroids.T).argmax(axis=1))
        if len(used) == len(centroids):
            break
        centroids = centroids[used]
    return centroids


def _distinct(points: np.ndarray) -> np.ndarray:
    """The points as centroids, without exact duplicates (each is then the nearest centroid of a point)."""
    return normalise(np.unique(np.round(points, 6), axis=0))


def _knn_graph(points: np.ndarray, neighbours: int) -> csr_matrix:
    """The symmetric k-nearest-neighbour graph, weighted by cosine similarity."""
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    n = len(points)
    # Small dense steps run on one thread: on a busy machine, BLAS/OpenMP thread teams cost more than they save here.
    with threadpool_limits(1 if n < 4096 else None):
        rows, cols, weights = [], [], []
        for start in range(0, n, 2048):
            sims = points[start : start + 2048] @ points.T
            block = np.arange(len(sims))
            sims[block, start + block] = -np.inf
            nearest = np.argpartition(-sims, neighbours - 1, axis=1)[:, :neighbours]
            rows.append(np.repeat(start + block, neighbours))
            cols.append(nearest.ravel())
            weights.append(np.take_along_axis(sims, nearest, axis=1).ravel())
    graph = sp.csr_matrix(
        (np.clip(np.concatenate(weights), 0.0, None) + 1e-6, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return graph.maximum(graph.T).astype(np.float64)


def _spectral_clusters(points: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Spectral clustering of the symmetric k-nearest-neighbour graph (cosine similarity weights)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = len(points)
    graph = _knn_graph(points, min(NEIGHBOURS, max(MIN_NEIGHBOURS, n // 8), n - 1))
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(degree))
    affinity = (scale @ graph @ scale).tocsr()
    start_vector = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    with threadpool_limits(1):
        if n < 200:
            values, vectors = np.linalg.eigh(affinity.toarray())
        else:
            values, vectors = eigsh(affinity, k=clusters, which="LA", v0=start_vector, tol=1e-6)
        top = np.argsort(-values)[:clusters]
        embedding = vectors[:, top]
        embedding /= np.linalg.norm(embedding, axis=1, keepdims=True).clip(1e-12)
        return KMeans(clusters, n_init=4, random_state=seed).fit(embedding).labels_


def _merge(centroids: np.ndarray, sizes: np.ndarray, k: int | None, distance: float = MERGE_DISTANCE) -> np.ndarray:
    """Fine cluster -> theme: average-linkage merge by centroid cosine distance (or down to k themes)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(centroids) == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(centroids.astype(np.float64), method="average", metric="cosine")
    if k is not None:
        labels = fcluster(tree, min(k, len(centroids)), criterion="maxclust") - 1
        return np.unique(labels, return_inverse=True)[1]
    labels = fcluster(tree, distance, criterion="distance") - 1
    if labels.max() + 1 > MAX_AUTO_THEMES:
        labels = fcluster(tree, MAX_AUTO_THEMES, criterion="maxclust") - 1
    return _fold_small_themes(centroids, sizes, np.unique(labels, return_inverse=True)[1])


def _fold_small_themes(centroids: np.ndarray, sizes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Themes below MIN_THEME_SHARE of the sample fold into the nearest bigger theme, smallest first."""
    while True:
        weight = np.bincount(labels, weights=sizes)
        small = [t for t in np.argsort(weight) if weight[t] < MIN_THEME_SHARE * sizes.sum()]
        if not small or len(weight) <= 1:
            return labels
        tiny = small[0]
        theme_centroids = normalise(
            np.stack([(centroids[labels == t] * sizes[labels == t, None]).sum(axis=0) for t in range(len(weight))])
        )
        sims = theme_centroids @ theme_centroids[tiny]
        sims[tiny] = -np.inf
        labels[labels == tiny] = int(sims.argmax())
        labels = np.unique(labels, return_inverse=True)[1]
