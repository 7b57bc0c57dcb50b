"""Clustering speaker embeddings of time-ordered windows, with an automatic speaker count.

The count is decided by two pieces of evidence, not by one similarity threshold:

* **similarity** — two clusters whose centroids are more alike than ``same_speaker`` (cosine) are one voice;
  with three or more clusters, so are two whose centroids still point the same way once the
  recording's mean voice is taken away (``same_centred``): sub-clusters of one voice do, different
  voices do not;
* **turn-taking** — two clusters that take turns (A … B … A) are people in a conversation, while two
  clusters that split the recording once (all of A, then all of B) are kept apart only when their
  voices are clearly different (below ``single_change``). A voice drifts with language, topic,
  microphone and loudness, and such a drift splits a monologue once; people talking take turns.

Starting from many small clusters (average-linkage on the windows), the most similar pair that fails
the test is merged until every remaining pair passes, then windows are re-assigned to the nearest
centroid on embeddings centred on the recording's mean voice (which removes the channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterOptions:
    same_speaker: float = 0.85
    same_centred: float = 0.3
    single_change: float = 0.55
    min_speaker_s: float = 2.0  # a speaker needs this much speech (windows' hop × count)
    initial_distance: float = 0.3  # cosine distance cut of the first, fine clustering
    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 20


def _normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-8), dtype=np.float32)


def _centroids(emb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return _normalize(np.stack([emb[labels == i].mean(axis=0) for i in range(k)]))


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber labels 0..k-1 in order of first appearance."""
    order: dict[int, int] = {}
    for lab in labels.tolist():
        order.setdefault(lab, len(order))
    return np.array([order[lab] for lab in labels.tolist()], dtype=np.int64), len(order)


def smooth(labels: np.ndarray) -> np.ndarray:
    """Three-window majority filter: a window whose two neighbours agree takes their label."""
    out = labels.copy()
    if len(labels) >= 3:
        agree = labels[:-2] == labels[2:]
        out[1:-1][agree] = labels[:-2][agree]
    return out


def runs_of(labels: np.ndarray) -> list[tuple[int, int]]:
    """Run-length encoding: (label, count) pairs."""
    if len(labels) == 0:
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    counts = np.diff(np.concatenate([starts, [len(labels)]]))
    return [(int(labels[s]), int(c)) for s, c in zip(starts, counts, strict=True)]


def turn_changes(labels: np.ndarray | list[tuple[int, int]], a: int, b: int, min_run: int = 2) -> int:
    """How often the talk passes between clusters ``a`` and ``b`` (runs shorter than ``min_run``
    windows are ignored as noise). ``labels`` may be given as :func:`runs_of` them."""
    runs = runs_of(labels) if isinstance(labels, np.ndarray) else labels
    merged: list[list[int]] = []
    for lab, n in runs:
        if lab != a and lab != b:
            continue
        if merged and merged[-1][0] == lab:
            merged[-1][1] += n
        else:
            merged.append([lab, n])
    kept = [lab for lab, n in merged if n >= min_run]
    return sum(1 for i in range(1, len(kept)) if kept[i] != kept[i - 1])


MAX_LINKAGE = 3000  # windows clustered exactly; beyond, a sample is and the rest join its clusters


