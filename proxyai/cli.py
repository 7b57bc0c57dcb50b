"""The ``proxyai`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxyai import __version__


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proxyai", description="Speaker-attributed transcripts, offline.")
    parser.add_argument("--version", action="version", version=f"proxyai {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe and diarize one file")
    t.add_argument("file", help="audio or video file (wav, mp3, flac, ogg/opus, m4a, webm, mp4, …)")
    t.add_argument("-o", "--output", help="write here instead of stdout")
    t.add_argument(
        "--format",
        choices=["json", "srt", "vtt", "txt", "rttm"],
        default=None,
        help="output format (default: from the -o extension, else txt)",
    )
    t.add_argument("--language", help="language code (default: detected)")
    t.add_argument("--task", choices=["transcribe", "translate"], default="transcribe")
    t.add_argument(
        "--model",
        default=os.environ.get("WHISPER_MODEL_PATH") or os.environ.get("WHISPER_MODEL") or "base",
        help="Whisper model: base (bundled, default), tiny.en (bundled), a hub name or a local directory",
    )
    t.add_argument(
        "--diarization",
        choices=["embedded", "pyannote", "none"],
        default=os.environ.get("DIARIZATION_BACKEND") or "embedded",
        help="who speaks when: embedded (default), pyannote or none",
    )
    t.add_argument(
        "--encoder",
        default=os.environ.get("SPEAKER_ENCODER") or "campplus",
        help="speaker encoder: campplus (default), ecapa or ge2e (all bundled), a checkpoint or a hub repo",
    )
    t.add_argument(
        "--clustering",
        choices=["ahc", "spectral"],
        default=os.environ.get("CLUSTERING") or "ahc",
        help="how speakers are counted and grouped (default: ahc)",
    )
    t.add_argument("--num-speakers", type=_positive)
    t.add_argument("--min-speakers", type=_positive)
    t.add_argument("--max-speakers", type=_positive)
    t.add_argument(
        "--channels",
        choices=["auto", "mix", "split"],
        default="auto",
        help="stereo calls: auto (by channel when the sides differ), mix or split",
    )
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=os.environ.get("WHISPER_DEVICE", "auto"))
    t.add_argument("--compute-type", default=os.environ.get("WHISPER_COMPUTE_TYPE", "auto"))
    t.add_argument("--batch-size", type=_positive, help="chunks per batch (default: 8 on a GPU, 4 on a CPU)")
    t.add_argument("--beam-size", type=_positive, default=5)
    t.add_argument("--vad-level", type=int, choices=[0, 1, 2, 3], default=int(os.environ.get("VAD_LEVEL", "2")))
    t.add_argument("--segment-length", type=float, default=float(os.environ.get("SEGMENT_LENGTH_S", "30")))
    t.add_argument("--initial-prompt")
    t.add_argument("--hotwords")
    t.add_argument("--names", help="speaker names, e.g. SPEAKER_00=Anna,SPEAKER_01=Oleg")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("serve", help="API + worker on this machine, no other server (the embedded default)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)

    a = sub.add_parser("api", help="the HTTP API (scaled out: needs CELERY_BROKER_URL)")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)
    a.add_argument("--workers", type=_positive, help="API processes (default: API_WORKERS)")

    w = sub.add_parser("worker", help="a Celery worker")
    w.add_argument("--queues", default="preprocess_cpu,preprocess_gpu", help="comma-separated queues")
    w.add_argument("--concurrency", type=_positive, help="default: CPU_CONCURRENCY or GPU_CONCURRENCY")
    w.add_argument("--pool", choices=["prefork", "threads", "solo"], default="prefork")
    w.add_argument("--beat", action="store_true", help="also run the scheduler (one per deployment)")

    sub.add_parser("beat", help="the scheduler (the daily clean-up)")

    m = sub.add_parser("metrics", help="Prometheus exporter for Celery (queue lengths, task runtimes, workers)")
    m.add_argument("--port", type=int, help="default: METRICS_PORT")

    ad = sub.add_parser("admin", help="administration")
    adsub = ad.add_subparsers(dest="admin_command", required=True)
    cu = adsub.add_parser("create-user", help="create a user and print its API key")
    cu.add_argument("name")
    return parser


def _names(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--names: expected SPEAKER_00=Name, got {item!r}")
        out[key.strip()] = value.strip()
    return out


class _Bar:
    """A progress bar on stderr, shown for inputs longer than a minute."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=100, file=sys.stderr, unit="%", bar_format="{desc:<14}{bar}| {n:.0f}% [{elapsed}]")
        self.bar.set_description_str(stage)
        self.bar.n = round(fraction * 100)
        self.bar.refresh()

    def close(self, clear: bool = False) -> None:
        if self.bar is not None:
            if clear:
                self.bar.leave = False
            self.bar.close()


