"""Clustering speaker embeddings of time-ordered windows, with an automatic speaker count.

Two methods, both ending in the same explicit test and the same resegmentation:

* ``ahc`` — agglomerative clustering on a calibrated threshold. The windows are first over-clustered
  (average linkage, a tight cut); then the two clusters most alike are merged while their similarity is
  at least ``threshold``. The similarity (``corrected`` linkage, :func:`corrected_similarity`) is the mean
  cosine of windows across two clusters over the geometric mean of each one's cosine within: about 1
  for two parts of one voice however short, the voices' own similarity for two people, so one
  threshold means the same for a speaker who said little and for one who talked for minutes. Below
  ``threshold``, within a ``band`` down to the encoder's floor (``maybe_same``), two clusters are one
  voice unless a split of them is significantly better than one: the **held-out test**
  (:func:`held_out_split`) draws the axis between the two clusters on half of the recording (alternate
  blocks of a few seconds) and asks whether the other half's windows, projected on it, fall in two
  groups (the share of their spread that the best split in two explains, :func:`best_split`: about 0.64
  for one voice's windows, up to 0.75 for a voice that drifts, towards 1 for two voices). Two voices
  on one telephone line can be as alike by cosine as two halves of one person's talk; they still fall
  in two groups along the axis that tells them apart. Below the floor, clusters are never merged.
  Threshold and floor are properties of the encoder (how far apart its embeddings put two people), so
  each encoder has its own (README, accuracy section); the test's level and blocks are not. Without
  the test (``held_out=None``) the band is cut at the largest drop between two successive merges.
* ``spectral`` — spectral clustering whose pruning and count come from the normalised maximum eigengap
  (Park et al., "Auto-tuning spectral clustering for speaker diarization using normalized maximum
  eigengap", 2019); clusters that are still at least ``threshold`` alike are then merged (with the same
  band), which is also how it can answer "one voice".

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
LINKAGES = ("corrected", "cosine", "mean")
MAX_EXACT = 2000  # windows clustered exactly; beyond, a sample is and the rest join its clusters
DEFAULT_THRESHOLD = 0.4  # for embeddings of an encoder with no calibrated threshold
SPECTRAL_EXACT = 600
SPECTRAL_MAX_K = 20  # eigengaps looked at (an eigendecomposition per pruning level)
NEIGHBOUR_S = 1.0  # corrected linkage: a window's neighbour starts within this of its end
WITHIN_PRIOR = 0.5  # corrected linkage: the within-voice cosine when a recording gives none
# two windows sharing no time and at least this alike hold the same audio twice (repeat_origins): a copy's
# windows are 0.98–1.0 alike, different speech of one voice rarely above 0.9
REPEAT_COS = 0.97


@dataclass(frozen=True)
class ClusterOptions:
    method: str = "ahc"
    # how alike two clusters are: "corrected" for each cluster's noise (corrected_similarity), "cosine" of
    # the centroids or "mean" (linkage_similarity)
    linkage: str = "corrected"
    threshold: float | None = None  # similarity at or above which two clusters are one voice (None: the encoder's)
    min_speaker_s: float = 3.0  # less speech than this (windows × hop) is not a speaker
    switch_penalty: float = 0.0  # resegmentation: cost of a change of speaker between windows
    overlap_test: bool = True  # a cluster that is a mix of two speakers' voices is not a speaker
    # adaptive cut: merging goes on down to threshold - band, then stops at the largest gap (None: the encoder's)
    band: float | None = None
    prior_pairs: float = 4.0  # corrected linkage: how many window pairs the recording's within-voice cosine is worth
    # within the band: "held-out" — two clusters are two voices when windows held out split in two along
    # the axis between them (:func:`held_out_split`) at least this well; None: the largest-drop cut
    held_out: float | None = 0.8
    # held-out test: the windows are split in two folds by alternate blocks of each of these lengths
    blocks_s: tuple[float, ...] = (4.0,)
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


def _sums(emb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The sum of each cluster's embeddings (``k × d``)."""
    onehot = np.zeros((k, len(labels)), dtype=np.float64)
    onehot[labels, np.arange(len(labels))] = 1.0
    return np.asarray(onehot @ emb.astype(np.float64))


