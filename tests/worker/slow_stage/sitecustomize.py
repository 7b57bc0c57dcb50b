"""A test stub, never part of the service: a worker process started with this folder on PYTHONPATH and
``PROXYAI_TEST_SLOW_STAGE=<stage>:<seconds>`` sleeps that long at the start of one stage of every job
(``preparing``: the speech scan; ``transcribing``: the recognition of the chunks; ``diarizing``: the
embedded diarizer; ``merging``: the word-to-speaker assignment), so that a test can kill the worker
while a job is surely in that stage. The stages run in a fraction of a second on the test recordings,
too quickly to catch otherwise. ``<stage>:memory`` instead raises MemoryError the first time that stage
runs in a process (a real allocation failure cannot be brought about reliably in a test)."""

from __future__ import annotations

import functools
import os
import time
from typing import Any


def _slow_down(spec: str) -> None:
    from proxyai.pipeline import run, vad

    stage, _, seconds = spec.partition(":")
    targets: dict[str, tuple[Any, str]] = {
        "preparing": (vad, "detect_speech"),
        "transcribing": (run, "transcribe_chunks"),
        "diarizing": (run, "diarize_embedded"),
        "merging": (run, "assign_speakers"),
    }
    module, name = targets[stage]
    real = getattr(module, name)
    calls = [0]

    @functools.wraps(real)
    def slow(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if seconds == "memory":  # the first call runs out of memory, as a huge allocation would
            if calls[0] == 1:
                raise MemoryError("test stub: out of memory")
        else:
            time.sleep(float(seconds or 30))
        return real(*args, **kwargs)

    setattr(module, name, slow)


if os.environ.get("PROXYAI_TEST_SLOW_STAGE"):
    _slow_down(os.environ["PROXYAI_TEST_SLOW_STAGE"])
