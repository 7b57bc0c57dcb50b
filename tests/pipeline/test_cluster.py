"""Clustering synthetic window embeddings with known speakers: counts, bounds, thresholds, order,
resegmentation, for both methods."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from proxyai.pipeline import cluster as cluster_module
from proxyai.pipeline.cluster import (
    ClusterOptions,
    Pairs,
    absorb_mixtures,
    band_cut,
    best_split,
    centroids,
    cluster,
    corrected_parts,
    held_out_split,
    merge_tested,
    merge_until,
    relabel,
    repeat_origins,
    resegment,
    similarity,
    time_folds,
    viterbi,
)

DIM = 32
HOP = 0.5  # seconds between windows; min_speaker_s = 2 s → 4 windows
THRESHOLD = 0.5
METHODS = ("ahc", "spectral")


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def voices(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors (nearly orthogonal in 32 dimensions)."""
    return unit(np.random.default_rng(seed).standard_normal((n, DIM)))


def voice_pair(cosine: float) -> np.ndarray:
    """Two unit vectors with the given cosine similarity."""
    e1, e2 = np.eye(DIM)[0], np.eye(DIM)[1]
    return np.stack([e1, cosine * e1 + np.sqrt(1 - cosine**2) * e2])


def windows(
    centres: np.ndarray, turns: list[tuple[int, int]], noise: float = 0.3, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings for (speaker, windows) turns, and the true speaker of every window. With noise 0.3
    two windows of one voice have a cosine of about 0.9, as with a real encoder's windows."""
    rng = np.random.default_rng(seed)
    truth = np.concatenate([np.full(n, spk) for spk, n in turns])
    emb = centres[truth] + noise * rng.standard_normal((len(truth), DIM)) / np.sqrt(DIM)
    return emb.astype(np.float32), truth


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Whether ``labels`` equal ``truth`` up to renaming."""
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


def run(emb: np.ndarray, method: str = "ahc", **kwargs: object) -> np.ndarray:
    return cluster(emb, HOP, ClusterOptions(method=method, **kwargs), same_speaker=THRESHOLD)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_n_speakers_taking_turns(method: str, n: int) -> None:
    rng = np.random.default_rng(n)
    order = [i % n for i in range(3 * n)]
    turns = [(spk, int(rng.integers(6, 20))) for spk in order]
    emb, truth = windows(voices(n, seed=n), turns, seed=n)
    labels = run(emb, method)
    assert labels.dtype == np.int64 and len(labels) == len(emb)
    assert same_partition(labels, truth)


@pytest.mark.parametrize("method", METHODS)
def test_unbalanced_speakers(method: str) -> None:
    # one speaker talks for 120 windows, the others for 12, 8 and 6 (each above the 2 s minimum)
    turns = [(0, 40), (1, 6), (0, 40), (2, 8), (0, 40), (3, 6), (1, 6)]
    emb, truth = windows(voices(4, seed=7), turns)
    assert same_partition(run(emb, method), truth)


@pytest.mark.parametrize("method", METHODS)
def test_one_speaker(method: str) -> None:
    emb, _ = windows(voices(1), [(0, 120)])
    assert set(run(emb, method).tolist()) == {0}


@pytest.mark.parametrize("method", METHODS)
def test_one_voice_that_drifts_is_one_speaker(method: str) -> None:
    # a monologue whose second half drifts (language, microphone): centroids still more alike than
    # the threshold
    drift = voice_pair(0.8)
    emb, _ = windows(drift, [(0, 60), (1, 60)])
    assert set(run(emb, method).tolist()) == {0}


def test_threshold_decides_one_or_two_voices() -> None:
    pair = voice_pair(0.4)
    emb, truth = windows(pair, [(0, 30), (1, 30)], noise=0.1)
    assert same_partition(run(emb, threshold=0.5), truth)  # 0.4 < 0.5: two voices
    assert set(run(emb, threshold=0.3).tolist()) == {0}  # 0.4 ≥ 0.3: one voice


def test_options_threshold_overrides_the_encoders() -> None:
    emb, truth = windows(voice_pair(0.4), [(0, 30), (1, 30)], noise=0.1)
    assert len(set(cluster(emb, HOP, ClusterOptions(), same_speaker=0.3).tolist())) == 1
    assert same_partition(cluster(emb, HOP, ClusterOptions(threshold=0.5), same_speaker=0.3), truth)


@pytest.mark.parametrize("method", METHODS)
def test_num_speakers_is_exact(method: str) -> None:
    emb, truth = windows(voices(3), [(0, 20), (1, 20), (2, 20), (0, 20)])
    assert same_partition(run(emb, method, num_speakers=3), truth)
    assert len(set(run(emb, method, num_speakers=2).tolist())) == 2
    assert len(set(run(emb, method, num_speakers=1).tolist())) == 1


@pytest.mark.parametrize("method", METHODS)
def test_num_speakers_above_the_voices_still_gives_that_many(method: str) -> None:
    emb, _ = windows(voices(2), [(0, 30), (1, 30)])
    assert len(set(run(emb, method, num_speakers=4).tolist())) == 4


@pytest.mark.parametrize("method", METHODS)
def test_min_and_max_speakers_bound_the_count(method: str) -> None:
    emb, _ = windows(voices(4), [(0, 20), (1, 20), (2, 20), (3, 20)])
    assert len(set(run(emb, method, max_speakers=2).tolist())) == 2
    one, _ = windows(voices(1), [(0, 60)])
    assert len(set(run(one, method, min_speakers=2).tolist())) == 2


def test_labels_in_order_of_first_appearance() -> None:
    emb, _ = windows(voices(3, seed=3), [(2, 10), (0, 10), (1, 10), (2, 10)])
    labels = run(emb)
    assert labels[0] == 0
    seen: list[int] = []
    for lab in labels.tolist():
        if lab not in seen:
            seen.append(lab)
    assert seen == list(range(len(seen)))


def test_short_lived_cluster_is_absorbed() -> None:
    # a third voice for 3 windows (1.5 s, under the 2 s minimum) is not a speaker
    emb, _ = windows(voices(3), [(0, 30), (2, 3), (1, 30)])
    labels = run(emb)
    assert len(set(labels.tolist())) == 2
    assert labels[30] in (labels[0], labels[-1])


def test_min_speaker_seconds_is_an_option() -> None:
    emb, truth = windows(voices(3), [(0, 30), (2, 3), (1, 30)])
    assert same_partition(run(emb, min_speaker_s=1.0), truth)


def test_scale_of_embeddings_does_not_matter() -> None:
    emb, _ = windows(voices(2), [(0, 20), (1, 20)])
    np.testing.assert_array_equal(run(emb), run(emb * 7.5))


def test_empty_and_single_window() -> None:
    assert len(run(np.zeros((0, DIM), dtype=np.float32))) == 0
    assert run(voices(1).astype(np.float32)).tolist() == [0]


def test_long_inputs_cluster_a_sample_then_assign_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "MAX_EXACT", 50)
    emb, truth = windows(voices(3), [(0, 100), (1, 100), (2, 100), (0, 50)])
    assert same_partition(run(emb), truth)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="clustering must be one of"):
        ClusterOptions(method="kmeans")


@pytest.mark.parametrize("seed", range(5))
def test_two_speakers_robust_to_seed(seed: int) -> None:
    emb, truth = windows(voices(2, seed=seed), [(0, 12), (1, 9), (0, 7), (1, 15)], seed=seed)
    assert same_partition(run(emb), truth)


# --- the parts ------------------------------------------------------------------------------------


def test_merge_until_stops_at_the_threshold() -> None:
    emb = unit(np.concatenate([voice_pair(0.9), voices(1, seed=5)]).astype(np.float32))
    labels = merge_until(emb, np.array([0, 1, 2]), threshold=0.8, lo=1, hi=10)
    assert labels[0] == labels[1] != labels[2]
    assert len(set(merge_until(emb, np.array([0, 1, 2]), threshold=0.8, lo=3, hi=10).tolist())) == 3
    assert len(set(merge_until(emb, np.array([0, 1, 2]), threshold=0.99, lo=1, hi=1).tolist())) == 1


def test_viterbi_penalty_removes_blips() -> None:
    scores = np.array([[1, 0], [1, 0], [0.4, 0.6], [1, 0], [1, 0]], dtype=np.float32)
    assert viterbi(scores, 0.0).tolist() == [0, 0, 1, 0, 0]
    assert viterbi(scores, 0.5).tolist() == [0, 0, 0, 0, 0]


def test_viterbi_keeps_real_changes() -> None:
    scores = np.array([[1, 0]] * 5 + [[0, 1]] * 5, dtype=np.float32)
    assert viterbi(scores, 0.5).tolist() == [0] * 5 + [1] * 5


def test_resegment_fixes_a_wrong_boundary() -> None:
    emb, truth = windows(voices(2), [(0, 20), (1, 20)])
    wrong = truth.copy()
    wrong[15:20] = 1  # the boundary five windows early
    assert same_partition(resegment(unit(emb).astype(np.float32), wrong, 0.1), truth)


def test_centroids_and_relabel() -> None:
    emb = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
    cent = centroids(emb, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(np.linalg.norm(cent, axis=1), 1.0, rtol=1e-6)
    labels, k = relabel(np.array([5, 5, 2, 7, 2]))
    assert labels.tolist() == [0, 0, 1, 2, 1] and k == 3


def test_a_mix_of_two_voices_is_not_a_speaker() -> None:
    centres = voices(2, seed=11)
    mix = unit(centres[0] + centres[1])[None]
    emb, truth = windows(np.concatenate([centres, mix]), [(0, 30), (2, 10), (1, 30), (0, 20)], noise=0.1)
    # at 0.75 the mix (0.71 like each voice) is no voice's; it is the even mix of the two
    with_test = run(emb, threshold=0.75)
    assert len(set(with_test.tolist())) == 2
    # the overlap windows go to one of the two people
    assert set(with_test[truth == 2].tolist()) <= {with_test[0], with_test[35]}


def test_a_third_voice_is_not_taken_for_a_mix() -> None:
    emb, truth = windows(voices(3, seed=12), [(0, 30), (2, 10), (1, 30), (0, 20)], noise=0.1)
    assert same_partition(run(emb), truth)


def test_absorb_mixtures_keeps_lo_clusters() -> None:
    centres = voices(2, seed=11)
    emb = np.concatenate([centres, unit(centres[0] + centres[1])[None]]).astype(np.float32)
    labels = np.array([0, 1, 2])
    assert len(set(absorb_mixtures(emb[[0, 0, 1, 1, 2]], labels[[0, 0, 1, 1, 2]], 0.5).tolist())) == 2
    assert len(set(absorb_mixtures(emb[[0, 0, 1, 1, 2]], labels[[0, 0, 1, 1, 2]], 0.5, lo=3).tolist())) == 3


def test_speech_seconds_decide_what_is_a_speaker() -> None:
    # the third voice has 3 windows: 1.5 s at the 0.5 s hop, but 4 s of speech when each stands for more
    emb, truth = windows(voices(3), [(0, 30), (2, 3), (1, 30)])
    seconds = np.full(len(emb), 0.5)
    assert len(set(cluster(emb, HOP, ClusterOptions(), THRESHOLD, seconds).tolist())) == 2
    seconds[truth == 2] = 4.0 / 3
    assert same_partition(cluster(emb, HOP, ClusterOptions(), THRESHOLD, seconds), truth)


# --- corrected linkage -------------------------------------------------------------------------------


def noisy(centre: np.ndarray, n: int, seed: int, noise: float = 1.0) -> np.ndarray:
    """``n`` unit windows of one voice whose pairwise cosine is about 1 / (1 + noise²) (0.5 for 1.0)."""
    rng = np.random.default_rng(seed)
    return unit(centre + noise * rng.standard_normal((n, DIM)) / np.sqrt(DIM)).astype(np.float32)


def test_corrected_similarity_is_one_for_parts_of_one_voice_whatever_their_size() -> None:
    voice = voices(1, seed=3)[0]
    small, large = noisy(voice, 3, seed=1, noise=1.5), noisy(voice, 60, seed=2, noise=1.5)
    emb = np.concatenate([small, large])
    labels = np.array([0] * 3 + [1] * 60)
    raw = similarity(emb, labels, 2, "cosine")[0, 1]
    corrected = similarity(emb, labels, 2, "corrected", Pairs.of(emb))[0, 1]
    assert raw < 0.85  # a centroid of three noisy windows is far from the voice's
    assert abs(corrected - 1.0) < 0.2


def test_corrected_similarity_of_two_voices_is_their_own() -> None:
    pair = voice_pair(0.3)
    emb = np.concatenate([noisy(pair[0], 40, seed=1), noisy(pair[1], 40, seed=2)])
    labels = np.array([0] * 40 + [1] * 40)
    raw = similarity(emb, labels, 2, "cosine")[0, 1]
    corrected = similarity(emb, labels, 2, "corrected", Pairs.of(emb))[0, 1]
    assert abs(corrected - 0.3) < 0.08
    assert corrected > raw - 0.01  # the raw cosine is pulled toward 0 by each cluster's noise


def test_pairs_are_the_windows_that_share_audio() -> None:
    # one region of 1.5 s windows every 0.5 s (0–3.5 s), then a window 10 s later
    starts = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 12.0])
    ends = starts + 1.5
    emb = voices(6, seed=4).astype(np.float32)
    pairs = Pairs.of(emb, starts, ends)
    found = set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
    assert found == {(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)}
    assert np.allclose(pairs.dots, [float(emb[i] @ emb[j]) for i, j in zip(pairs.first, pairs.second, strict=True)])
    # the only windows with a neighbour that shares no audio (starting within 1 s of the end): 0 → 3, 1 → 4
    assert pairs.within == pytest.approx(float(np.median([emb[0] @ emb[3], emb[1] @ emb[4]])))


def test_windows_that_share_audio_do_not_count_as_alike() -> None:
    # overlapping windows of one cluster are near copies: counted, they would make it look tight
    voice = voices(1, seed=8)[0]
    base = noisy(voice, 6, seed=3)
    emb = np.repeat(base, 3, axis=0)  # each window thrice, as if overlapping
    starts = np.repeat(np.arange(6) * 1.5, 3) + np.tile([0.0, 0.01, 0.02], 6)
    labels = np.zeros(18, dtype=np.int64)
    _, own_blind = corrected_parts(emb, labels, 1, Pairs.of(emb))
    _, own = corrected_parts(emb, labels, 1, Pairs.of(emb, starts, starts + 1.5))
    truth = float(np.mean([base[i] @ base[j] for i in range(6) for j in range(6) if i != j]))
    assert own[0] == pytest.approx(truth, abs=0.05)
    assert own_blind[0] > own[0] + 0.04


# --- the adaptive band -------------------------------------------------------------------------------


def three_people_one_in_two_parts(part_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """Speakers A (two parts ``part_cosine`` alike, as one person on two microphones), B and C."""
    a1, a2 = voice_pair(part_cosine)
    others = voices(2, seed=11)
    centres = np.stack([a1, a2, *others])
    emb, parts = windows(centres, [(0, 20), (2, 20), (1, 20), (3, 20), (0, 10), (2, 10)], noise=0.1)
    return emb, np.where(parts == 1, 0, parts)


def test_band_keeps_a_speaker_whose_parts_differ_when_the_voices_are_far_apart() -> None:
    emb, truth = three_people_one_in_two_parts(0.6)
    assert len(set(run(emb, threshold=0.9, held_out=None).tolist())) == 4  # no band: the parts are two speakers
    assert same_partition(run(emb, threshold=0.9, band=0.4, held_out=None), truth)  # the gap 0.6 → ~0 is the cut


def test_band_never_merges_below_its_floor() -> None:
    emb, _ = three_people_one_in_two_parts(0.45)
    assert len(set(run(emb, threshold=0.9, band=0.4).tolist())) == 4


@pytest.mark.parametrize(("cosine", "speakers"), [(0.6, 2), (0.8, 1)])
def test_band_alone_cuts_halfway(cosine: float, speakers: int) -> None:
    # two voices and nothing else: the largest drop is to the band's edge nearer to their similarity
    emb, _ = windows(voice_pair(cosine), [(0, 30), (1, 30)], noise=0.1)
    assert len(set(run(emb, threshold=0.9, band=0.4, held_out=None).tolist())) == speakers


def test_the_band_reaches_down_to_the_encoders_floor() -> None:
    emb, truth = three_people_one_in_two_parts(0.6)
    by_gap = ClusterOptions(held_out=None)
    labels = cluster(emb, HOP, by_gap, same_speaker=0.9, maybe_same=0.5)
    assert same_partition(labels, truth)
    assert len(set(cluster(emb, HOP, by_gap, same_speaker=0.9).tolist())) == 4  # no floor: no band
    no_band = ClusterOptions(band=0.0, held_out=None)
    assert len(set(cluster(emb, HOP, no_band, same_speaker=0.9, maybe_same=0.5).tolist())) == 4


@pytest.mark.parametrize("linkage", ["corrected", "cosine", "mean"])
def test_every_linkage_separates_voices_taking_turns(linkage: str) -> None:
    emb, truth = windows(voices(3, seed=2), [(0, 12), (1, 12), (2, 12), (0, 12), (1, 12), (2, 12)])
    assert same_partition(run(emb, linkage=linkage), truth)


def test_a_stray_window_makes_no_gap() -> None:
    # two voices 0.7 alike (inside the band, nearer its top: two people) and one window of noise
    emb, truth = windows(voice_pair(0.7), [(0, 30), (1, 30)], noise=0.1)
    stray = voices(1, seed=99).astype(np.float32)
    with_stray = np.concatenate([emb[:15], stray, emb[15:]])
    assert same_partition(run(emb, threshold=0.95, band=0.45), truth)
    labels = run(with_stray, threshold=0.95, band=0.45)
    assert same_partition(np.delete(labels, 15), truth)  # the stray joins one of them, the two stay apart


def test_band_cut_is_never_below_the_floor() -> None:
    emb, _ = three_people_one_in_two_parts(0.6)
    labels = np.arange(len(emb)) // 10  # clusters of ten windows
    cut = band_cut(emb, labels, 0.9, 0.5, "corrected", Pairs.of(emb))
    assert 0.5 <= cut < 0.6  # the parts of A (0.6) are merged, nothing below the floor is
    assert band_cut(emb, labels, 0.9, 0.9) == 0.9  # no band: the threshold


# --- the held-out test: one voice or two, judged on windows held out --------------------------------


def test_best_split_of_one_spread_and_of_two_groups() -> None:
    rng = np.random.default_rng(0)
    assert best_split(rng.standard_normal(4000)) == pytest.approx(2 / np.pi, abs=0.02)
    assert best_split(rng.uniform(size=4000)) == pytest.approx(0.75, abs=0.02)
    two = np.concatenate([rng.normal(0, 1, 500), rng.normal(8, 1, 500)])
    assert best_split(two) > 0.9
    assert best_split(np.ones(10)) == 0.0  # no spread, nothing to split
    assert best_split(np.array([1.0, 2.0])) == 0.0  # too few values


def taking_turns(centres: np.ndarray, turns: int = 12, length: int = 10, noise: float = 0.3) -> tuple[np.ndarray, ...]:
    """Windows every 0.5 s of speakers taking turns of ``length`` windows: embeddings, truth, starts."""
    emb, truth = windows(centres, [(i % len(centres), length) for i in range(turns)], noise=noise)
    return emb, truth, np.arange(len(emb)) * HOP


def test_held_out_split_tells_two_close_voices_from_one_voice_cut_in_two() -> None:
    emb, truth, starts = taking_turns(voice_pair(0.9))
    folds = time_folds(starts, (4.0,))
    two = held_out_split(unit(emb), truth == 0, truth == 1, folds)
    one_emb, _, _ = taking_turns(voices(1, seed=5))
    one = unit(one_emb)
    # the voice cut in two where its windows differ most: along its first principal axis
    centred = one - one.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    half = centred @ axis > 0
    cut = held_out_split(one, half, ~half, folds)
    assert two is not None and cut is not None
    assert two > 0.9
    assert cut < 0.75


def test_held_out_split_needs_windows_of_both_clusters_in_both_folds() -> None:
    emb, truth, starts = taking_turns(voice_pair(0.9))
    folds = time_folds(starts, (4.0,))
    early = truth.copy()
    early[starts >= 4.0] = 0  # speaker 1 only in the first block: never in the second fold
    assert held_out_split(unit(emb), early == 0, early == 1, folds) is None


def test_repeat_origins_lead_each_repeat_to_the_first_hearing() -> None:
    one = voices(6, seed=2)
    emb = np.concatenate([one, one[[0, 1]] * 1.0001, one[[0]]])  # windows 0 and 1 heard again, 0 a third time
    starts = np.arange(9) * 2.0
    assert repeat_origins(emb, starts, starts + 1.5).tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 0]


def test_repeat_origins_leave_distinct_windows_and_windows_sharing_time_alone() -> None:
    emb, _ = windows(voices(2), [(0, 20), (1, 20)])  # one voice's windows: about 0.9 alike, not repeats
    starts = np.arange(40) * HOP
    assert repeat_origins(emb, starts, starts + 0.4).tolist() == list(range(40))
    same = np.repeat(voices(1), 10, axis=0)  # identical, but each window overlaps the next two
    origins = repeat_origins(same, starts[:10], starts[:10] + 1.5)
    # a window repeats the earliest window it shares no time with, never an overlapping neighbour
    assert origins.tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 0, 0]


def phrases_of_one_voice(rng: np.random.Generator, phrases: int = 6, per: int = 6) -> np.ndarray:
    """One voice whose windows fall in groups by what is said: ``phrases`` of ``per`` windows."""
    centre = unit(rng.standard_normal(DIM))
    phrase = unit(centre + 0.6 * rng.standard_normal((phrases, DIM)) / np.sqrt(DIM))
    return unit(np.repeat(phrase, per, axis=0) + 0.3 * rng.standard_normal((phrases * per, DIM)) / np.sqrt(DIM))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(4))
def test_a_recording_heard_four_times_is_clustered_as_heard_once(method: str, seed: int) -> None:
    """Two voices, then the whole recording three times more (a looped file), with the bounds of a
    modern encoder. Counted as evidence, the copies make each phrase a tight group of its own and the
    voices split by what they say; the labels of each hearing must be those of the recording heard once."""
    rng = np.random.default_rng(seed)
    once = np.concatenate([phrases_of_one_voice(rng), phrases_of_one_voice(rng)])
    n = len(once)
    looped = np.concatenate([once] + [unit(once + 0.002 * rng.standard_normal(once.shape)) for _ in range(3)])
    starts = np.arange(4 * n) * HOP + np.repeat(np.arange(4) * 4.5, n)  # copies fall in other held-out folds
    options = ClusterOptions(method=method)
    alone = cluster(once, HOP, options, 0.95, spans=(starts[:n], starts[:n] + HOP), maybe_same=0.55)
    again = cluster(looped, HOP, options, 0.95, spans=(starts, starts + HOP), maybe_same=0.55)
    assert len(set(alone.tolist())) == 2
    assert again.tolist() == alone.tolist() * 4


def test_time_folds_alternate_blocks() -> None:
    folds = time_folds(np.array([0.0, 3.9, 4.0, 7.9, 8.0, 12.5]), (4.0, 8.0))
    assert folds.tolist() == [[0, 0, 1, 1, 0, 1], [0, 0, 0, 0, 1, 1]]


def test_two_voices_closer_than_the_band_cut_stay_apart() -> None:
    # 0.8 alike, noisy windows: the largest-drop cut of a lone pair merges them; held out, two groups
    emb, truth, starts = taking_turns(voice_pair(0.8), noise=0.45)
    options = ClusterOptions(threshold=0.95, band=0.4)
    assert len(set(cluster(emb, HOP, dataclasses.replace(options, held_out=None)).tolist())) == 1
    assert same_partition(cluster(emb, HOP, options, spans=(starts, starts + 1.5)), truth)


def test_one_voice_is_one_speaker_with_the_held_out_test() -> None:
    # one voice drifting slowly (a cosine of 0.8 between its first and last minute), never two groups
    a, b = voice_pair(0.8)
    t = np.linspace(0, 1, 240)[:, None]
    rng = np.random.default_rng(3)
    emb = unit((1 - t) * a + t * b) + 0.3 * rng.standard_normal((240, DIM)) / np.sqrt(DIM)
    starts = np.arange(240) * HOP
    options = ClusterOptions(threshold=0.95, band=0.4)
    labels = cluster(emb.astype(np.float32), HOP, options, spans=(starts, starts + 1.5))
    assert len(set(labels.tolist())) == 1


def test_merge_tested_keeps_bounds() -> None:
    emb, truth, starts = taking_turns(voices(3, seed=7))
    emb = unit(emb)
    folds = time_folds(starts, (4.0,))
    start = np.arange(len(emb)) // 5  # clusters of five windows
    apart = merge_tested(emb, start, 0.99, 0.0, 0.8, folds, lo=1, hi=20, pairs=Pairs.of(emb))
    assert same_partition(apart, truth)  # three voices: every pair of them is kept apart
    assert len(set(merge_tested(emb, start, 0.99, 0.0, 0.8, folds, lo=1, hi=2).tolist())) == 2  # at most hi
    assert len(set(merge_tested(emb, start, 0.99, 0.0, 1.01, folds, lo=4, hi=20).tolist())) == 4  # at least lo
