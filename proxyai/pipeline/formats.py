"""Render a result (the pipeline's JSON dict) as JSON, SRT, WebVTT, TXT or RTTM.

Every renderer takes an optional speaker-name map (``{"SPEAKER_00": "Diane"}``); names are applied
at render time, so renaming never rewrites a stored result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

FORMATS = ("json", "srt", "vtt", "txt", "rttm")
CONTENT_TYPES = {
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "rttm": "text/plain; charset=utf-8",
}

Names = Mapping[str, str] | None


def _name(speaker: str | None, names: Names) -> str:
    if speaker is None:
        return "UNKNOWN"
    return _one_line((names or {}).get(speaker, speaker))


_LINE_BREAKS = str.maketrans(dict.fromkeys("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))
# SRT players read HTML-like tags (<b>, <font>) and ASS overrides ({\an8}); SRT has no escape for them,
# so the brackets become look-alikes that no player reads as markup
_SRT_MARKUP = str.maketrans({"<": "‹", ">": "›", "{": "｛", "}": "｝"})


def _one_line(text: str) -> str:
    """``text`` on one line: a line break inside a name or a segment would start a new cue or line."""
    return text.translate(_LINE_BREAKS)


def _clock(seconds: float, sep: str) -> str:
    ms = round(max(seconds, 0.0) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def apply_names(result: Mapping[str, Any], names: Names) -> dict[str, Any]:
    """A copy of ``result`` whose ``speakers[].label`` carry the names (ids stay as they are).

    Shallow: only the speaker list is new, the rest is shared with ``result`` (do not mutate it)."""
    out = dict(result)
    out["speakers"] = [{"id": s["id"], "label": _name(s["id"], names)} for s in result.get("speakers", [])]
    return out


def to_json(result: Mapping[str, Any], names: Names = None) -> str:
    return json.dumps(apply_names(result, names), ensure_ascii=False, indent=1)


def to_srt(result: Mapping[str, Any], names: Names = None) -> str:
    blocks = []
    for i, seg in enumerate(result.get("segments", []), 1):
        start, end = _clock(seg["start"], ","), _clock(seg["end"], ",")
        line = f"{_name(seg.get('speaker'), names)}: {_one_line(seg['text'])}".translate(_SRT_MARKUP)
        blocks.append(f"{i}\n{start} --> {end}\n{line}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(result: Mapping[str, Any], names: Names = None) -> str:
    lines = ["WEBVTT", ""]
    for seg in result.get("segments", []):
        name = _vtt_escape(_name(seg.get("speaker"), names))
        lines.append(f"{_clock(seg['start'], '.')} --> {_clock(seg['end'], '.')}")
        lines.append(f"<v {name}>{_vtt_escape(_one_line(seg['text']))}")
        lines.append("")
    return "\n".join(lines)


def to_txt(result: Mapping[str, Any], names: Names = None) -> str:
    lines = []
    for seg in result.get("segments", []):
        lines.append(f"[{_clock(seg['start'], ',')[:8]}] {_name(seg.get('speaker'), names)}: {_one_line(seg['text'])}")
    return "\n".join(lines) + ("\n" if lines else "")


def to_rttm(result: Mapping[str, Any], names: Names = None, file_id: str = "audio") -> str:
    lines = []
    for turn in result.get("diarization", []):
        name = "_".join(_name(turn["speaker"], names).split())
        dur = max(0.0, turn["end"] - turn["start"])
        lines.append(f"SPEAKER {file_id} 1 {turn['start']:.3f} {dur:.3f} <NA> <NA> {name} <NA> <NA>")
    return "\n".join(lines) + ("\n" if lines else "")


RENDERERS: dict[str, Callable[[Mapping[str, Any], Names], str]] = {
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
    "txt": to_txt,
    "rttm": to_rttm,
}


def render(result: Mapping[str, Any], fmt: str, names: Names = None, file_id: str | None = None) -> str:
    """``result`` in ``fmt``; ``file_id`` names the recording in RTTM."""
    if fmt not in RENDERERS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "rttm" and file_id:
        return to_rttm(result, names, file_id=file_id.replace(" ", "_"))
    return RENDERERS[fmt](result, names)