def centroids(emb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Unit-length mean embedding of each label ``0..k-1`` (a label with no window gets zeros)."""
    return _unit(_sums(emb, labels, k).astype(np.float32))


def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber labels 0..k-1 in order of first appearance."""
    order: dict[int, int] = {}
    for lab in labels.tolist():
        order.setdefault(lab, len(order))
    return np.array([order[lab] for lab in labels.tolist()], dtype=np.int64), len(order)


def _sample(n: int, most: int = MAX_EXACT) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(np.int64))


def _over_cluster(emb: np.ndarray, max_clusters: int = 80, distance: float = 0.3) -> np.ndarray:
    """Many small, pure clusters: average linkage cut tightly (cosine distance 0.3, ≤ ``max_clusters``)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(emb.astype(np.float64), method="average", metric="cosine")
    labels = fcluster(z, t=distance, criterion="distance") - 1
    if labels.max() + 1 > max_clusters:
        labels = fcluster(z, t=max_clusters, criterion="maxclust") - 1
    return np.asarray(labels, dtype=np.int64)


def linkage_similarity(sums: np.ndarray, counts: np.ndarray, linkage: str = "cosine") -> np.ndarray:
    """Pairwise similarity of clusters given their embedding sums and sizes (``cosine`` and ``mean``;
    ``corrected`` needs the windows' pairs: see :class:`Pairs`).

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
    emb: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    lo: int,
    hi: int,
    linkage: str = "cosine",
    pairs: Pairs | None = None,
) -> np.ndarray:
    """Merge the pair of clusters that are most alike (:func:`similarity`) while they are at least
    ``threshold`` alike (or while there are more than ``hi``), never below ``lo`` clusters."""
    labels, k = relabel(labels)
    while k > lo:
        sim = similarity(emb, labels, k, linkage, pairs)
        np.fill_diagonal(sim, -np.inf)
        a, b = divmod(int(np.argmax(sim)), k)
        if sim[a, b] < threshold and k <= hi:
            break
        labels, k = relabel(np.where(labels == b, a, labels))
    return labels


def band_cut(
    emb: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    floor: float,
    linkage: str = "cosine",
    pairs: Pairs | None = None,
    speech: np.ndarray | None = None,
    least: float = 0.0,
) -> float:
    """The similarity to merge down to when merges less alike than ``threshold`` but not less than
    ``floor`` are decided by the recording's own gap.

    Merging goes on from ``labels`` down to ``floor``; among the merges of two speaker-sized clusters
    (each with ``least`` seconds of ``speech`` or more: a stray window's merge decides nothing) in
    that range, the cut is at the largest drop between successive similarities, the edges being
    ``threshold`` and the first such pair left below the floor (or the floor). Where the recording's
    voices are far apart, a speaker whose parts are less alike than ``threshold`` is still one; where
    they are close, the cut follows the gap between them. Returns the middle of the drop cut at (never
    below ``floor``)."""
    if floor >= threshold:
        return threshold
    weights = np.ones(len(emb)) if speech is None else np.asarray(speech, dtype=np.float64)
    labels, k = relabel(labels)
    levels: list[float] = []  # the similarity of each merge of two speaker-sized clusters, in order
    beyond = floor
    while k > 1:
        sim = similarity(emb, labels, k, linkage, pairs)
        np.fill_diagonal(sim, -np.inf)
        a, b = divmod(int(np.argmax(sim)), k)
        value = float(sim[a, b])
        sizes = np.bincount(labels, weights=weights, minlength=k)
        big = min(sizes[a], sizes[b]) >= least - 1e-9
        if big and value < floor:
            beyond = value
            break
        if big and value < threshold:
            levels.append(value)
        labels, k = relabel(np.where(labels == b, a, labels))
    edges = [threshold, *levels, beyond]
    j = int(np.argmax(-np.diff(edges)))
    return max(floor, (edges[j] + edges[j + 1]) / 2)


