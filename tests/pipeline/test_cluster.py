"""Clustering synthetic window embeddings: speaker count, turn-taking evidence, label order."""

from __future__ import annotations

import numpy as np
import pytest

from proxyai.pipeline.cluster import ClusterOptions, cluster, runs_of, smooth, turn_changes

DIM = 32
HOP = 0.5  # seconds between windows; min_speaker_s = 2 s → 4 windows


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def voices(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random, nearly orthogonal unit vectors."""
    rng = np.random.default_rng(seed)
    return np.stack([unit(rng.standard_normal(DIM)) for _ in range(n)])


def voice_pair(cosine: float) -> np.ndarray:
    """Two unit vectors with the given cosine similarity."""
    e1, e2 = np.eye(DIM)[0], np.eye(DIM)[1]
    return np.stack([e1, cosine * e1 + np.sqrt(1 - cosine**2) * e2])


def windows(
    centres: np.ndarray, turns: list[tuple[int, int]], noise: float = 0.05, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings for (speaker, windows) turns, and the true speaker of every window."""
    rng = np.random.default_rng(seed)
    truth = np.concatenate([np.full(n, spk) for spk, n in turns])
    emb = centres[truth] + noise * rng.standard_normal((len(truth), DIM)) / np.sqrt(DIM)
    return emb.astype(np.float32), truth


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Whether ``labels`` equal ``truth`` up to renaming."""
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


def first_appearance_order(labels: np.ndarray) -> bool:
    seen: list[int] = []
    for lab in labels.tolist():
        if lab not in seen:
            seen.append(lab)
    return seen == list(range(len(seen)))


def test_two_speakers_taking_turns() -> None:
    emb, truth = windows(voices(2), [(0, 10), (1, 10), (0, 10), (1, 10)])
    labels = cluster(emb, HOP)
    assert labels.dtype == np.int64
    assert len(labels) == len(emb)
    assert len(set(labels.tolist())) == 2
    np.testing.assert_array_equal(labels, truth)


def test_one_speaker() -> None:
    emb, _ = windows(voices(1), [(0, 40)], noise=0.2)
    labels = cluster(emb, HOP)
    assert set(labels.tolist()) == {0}


def test_three_speakers_found() -> None:
    emb, truth = windows(voices(3), [(0, 8), (1, 8), (2, 8), (0, 8), (1, 8), (2, 8)])
    labels = cluster(emb, HOP)
    assert same_partition(labels, truth)
    assert first_appearance_order(labels)


def test_num_speakers_forces_count() -> None:
    emb, _ = windows(voices(2), [(0, 12), (1, 12), (0, 12), (1, 12)])
    labels = cluster(emb, HOP, ClusterOptions(num_speakers=3))
    assert len(set(labels.tolist())) == 3
    assert first_appearance_order(labels)


def test_num_speakers_matching_truth() -> None:
    emb, truth = windows(voices(3, seed=5), [(0, 8), (1, 8), (2, 8), (1, 8)])
    labels = cluster(emb, HOP, ClusterOptions(num_speakers=3))
    assert same_partition(labels, truth)


def test_max_speakers_one_forces_one() -> None:
    emb, _ = windows(voices(2), [(0, 10), (1, 10), (0, 10), (1, 10)])
    labels = cluster(emb, HOP, ClusterOptions(max_speakers=1))
    assert set(labels.tolist()) == {0}


def test_max_speakers_caps_count() -> None:
    emb, _ = windows(voices(4), [(0, 8), (1, 8), (2, 8), (3, 8), (0, 8), (1, 8), (2, 8), (3, 8)])
    assert len(set(cluster(emb, HOP).tolist())) == 4
    assert len(set(cluster(emb, HOP, ClusterOptions(max_speakers=2)).tolist())) == 2


def test_min_speakers_splits_one_voice() -> None:
    emb, _ = windows(voices(1), [(0, 40)], noise=0.3)
    labels = cluster(emb, HOP, ClusterOptions(min_speakers=2))
    assert len(set(labels.tolist())) == 2


def test_single_change_with_similar_voices_is_one_speaker() -> None:
    # cosine 0.65: two clusters at first (distance 0.35 > 0.3), different by similarity (< 0.85)
    # but above single_change (0.55): a drift of one voice, since the talk changes only once
    centres = voice_pair(0.65)
    emb, _ = windows(centres, [(0, 20), (1, 20)])
    assert set(cluster(emb, HOP).tolist()) == {0}


def test_alternating_similar_voices_stay_two() -> None:
    centres = voice_pair(0.65)
    emb, truth = windows(centres, [(0, 10), (1, 10), (0, 10), (1, 10)])
    labels = cluster(emb, HOP)
    np.testing.assert_array_equal(labels, truth)


def test_single_change_with_different_voices_stays_two() -> None:
    centres = voice_pair(0.3)  # below single_change
    emb, truth = windows(centres, [(0, 20), (1, 20)])
    np.testing.assert_array_equal(cluster(emb, HOP), truth)


def test_single_change_threshold_is_an_option() -> None:
    centres = voice_pair(0.65)
    emb, truth = windows(centres, [(0, 20), (1, 20)])
    labels = cluster(emb, HOP, ClusterOptions(single_change=0.7))
    np.testing.assert_array_equal(labels, truth)


def test_very_similar_voices_merge_even_when_alternating() -> None:
    centres = voice_pair(0.9)  # above same_speaker (0.85)
    emb, _ = windows(centres, [(0, 10), (1, 10), (0, 10), (1, 10)], noise=0.01)
    assert set(cluster(emb, HOP, ClusterOptions(initial_distance=0.05)).tolist()) == {0}


def test_labels_in_order_of_first_appearance() -> None:
    # speaker 1 talks first: it must be label 0
    emb, truth = windows(voices(3), [(1, 8), (2, 8), (0, 8), (1, 8), (0, 8), (2, 8)])
    labels = cluster(emb, HOP)
    assert labels[0] == 0
    assert first_appearance_order(labels)
    assert same_partition(labels, truth)


def test_short_lived_cluster_is_absorbed() -> None:
    # two windows of another voice: less than min_speaker_s (2 s = 4 windows)
    centres = voices(2)
    emb, _ = windows(centres, [(0, 20), (1, 2), (0, 20)])
    assert set(cluster(emb, HOP).tolist()) == {0}
    # with a lower minimum the same two windows form a speaker of their own
    labels = cluster(emb, HOP, ClusterOptions(min_speaker_s=0.5))
    assert len(set(labels.tolist())) == 2


def test_scale_of_embeddings_does_not_matter() -> None:
    emb, truth = windows(voices(2), [(0, 10), (1, 10), (0, 10), (1, 10)])
    scaled = emb * np.linspace(0.5, 20, len(emb), dtype=np.float32)[:, None]
    np.testing.assert_array_equal(cluster(scaled, HOP), truth)


def test_empty_and_single_window() -> None:
    assert cluster(np.zeros((0, DIM), dtype=np.float32), HOP).shape == (0,)
    np.testing.assert_array_equal(cluster(voices(1).astype(np.float32), HOP), [0])


# --- helpers -----------------------------------------------------------------------------------


def test_turn_changes_counts_passes() -> None:
    assert turn_changes(np.array([0, 0, 1, 1, 0, 0, 1, 1]), 0, 1) == 3
    assert turn_changes(np.array([0, 0, 0, 1, 1, 1]), 0, 1) == 1
    assert turn_changes(np.array([0, 0, 0, 0]), 0, 1) == 0


def test_turn_changes_ignores_short_runs() -> None:
    # a one-window blip of 1 is noise: the talk never passes
    assert turn_changes(np.array([0, 0, 1, 0, 0]), 0, 1) == 0
    assert turn_changes(np.array([0, 0, 1, 0, 0]), 0, 1, min_run=1) == 2


def test_turn_changes_ignores_other_clusters() -> None:
    # 2 between them does not count as a pass between 0 and 1, nor break 0's run
    assert turn_changes(np.array([0, 0, 2, 2, 1, 1]), 0, 1) == 1
    assert turn_changes(np.array([0, 2, 0, 1, 1]), 0, 1) == 1
    assert turn_changes(np.array([0, 0, 2, 2, 0, 0]), 0, 1) == 0


def test_smooth_removes_single_blips() -> None:
    np.testing.assert_array_equal(smooth(np.array([0, 0, 1, 0, 0])), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(smooth(np.array([1, 1, 0, 1, 2, 2])), [1, 1, 1, 1, 2, 2])


def test_smooth_keeps_runs_of_two_and_more() -> None:
    labels = np.array([0, 0, 1, 1, 0, 0, 2, 2, 2])
    np.testing.assert_array_equal(smooth(labels), labels)


def test_smooth_short_input_unchanged() -> None:
    np.testing.assert_array_equal(smooth(np.array([0, 1])), [0, 1])


def test_runs_of_encodes_runs_and_feeds_turn_changes() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2, 0, 0])
    assert runs_of(labels) == [(0, 2), (1, 3), (2, 1), (0, 2)]
    assert runs_of(np.array([], dtype=np.int64)) == []
    assert turn_changes(runs_of(labels), 0, 1) == turn_changes(labels, 0, 1) == 2


def test_long_inputs_cluster_a_sample_then_assign_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    import proxyai.pipeline.cluster as cluster_module

    emb, truth = windows(voices(2), [(0, 12), (1, 12)] * 10)
    monkeypatch.setattr(cluster_module, "MAX_LINKAGE", 50)
    labels = cluster(emb, HOP)
    assert len(set(labels.tolist())) == 2
    assert same_partition(labels, truth)


def test_smooth_does_not_modify_input() -> None:
    labels = np.array([0, 0, 1, 0, 0])
    smooth(labels)
    np.testing.assert_array_equal(labels, [0, 0, 1, 0, 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_speakers_robust_to_seed(seed: int) -> None:
    rng = np.random.default_rng(seed)
    turns = [(i % 2, int(rng.integers(6, 15))) for i in range(8)]
    emb, truth = windows(voices(2, seed=seed + 10), turns, noise=0.1, seed=seed)
    np.testing.assert_array_equal(cluster(emb, HOP), truth)
