"""Clustering speaker embeddings of time-ordered windows, with an automatic speaker count.

Two methods, both ending in the same explicit test and the same resegmentation:

* ``ahc`` — agglomerative clustering on one calibrated threshold. The windows are first over-clustered
  (average linkage, a tight cut); then the two clusters whose centroids are most alike are merged
  while that cosine similarity is at least ``threshold``. Two voices are kept apart exactly when their
  centroids are less alike than ``threshold``; a monologue is one voice when no split of it reaches
  that difference. The threshold is a property of the encoder (how far apart its embeddings put two
  people), so each encoder has its own, chosen on the tuning half of the development set.
* ``spectral`` — spectral clustering whose pruning and count come from the normalised maximum eigengap
  (Park et al., "Auto-tuning spectral clustering for speaker diarization using normalized maximum
  eigengap", 2019); clusters whose centroids are still at least ``threshold`` alike are then merged,
  which is also how it can answer "one voice".

A cluster with less than ``min_speaker_s`` of speech is not a speaker: its windows go to the nearest
speaker. ``num_speakers`` / ``min_speakers`` / ``max_speakers`` are exact bounds on the result.
Finally the labels are re-estimated (resegmentation): each window's score for each speaker is its
cosine similarity to that speaker's centroid, and a Viterbi pass picks the best label sequence with a
cost of ``switch_penalty`` per change of speaker between neighbouring windows; centroids are then
re-estimated and the pass repeated a few times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("ahc", "spectral")
LINKAGES = ("cosine", "mean")
MAX_EXACT = 2000  # windows clustered exactly; beyond, a sample is and the rest join its clusters
DEFAULT_THRESHOLD = 0.4  # for embeddings of an encoder with no calibrated threshold
SPECTRAL_EXACT = 600
SPECTRAL_MAX_K = 20  # eigengaps looked at  # the same for spectral clustering (an eigendecomposition per pruning level)


@dataclass(frozen=True)
class ClusterOptions:
    method: str = "ahc"
    linkage: str = "cosine"  # how alike two clusters are: "cosine" of centroids or "mean" (see linkage_similarity)
    threshold: float | None = None  # centroid cosine at or above which two clusters are one voice (None: the encoder's)
    min_speaker_s: float = 3.0  # less speech than this (windows × hop) is not a speaker
    switch_penalty: float = 0.1  # resegmentation: cost of a change of speaker between windows
    overlap_test: bool = True  # a cluster that is a mix of two speakers' voices is not a speaker
    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 20

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"clustering must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.linkage not in LINKAGES:
            raise ValueError(f"linkage must be one of {', '.join(LINKAGES)}, not {self.linkage!r}")


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-8), dtype=np.float32)


def centroids(emb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Unit-length mean embedding of each label ``0..k-1`` (a label with no window gets zeros)."""
    sums = np.zeros((k, emb.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, emb)
    return _unit(sums.astype(np.float32))


def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber labels 0..k-1 in order of first appearance."""
    order: dict[int, int] = {}
    for lab in labels.tolist():
        order.setdefault(lab, len(order))
    return np.array([order[lab] for lab in labels.tolist()], dtype=np.int64), len(order)


def _sample(n: int, most: int = MAX_EXACT) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(np.int64))


def _over_cluster(emb: np.ndarray, max_clusters: int = 80) -> np.ndarray:
    """Many small, pure clusters: average linkage cut tightly (cosine distance 0.3, ≤ ``max_clusters``)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(emb.astype(np.float64), method="average", metric="cosine")
    labels = fcluster(z, t=0.3, criterion="distance") - 1
    if labels.max() + 1 > max_clusters:
        labels = fcluster(z, t=max_clusters, criterion="maxclust") - 1
    return np.asarray(labels, dtype=np.int64)


def linkage_similarity(sums: np.ndarray, counts: np.ndarray, linkage: str = "cosine") -> np.ndarray:
    """Pairwise similarity of clusters given their embedding sums and sizes.

    ``cosine``: of the unit-length centroids. ``mean``: ``1 - |m_a - m_b|² / 2`` of the plain means of
    unit embeddings, i.e. how alike the two clusters' windows are across, less how alike they are within
    (equal to ``cosine`` for tight clusters; unmoved by what every window of a recording shares, such
    as a telephone channel)."""
    if linkage == "cosine":
        cent = _unit(sums.astype(np.float32))
        return np.asarray(cent @ cent.T, dtype=np.float64)
    means = sums / np.maximum(counts, 1)[:, None]
    sq = np.sum(means**2, axis=1)
    return np.asarray(1.0 - (sq[:, None] + sq[None, :] - 2 * means @ means.T) / 2, dtype=np.float64)


def merge_until(
    emb: np.ndarray, labels: np.ndarray, threshold: float, lo: int, hi: int, linkage: str = "cosine"
) -> np.ndarray:
    """Merge the pair of clusters that are most alike (:func:`linkage_similarity`) while they are at
    least ``threshold`` alike (or while there are more than ``hi``), never below ``lo`` clusters."""
    labels, k = relabel(labels)
    sums = np.zeros((k, emb.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, emb)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    alive = list(range(k))
    while len(alive) > lo:
        sim = linkage_similarity(sums[alive], counts[alive], linkage)
        np.fill_diagonal(sim, -np.inf)
        flat = int(np.argmax(sim))
        a, b = divmod(flat, len(alive))
        if sim[a, b] < threshold and len(alive) <= hi:
            break
        keep, gone = alive[a], alive[b]
        sums[keep] += sums[gone]
        counts[keep] += counts[gone]
        labels[labels == gone] = keep
        alive.remove(gone)
    return relabel(labels)[0]


def _absorb_small(emb: np.ndarray, labels: np.ndarray, speech: np.ndarray, least: float, lo: int) -> np.ndarray:
    """Give the windows of clusters with less than ``least`` seconds of speech to the nearest large one."""
    labels, k = relabel(labels)
    sizes = np.bincount(labels, weights=speech, minlength=k)
    order = np.argsort(-sizes)
    big = [int(i) for i in order if sizes[i] >= least - 1e-9]
    big += [int(i) for i in order if sizes[i] < least - 1e-9][: max(0, lo - len(big))]
    if len(big) == k or not big:
        return labels
    cent = centroids(emb, labels, k)[big]
    small = ~np.isin(labels, big)
    nearest = np.asarray(big)[np.argmax(emb[small] @ cent.T, axis=1)]
    labels = labels.copy()
    labels[small] = nearest
    return relabel(labels)[0]


def absorb_mixtures(emb: np.ndarray, labels: np.ndarray, threshold: float, lo: int = 1) -> np.ndarray:
    """Windows where two people talk at once embed between their voices, and enough of them make a
    cluster of their own. A cluster is such a mixture, not a speaker, when it would be merged (by
    ``threshold``) with the even mix of two larger clusters' centroids; its windows go to the nearer
    of the two. Smallest clusters first; never fewer than ``lo`` clusters."""
    labels, k = relabel(labels)
    while k > max(lo, 2):
        cent = centroids(emb, labels, k)
        sizes = np.bincount(labels, minlength=k)
        found = None
        for c in np.argsort(sizes):
            others = [int(i) for i in range(k) if sizes[i] > sizes[c]]
            best = max(
                (
                    (float(_unit(cent[a] + cent[b]) @ cent[c]), a, b)
                    for i, a in enumerate(others)
                    for b in others[i + 1 :]
                ),
                default=None,
            )
            if best is not None and best[0] >= threshold:
                found = (int(c), best[1], best[2])
                break
        if found is None:
            break
        c, a, b = found
        mine = labels == c
        nearer = np.where(emb[mine] @ cent[a] >= emb[mine] @ cent[b], a, b)
        labels = labels.copy()
        labels[mine] = nearer
        labels, k = relabel(labels)
    return labels


def _spectral(emb: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """NME-SC: prune the affinity to each row's ``p`` strongest, pick ``p`` and the count by the
    normalised maximum eigengap, then k-means on the spectral embedding."""
    from scipy.cluster.vq import kmeans2
    from scipy.linalg import eigh

    n = len(emb)
    if n < 4:
        return np.zeros(n, dtype=np.int64)
    affinity = emb @ emb.T
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for p in sorted({int(p) for p in np.geomspace(2, max(2, n // 4), 10).round()}):
        if p >= n:
            continue
        top = np.argpartition(-affinity, p, axis=1)[:, :p]
        pruned = np.zeros_like(affinity)
        np.put_along_axis(pruned, top, 1.0, axis=1)
        pruned = (pruned + pruned.T) / 2
        laplacian = np.diag(pruned.sum(axis=1)) - pruned
        values, vectors = eigh(laplacian)
        gaps = np.diff(values[: min(SPECTRAL_MAX_K, n - 1) + 1])
        k = int(np.clip(int(np.argmax(gaps)) + 1, lo, hi))
        ratio = p / (float(np.max(gaps)) / max(float(values[-1]), 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, k, values, vectors)
    if best is None:
        return np.zeros(n, dtype=np.int64)
    _, k, _, vectors = best
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    spectral = _unit(vectors[:, :k].astype(np.float32)).astype(np.float64)
    _, labels = kmeans2(spectral, k, minit="++", iter=20, seed=np.random.default_rng(0))
    return np.asarray(labels, dtype=np.int64)


def viterbi(scores: np.ndarray, penalty: float) -> np.ndarray:
    """The label path maximising the sum of ``scores[i, label]`` less ``penalty`` per change."""
    n, k = scores.shape
    back = np.zeros((n, k), dtype=np.int64)
    total = scores[0].astype(np.float64)
    for i in range(1, n):
        stay = total
        best = int(np.argmax(total))
        switch = total[best] - penalty
        back[i] = np.where(stay >= switch, np.arange(k), best)
        total = np.maximum(stay, switch) + scores[i]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def resegment(emb: np.ndarray, labels: np.ndarray, penalty: float, rounds: int = 3) -> np.ndarray:
    """Centroid re-estimation with a Viterbi pass (see the module's docstring)."""
    labels, k = relabel(labels)
    if k < 2:
        return labels
    for _ in range(rounds):
        cent = centroids(emb, labels, k)
        new = viterbi(emb @ cent.T, penalty)
        if len(np.unique(new)) < k or np.array_equal(new, labels):
            break
        labels = new
    return relabel(labels)[0]


def cluster(
    emb: np.ndarray,
    hop_s: float,
    options: ClusterOptions | None = None,
    same_speaker: float = DEFAULT_THRESHOLD,
    seconds: np.ndarray | None = None,
) -> np.ndarray:
    """Speaker labels (0..k-1, in order of first appearance) for time-ordered window embeddings.

    ``same_speaker`` is the encoder's calibrated threshold, used unless ``options.threshold`` is set.
    ``seconds``: the speech each window stands for (``hop_s`` each when not given)."""
    options = options or ClusterOptions()
    threshold = options.threshold if options.threshold is not None else same_speaker
    n = len(emb)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    emb = _unit(emb)
    fixed = options.num_speakers
    lo = min(max(1, fixed or options.min_speakers), n)
    hi = max(lo, min(fixed or options.max_speakers, n))
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    sample = _sample(n, SPECTRAL_EXACT if options.method == "spectral" else MAX_EXACT)
    part = emb[sample]
    labels = _spectral(part, lo, hi) if options.method == "spectral" else _over_cluster(part)
    if len(sample) < n:  # the rest join their nearest cluster
        k = int(labels.max()) + 1
        labels = np.argmax(emb @ centroids(part, labels, k).T, axis=1)
    speech = np.full(n, hop_s) if seconds is None else np.asarray(seconds, dtype=np.float64)
    labels = merge_until(emb, labels, threshold, lo, hi, options.linkage)
    labels = _absorb_small(emb, labels, speech, options.min_speaker_s, lo)
    if options.overlap_test:
        labels = absorb_mixtures(emb, labels, threshold, lo)
    if int(labels.max()) + 1 < lo:
        labels = _split_to(emb, lo)
    return resegment(emb, labels, options.switch_penalty)


def _split_to(emb: np.ndarray, k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    sample = _sample(len(emb))
    z = linkage(emb[sample].astype(np.float64), method="average", metric="cosine")
    labels = np.asarray(fcluster(z, t=k, criterion="maxclust") - 1, dtype=np.int64)
    return np.asarray(np.argmax(emb @ centroids(emb[sample], labels, int(labels.max()) + 1).T, axis=1))