def best_split(x: np.ndarray) -> float:
    """The share of the variance of the values ``x`` that their best split in two (a threshold) explains:
    2/π ≈ 0.64 for one normal spread, 0.75 for a uniform one, towards 1 for two well-separated groups."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    total = float(((x - x.mean()) ** 2).sum())
    if n < 4 or total <= 0.0:
        return 0.0
    left = np.cumsum(x)[:-1]
    i = np.arange(1, n)
    # between-group sum of squares of the split after the i smallest values
    between = (left - i * x.mean()) ** 2 * n / (i * (n - i))
    return float(between.max() / total)


def held_out_split(emb: np.ndarray, a: np.ndarray, b: np.ndarray, folds: np.ndarray, least: int = 3) -> float | None:
    """How clearly two clusters (masks ``a`` and ``b`` over the windows) are two voices, judged on windows
    they were not told apart by. For each split of the windows in two folds (a row of ``folds``, 0 or 1
    per window) and each fold: the axis between the two clusters' means in the other fold, and
    :func:`best_split` of this fold's windows of both clusters projected on it; the mean over all. A
    cluster that is one voice cut in two gives about what one spread gives (0.64–0.75); two voices give
    two groups (towards 1). ``None`` when no split has ``least`` windows of each cluster in each fold."""
    scores = []
    for fold in np.atleast_2d(folds):
        for f in (0, 1):
            train, test = fold == f, fold != f
            counts = ((train & a).sum(), (train & b).sum(), (test & a).sum(), (test & b).sum())
            if min(int(c) for c in counts) < least:
                break
            axis = emb[train & a].mean(axis=0) - emb[train & b].mean(axis=0)
            scores.append(best_split(emb[test & (a | b)] @ axis))
    return float(np.mean(scores)) if scores else None


def time_folds(starts: np.ndarray, blocks: tuple[float, ...]) -> np.ndarray:
    """Splits of time-ordered windows in two folds: alternate blocks of each length in ``blocks`` (by
    the windows' start times), one row per length."""
    starts = np.asarray(starts, dtype=np.float64)
    return np.array([(np.floor(starts / b).astype(np.int64)) % 2 for b in blocks], dtype=np.int64)


def repeat_origins(emb: np.ndarray, starts: np.ndarray, ends: np.ndarray, level: float = REPEAT_COS) -> np.ndarray:
    """For each time-ordered window, the earliest window whose audio it repeats (itself when none).

    A recording may play the same audio twice (a looped prompt, hold music, a file made of copies). A
    window repeats an earlier one when it shares none of its time yet their embeddings are at least
    ``level`` alike; it takes the origin of the window it is most alike, so a chain of repeats leads to
    its first. :func:`cluster` clusters each audio once and gives a repeat its origin's label."""
    unit = _unit(np.asarray(emb, dtype=np.float32))
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    n = len(unit)
    origin = np.arange(n)
    step = 512
    for lo in range(0, n, step):  # blocks of rows against every earlier window: no n × n matrix
        hi = min(n, lo + step)
        sim = unit[lo:hi] @ unit[:hi].T
        rows = np.arange(lo, hi)[:, None]
        cols = np.arange(hi)[None, :]
        sim[(cols >= rows) | (ends[None, :hi] > starts[lo:hi, None] + 1e-6)] = -np.inf  # later or sharing time
        best = np.argmax(sim, axis=1)
        for r in np.flatnonzero(sim[np.arange(hi - lo), best] >= level):
            origin[lo + r] = origin[best[r]]  # earlier windows are resolved already
    return origin


def merge_tested(
    emb: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    floor: float,
    required: float,
    fold: np.ndarray,
    lo: int,
    hi: int,
    linkage: str = "corrected",
    pairs: Pairs | None = None,
    speech: np.ndarray | None = None,
    least: float = 0.0,
) -> np.ndarray:
    """Merge the two clusters most alike while they are at least ``threshold`` alike; below it and down
    to ``floor``, unless :func:`held_out_split` says they are two voices (``required`` or more), in which
    case that pair is kept apart and the next one is looked at. A cluster with less than ``least``
    seconds of ``speech``, or too few windows to test, is merged as if alike. Never below ``lo`` clusters;
    always down to ``hi``."""
    weights = np.ones(len(emb)) if speech is None else np.asarray(speech, dtype=np.float64)
    ids = np.asarray(labels, dtype=np.int64).copy()  # stable cluster ids (a merge keeps the first id)
    apart: set[tuple[int, int]] = set()
    while True:
        alive = np.unique(ids)
        k = len(alive)
        if k <= lo:
            break
        compact = np.searchsorted(alive, ids)
        sim = similarity(emb, compact, k, linkage, pairs)
        np.fill_diagonal(sim, -np.inf)
        if k <= hi:
            for x, y in apart:
                i, j = np.searchsorted(alive, [x, y])
                sim[i, j] = sim[j, i] = -np.inf
        i, j = divmod(int(np.argmax(sim)), k)
        value = float(sim[i, j])
        if value < floor and k <= hi:
            break
        x, y = int(alive[i]), int(alive[j])
        if value < threshold and k <= hi:
            sizes = np.bincount(compact, weights=weights, minlength=k)
            if min(sizes[i], sizes[j]) >= least - 1e-9:
                score = held_out_split(emb, ids == x, ids == y, fold)
                if score is not None and score >= required:
                    apart.add((min(x, y), max(x, y)))
                    continue
        ids[ids == y] = x
        apart = {p for p in apart if y not in p and x not in p}
    return relabel(ids)[0]


def similarity(
    emb: np.ndarray, labels: np.ndarray, k: int, linkage: str = "cosine", pairs: Pairs | None = None
) -> np.ndarray:
    """The ``k × k`` similarity of clusters ``0..k-1`` under ``linkage``."""
    if linkage == "corrected":
        return corrected_similarity(emb, labels, k, pairs or Pairs.of(emb))
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return linkage_similarity(_sums(emb, labels, k), counts, linkage)


@dataclass(frozen=True)
class Pairs:
    """What the ``corrected`` linkage needs beyond the sums: every pair of windows that share audio
    (``first[p] < second[p]``, with their cosine ``dots[p]``) and the prior for how alike two windows
    of one voice that share no audio are in this recording (``within``)."""

    first: np.ndarray
    second: np.ndarray
    dots: np.ndarray
    within: float
    prior_pairs: float = 4.0

    @classmethod
    def of(
        cls,
        emb: np.ndarray,
        starts: np.ndarray | None = None,
        ends: np.ndarray | None = None,
        prior_pairs: float = 4.0,
    ) -> Pairs:
        """The pairs of unit embeddings ``emb`` of time-ordered windows ``[starts, ends)`` (without spans
        the windows are taken as disjoint). ``within`` is the median cosine of each window with the next
        one that shares none of its audio and starts within ``NEIGHBOUR_S`` of its end (neighbours are
        mostly one voice), or ``WITHIN_PRIOR`` when no window has such a neighbour."""
        n = len(emb)
        if starts is None or ends is None:
            starts = np.arange(n, dtype=np.float64)
            ends = starts + 1.0
        firsts: list[np.ndarray] = []
        seconds: list[np.ndarray] = []
        nxt = np.full(n, -1, dtype=np.int64)
        for off in range(1, n):
            i = np.arange(n - off)
            j = i + off
            shares = starts[j] < ends[i] - 1e-6
            near = ~shares & (starts[j] < ends[i] + NEIGHBOUR_S) & (nxt[i] < 0)
            nxt[i[near]] = j[near]
            firsts.append(i[shares])
            seconds.append(j[shares])
            if not shares.any() and not (starts[j] < ends[i] + NEIGHBOUR_S).any():
                break  # windows are time-ordered: no later offset can share audio or be near
        first = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)
        second = np.concatenate(seconds) if seconds else np.zeros(0, dtype=np.int64)
        dots = np.einsum("ij,ij->i", emb[first], emb[second]).astype(np.float64)
        has = np.flatnonzero(nxt >= 0)
        near_dots = np.einsum("ij,ij->i", emb[has], emb[nxt[has]])
        within = float(np.median(near_dots)) if len(has) else WITHIN_PRIOR
        return cls(first, second, dots, within, prior_pairs)

    def by_cluster(self, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(dot sums, counts)`` of the audio-sharing pairs, as ``k × k`` matrices over ordered pairs."""
        la, lb = labels[self.first], labels[self.second]
        sums = np.zeros((k, k))
        counts = np.zeros((k, k))
        for x, y in ((la, lb), (lb, la)):
            np.add.at(sums, (x, y), self.dots)
            np.add.at(counts, (x, y), 1.0)
        return sums, counts


def corrected_similarity(emb: np.ndarray, labels: np.ndarray, k: int, pairs: Pairs) -> np.ndarray:
    """How alike two clusters' voices are, corrected for how noisy each cluster is.

    The cosine of two centroids falls with the noise of each window's embedding, and more for small
    clusters, so a fixed threshold on it splits a speaker who said little. Here the similarity is the
    mean cosine of the windows across the two clusters divided by the geometric mean of each cluster's
    mean cosine within (Spearman's correction for attenuation): about 1 for two halves of one voice
    whatever their sizes, the voices' own similarity for two speakers. Pairs of windows that share
    audio are left out of every mean (they are alike because they are the same samples); a cluster's
    within-mean is shrunk toward the recording's ``pairs.within`` by ``pairs.prior_pairs`` pairs of that
    value, so that a cluster of one window has one."""
    cross, own = corrected_parts(emb, labels, k, pairs)
    return np.asarray(cross / np.sqrt(np.outer(own, own)), dtype=np.float64)


def corrected_parts(emb: np.ndarray, labels: np.ndarray, k: int, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """The mean cosine across every two clusters (``k × k``) and within each (``k``, shrunk) of
    :func:`corrected_similarity`."""
    sums = _sums(emb, labels, k)
    gram = sums @ sums.T
    shared_sums, shared_counts = pairs.by_cluster(labels, k)
    n = np.bincount(labels, minlength=k).astype(np.float64)
    cross_pairs = np.maximum(np.outer(n, n) - shared_counts, 1.0)
    cross = (gram - shared_sums) / cross_pairs
    self_pairs = np.maximum(n * (n - 1) - np.diag(shared_counts), 0.0)
    self_sum = np.diag(gram) - n - np.diag(shared_sums)
    own = (self_sum + pairs.prior_pairs * pairs.within) / (self_pairs + pairs.prior_pairs)
    return cross, np.maximum(own, 0.05)


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


def absorb_mixtures(
    emb: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    lo: int = 1,
    linkage: str = "cosine",
    pairs: Pairs | None = None,
) -> np.ndarray:
    """Windows where two people talk at once embed between their voices, and enough of them make a
    cluster of their own. A cluster is such a mixture, not a speaker, when it would be merged (by
    ``threshold``, under ``linkage``) with the even mix of two larger clusters; its windows go to the
    nearer of the two. Smallest clusters first; never fewer than ``lo`` clusters."""
    labels, k = relabel(labels)
    while k > max(lo, 2):
        mix = _mix_similarity(emb, labels, k, linkage, pairs)
        sizes = np.bincount(labels, minlength=k)
        found = None
        for c in np.argsort(sizes):
            others = [int(i) for i in range(k) if sizes[i] > sizes[c]]
            best = max(
                ((float(mix[c, a, b]), a, b) for i, a in enumerate(others) for b in others[i + 1 :]),
                default=None,
            )
            if best is not None and best[0] >= threshold:
                found = (int(c), best[1], best[2])
                break
        if found is None:
            break
        c, a, b = found
        cent = centroids(emb, labels, k)
        mine = labels == c
        nearer = np.where(emb[mine] @ cent[a] >= emb[mine] @ cent[b], a, b)
        labels = labels.copy()
        labels[mine] = nearer
        labels, k = relabel(labels)
    return labels


def _mix_similarity(emb: np.ndarray, labels: np.ndarray, k: int, linkage: str, pairs: Pairs | None) -> np.ndarray:
    """``[c, a, b]``: how alike cluster ``c`` is to the even mix of clusters ``a`` and ``b``."""
    if linkage != "corrected":
        cent = centroids(emb, labels, k)
        mixed = _unit(cent[:, None, :] + cent[None, :, :])
        return np.asarray(np.einsum("cd,abd->cab", cent, mixed), dtype=np.float64)
    cross, own = corrected_parts(emb, labels, k, pairs or Pairs.of(emb))
    # the mix's mean is (m_a + m_b) / 2: its cross term with c and its own term follow
    to_mix = (cross[:, :, None] + cross[:, None, :]) / 2
    mix_own = np.maximum((own[:, None] + own[None, :] + 2 * cross) / 4, 0.05)
    return np.asarray(to_mix / np.sqrt(own[:, None, None] * mix_own[None, :, :]), dtype=np.float64)


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
    spans: tuple[np.ndarray, np.ndarray] | None = None,
    maybe_same: float | None = None,
) -> np.ndarray:
    """Speaker labels (0..k-1, in order of first appearance) for time-ordered window embeddings.

    ``same_speaker`` is the encoder's calibrated threshold, used unless ``options.threshold`` is set.
    ``seconds``: the speech each window stands for (``hop_s`` each when not given). ``spans``: the
    windows' ``(starts, ends)`` in seconds, which tell the ``corrected`` linkage which windows share
    audio (without them, none do) and which repeat earlier audio (:func:`repeat_origins`): those are
    left out and given their origin's label, so a recording heard twice is clustered as heard once.
    ``maybe_same``: the encoder's floor for the adaptive band, used unless ``options.band`` is set
    (without either, no band)."""
    n = len(emb)
    if spans is not None and n > 1:
        origin = repeat_origins(emb, spans[0], spans[1])
        distinct = origin == np.arange(n)
        if not distinct.all():  # each audio clustered once: a repeat is no more evidence, nor more speech
            keep = np.flatnonzero(distinct)
            labels = _cluster(
                emb[keep],
                hop_s,
                options,
                same_speaker,
                None if seconds is None else np.asarray(seconds)[keep],
                (np.asarray(spans[0])[keep], np.asarray(spans[1])[keep]),
                maybe_same,
            )
            full = np.zeros(n, dtype=np.int64)
            full[keep] = labels
            return np.asarray(full[origin], dtype=np.int64)
    return _cluster(emb, hop_s, options, same_speaker, seconds, spans, maybe_same)


def _cluster(
    emb: np.ndarray,
    hop_s: float,
    options: ClusterOptions | None,
    same_speaker: float,
    seconds: np.ndarray | None,
    spans: tuple[np.ndarray, np.ndarray] | None,
    maybe_same: float | None,
) -> np.ndarray:
    options = options or ClusterOptions()
    threshold = options.threshold if options.threshold is not None else same_speaker
    if options.band is not None:
        band = options.band
    else:  # the band reaches down to the encoder's floor
        band = max(0.0, threshold - maybe_same) if maybe_same is not None else 0.0
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
    pairs = None  # only the corrected linkage looks at which windows share audio
    if options.linkage == "corrected":
        starts, ends = spans if spans is not None else (None, None)
        pairs = Pairs.of(emb, starts, ends, options.prior_pairs)
    if options.held_out is not None:
        starts = spans[0] if spans is not None else np.arange(n) * hop_s
        fold = time_folds(np.asarray(starts), options.blocks_s)
        floor = threshold - band  # below the threshold the held-out test decides, down to the floor
        cut = (threshold + floor) / 2  # what a mixture of two clusters must reach
        labels = merge_tested(
            emb,
            labels,
            threshold,
            floor,
            options.held_out,
            fold,
            lo,
            hi,
            options.linkage,
            pairs,
            speech,
            options.min_speaker_s,
        )
    else:
        cut = band_cut(emb, labels, threshold, threshold - band, options.linkage, pairs, speech, options.min_speaker_s)
        labels = merge_until(emb, labels, cut, lo, hi, options.linkage, pairs)
    labels = _absorb_small(emb, labels, speech, options.min_speaker_s, lo)
    if options.overlap_test:
        labels = absorb_mixtures(emb, labels, cut, lo, options.linkage, pairs)
    if int(labels.max()) + 1 < lo:
        labels = _split_to(emb, lo)
    return resegment(emb, labels, options.switch_penalty)


def _split_to(emb: np.ndarray, k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    sample = _sample(len(emb))
    z = linkage(emb[sample].astype(np.float64), method="average", metric="cosine")
    labels = np.asarray(fcluster(z, t=k, criterion="maxclust") - 1, dtype=np.int64)
    return np.asarray(np.argmax(emb @ centroids(emb[sample], labels, int(labels.max()) + 1).T, axis=1))