def transcribe(args: argparse.Namespace) -> int:
    import signal

    # Ctrl-C interrupts even when this process was started with SIGINT ignored (a background job of a
    # script), which Python would otherwise leave ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from proxyai.jobs import JobOptions
    from proxyai.pipeline.asr import AsrOptions
    from proxyai.pipeline.audio import probe
    from proxyai.pipeline.cluster import ClusterOptions
    from proxyai.pipeline.diarize import DiarizationOptions
    from proxyai.pipeline.formats import render
    from proxyai.pipeline.run import PipelineOptions, run

    fmt = args.format
    if fmt is None:
        ext = os.path.splitext(args.output or "")[1].lstrip(".").lower()
        fmt = ext if ext in ("json", "srt", "vtt", "txt", "rttm") else "txt"
    names = _names(args.names)
    if args.output:
        folder = Path(args.output).resolve().parent
        if not folder.is_dir():
            raise ValueError(f"cannot write {args.output}: no such directory {folder}")
    job = JobOptions.parse(
        {
            "language": args.language,
            "task": args.task,
            "num_speakers": args.num_speakers,
            "min_speakers": args.min_speakers,
            "max_speakers": args.max_speakers,
            "diarization": args.diarization,
            "channels": args.channels,
        }
    )
    info = probe(args.file)
    options = PipelineOptions(
        model=args.model,
        device=args.device,
        compute_type=args.compute_type,
        encoder=args.encoder,
        vad_level=args.vad_level,
        segment_length=args.segment_length,
        channels=job.channels,
        pyannote_protocol=os.environ.get("PYANNOTE_PROTOCOL") or None,
        diarizer_cache_dir=os.environ.get("DIARIZER_CACHE_DIR") or None,
        huggingface_token=os.environ.get("HUGGINGFACE_TOKEN") or None,
        asr=AsrOptions(
            language=job.language,
            task=job.task,
            batch_size=args.batch_size,
            beam_size=args.beam_size,
            initial_prompt=args.initial_prompt,
            hotwords=args.hotwords,
        ),
        diarization=DiarizationOptions(
            backend=job.diarization,
            num_speakers=job.num_speakers,
            min_speakers=job.min_speakers,
            max_speakers=job.max_speakers,
            device="cpu" if args.device == "cpu" else "auto",
            cluster=ClusterOptions(method=args.clustering),
        ),
    )
    bar = _Bar(enabled=not args.quiet and info.duration > 60)
    try:
        result = run(args.file, options, progress=bar)
    except BaseException:
        bar.close(clear=True)
        raise
    bar.close()
    text = render(result, fmt, names, file_id=Path(args.file).stem)
    if args.output:
        tmp = f"{args.output}.part"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def service_command(args: argparse.Namespace) -> int:
    from proxyai import service
    from proxyai.config import get_settings

    settings = get_settings()
    if args.command == "serve":
        return service.serve(settings, args.host, args.port)
    if args.command == "api":
        service.run_api(settings, args.host, args.port, args.workers)
    elif args.command == "worker":
        queues = args.queues
        default = settings.gpu_concurrency if queues == "preprocess_gpu" else settings.cpu_concurrency
        service.run_worker(settings, queues, args.concurrency or default, args.pool, args.beat)
    elif args.command == "beat":
        service.run_beat(settings)
    elif args.command == "metrics":
        service.run_exporter(settings, args.port or settings.metrics_port)
    elif args.command == "admin" and args.admin_command == "create-user":
        from proxyai.context import make_context

        user, key = make_context(settings).store.create_user(args.name)
        print(f"user {user.name} ({user.id})")
        print(f"api key: {key}")
        print("The key is shown once; it is stored hashed.", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from proxyai.config import SettingsError
    from proxyai.pipeline.audio import AudioError
    from proxyai.pipeline.diarize import DiarizationError
    from proxyai.pipeline.models import ModelError

    try:
        if args.command == "transcribe":
            return transcribe(args)
        return service_command(args)
    except (AudioError, ModelError, DiarizationError, SettingsError, ValueError, OSError) as exc:
        print(f"proxyai: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # leave at once: the recognition threads would otherwise finish their work first
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