def _initial(emb: np.ndarray, options: ClusterOptions) -> np.ndarray:
    """Average-linkage clusters cut at ``initial_distance`` (at most 60 of them)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(emb) < 2:
        return np.zeros(len(emb), dtype=np.int64)
    sample = np.linspace(0, len(emb) - 1, min(len(emb), MAX_LINKAGE)).round().astype(np.int64)
    sample = np.unique(sample)
    z = linkage(emb[sample].astype(np.float64), method="average", metric="cosine")
    labels = fcluster(z, t=options.initial_distance, criterion="distance") - 1
    if labels.max() + 1 > 60:  # bound the greedy stage on very long inputs
        labels = fcluster(z, t=60, criterion="maxclust") - 1
    labels = np.asarray(labels, dtype=np.int64)
    if len(sample) == len(emb):
        return labels
    k = int(labels.max()) + 1
    cent = _centroids(emb[sample], labels, k)
    return np.asarray(np.argmax(emb @ cent.T, axis=1), dtype=np.int64)


def _next_merge(
    labels: np.ndarray,
    emb: np.ndarray,
    centred: np.ndarray,
    k: int,
    lo: int,
    hi: int,
    min_windows: int,
    options: ClusterOptions,
) -> tuple[int, int] | None:
    """The pair of clusters to merge next, or None when every pair is two speakers.

    In order: a cluster with too little speech joins its nearest; above ``hi`` the closest pair
    merges; then pairs that are one voice by similarity (closest first); only when none is left,
    pairs that never take turns and are not clearly different voices.
    """
    cent = _centroids(emb, labels, k)
    sim = cent @ cent.T
    np.fill_diagonal(sim, -np.inf)
    sizes = np.bincount(labels, minlength=k)
    small = [i for i in range(k) if sizes[i] < min_windows]
    if small and k > lo:
        i = min(small, key=lambda s: int(sizes[s]))
        return i, int(np.argmax(sim[i]))
    if k > hi:
        flat = int(np.argmax(sim))
        return flat // k, flat % k
    if k <= lo:
        return None
    if k >= 3:
        cc = _centroids(centred, labels, k)
        sim_c = cc @ cc.T
    else:  # with two clusters, centring makes any pair opposite: it says nothing
        sim_c = np.full((k, k), -1.0)
    pairs: list[tuple[float, int, int]] = sorted(
        ((float(sim[a, b]), a, b) for a in range(k) for b in range(a + 1, k)), reverse=True
    )
    for s, a, b in pairs:
        if s >= options.same_speaker or sim_c[a, b] >= options.same_centred:
            return a, b
    runs = runs_of(smooth(labels))
    for s, a, b in pairs:
        if s >= options.single_change and turn_changes(runs, a, b) < 2:
            return a, b
    return None


def cluster(emb: np.ndarray, hop_s: float, options: ClusterOptions | None = None) -> np.ndarray:
    """Speaker labels (0..k-1, in order of first appearance) for time-ordered window embeddings."""
    options = options or ClusterOptions()
    n = len(emb)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    emb = _normalize(emb)
    fixed = options.num_speakers
    lo = max(1, fixed or options.min_speakers)
    hi = max(lo, min(fixed or options.max_speakers, n))
    labels, k = _relabel(_initial(emb, options))
    centred = _normalize(emb - emb.mean(axis=0))
    min_windows = max(1, round(options.min_speaker_s / hop_s))

    while k > 1:
        pair = _next_merge(labels, emb, centred, k, lo, hi, min_windows, options)
        if pair is None:
            break
        i, j = pair
        labels = np.where(labels == j, i, labels)
        labels, k = _relabel(labels)

    if k < lo and n >= lo:
        labels = _split_to(emb, labels, lo)
        labels, k = _relabel(labels)
    return _refine(emb, labels, k)


def _split_to(emb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(emb.astype(np.float64), method="average", metric="cosine")
    return np.asarray(fcluster(z, t=k, criterion="maxclust") - 1, dtype=np.int64)


def _refine(emb: np.ndarray, labels: np.ndarray, k: int, rounds: int = 5) -> np.ndarray:
    """A few k-means rounds on embeddings centred on the recording's mean voice."""
    if k < 2:
        return labels
    centred = _normalize(emb - emb.mean(axis=0))
    for _ in range(rounds):
        cent = _centroids(centred, labels, k)
        new = np.argmax(centred @ cent.T, axis=1)
        new = smooth(new)
        if len(np.unique(new)) < k or np.array_equal(new, labels):
            break
        labels = new
    labels, _ = _relabel(labels)
    return labels
