"""Rendering a result as JSON, SRT, WebVTT, TXT and RTTM, with and without speaker names."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from proxyai.pipeline.formats import CONTENT_TYPES, FORMATS, RENDERERS, apply_names, render, to_rttm


def word(start: float, end: float, text: str) -> dict[str, Any]:
    return {"start": start, "end": end, "word": text, "probability": 0.9}


@pytest.fixture
def result() -> dict[str, Any]:
    """A result shaped as ``run.merge`` builds it."""
    return {
        "duration": 3725.5,
        "language": "en",
        "language_probability": 0.98,
        "speakers": [{"id": "SPEAKER_00", "label": "SPEAKER_00"}, {"id": "SPEAKER_01", "label": "SPEAKER_01"}],
        "segments": [
            {
                "start": 1.5,
                "end": 3.25,
                "speaker": "SPEAKER_00",
                "text": "Hello there.",
                "words": [word(1.5, 2.0, "Hello"), word(2.1, 3.25, "there.")],
            },
            {
                "start": 62.0,
                "end": 64.004,
                "speaker": "SPEAKER_01",
                "text": "Is x < y & y > z?",
                "words": [word(62.0, 64.004, "Is")],
            },
            {
                "start": 3723.4567,
                "end": 3725.5,
                "speaker": "SPEAKER_00",
                "text": "Bye.",
                "words": [word(3723.4567, 3725.5, "Bye.")],
            },
        ],
        "diarization": [
            {"start": 1.2, "end": 3.5, "speaker": "SPEAKER_00"},
            {"start": 61.8, "end": 64.3, "speaker": "SPEAKER_01"},
            {"start": 3723.0, "end": 3725.5, "speaker": "SPEAKER_00"},
        ],
        "model": {"asr": "base", "diarization": "embedded"},
        "timings": {"total": 1.0},
    }


NAMES = {"SPEAKER_00": "Diane Lee", "SPEAKER_01": "Bob"}


# --- SRT ---------------------------------------------------------------------------------------


def test_srt(result: dict[str, Any]) -> None:
    srt = render(result, "srt")
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == 3
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d", lines[1])
    assert blocks[0].split("\n")[1] == "00:00:01,500 --> 00:00:03,250"
    assert blocks[0].split("\n")[2] == "SPEAKER_00: Hello there."
    assert blocks[1].split("\n")[1] == "00:01:02,000 --> 00:01:04,004"
    assert blocks[2].split("\n")[1] == "01:02:03,457 --> 01:02:05,500"


def test_srt_carries_no_markup_from_names_or_text(result: dict[str, Any]) -> None:
    """SRT players read HTML-like tags and ASS overrides, and SRT has no escape: the brackets of names
    and text become look-alikes, so a name shows as typed and styles nothing."""
    result["segments"][0]["text"] = '<font color="red">Hello</font> {\\an8}there.'
    srt = render(result, "srt", {"SPEAKER_00": "<b>Eve</b>", "SPEAKER_01": "Bob"})
    assert '‹b›Eve‹/b›: ‹font color="red"›Hello‹/font› ｛\\an8｝there.' in srt
    assert "Bob: Is x ‹ y & y › z?" in srt
    assert not re.search(r"[<>{}]", srt.replace("-->", ""))


@pytest.mark.parametrize("fmt", ["srt", "vtt", "txt"])
def test_line_breaks_in_text_or_names_start_no_new_cue(result: dict[str, Any], fmt: str) -> None:
    result["segments"][1]["text"] = "one\n\n99\n00:00:00,000 --> 00:00:09,000\u2028two\rthree"
    out = render(result, fmt, {"SPEAKER_00": "Ann\u2029Lee"})
    if fmt == "txt":
        assert len(out.splitlines()) == 3 and "Ann Lee: Hello there." in out
    else:
        assert out.count("-->") == 3  # the arrow inside the text is no timing line (its ">" is escaped)
        assert len(out.strip().split("\n\n")) == (3 if fmt == "srt" else 4)  # vtt: header + 3 cues
    assert "\u2028" not in out and "\u2029" not in out and "\r" not in out


def test_srt_names(result: dict[str, Any]) -> None:
    srt = render(result, "srt", NAMES)
    assert "Diane Lee: Hello there." in srt
    assert "Bob: Is x ‹ y & y › z?" in srt  # no markup in SRT (see below)
    assert "SPEAKER_0" not in srt


# --- WebVTT ------------------------------------------------------------------------------------


def test_vtt(result: dict[str, Any]) -> None:
    vtt = render(result, "vtt")
    assert vtt.startswith("WEBVTT\n\n")
    assert "00:00:01.500 --> 00:00:03.250\n<v SPEAKER_00>Hello there." in vtt
    assert "01:02:03.457 --> 01:02:05.500" in vtt
    assert vtt.count("-->") == 3
    assert vtt.count("<v ") == 3


def test_vtt_escapes_markup(result: dict[str, Any]) -> None:
    vtt = render(result, "vtt", {"SPEAKER_01": "Bob <ops> & Co"})
    assert "<v Bob &lt;ops&gt; &amp; Co>Is x &lt; y &amp; y &gt; z?" in vtt
    # nothing but the voice tags is markup
    without_tags = re.sub(r"<v [^<>]*>", "", vtt)
    assert "<" not in without_tags and ">" not in without_tags.replace("-->", "")


def test_vtt_names(result: dict[str, Any]) -> None:
    vtt = render(result, "vtt", NAMES)
    assert "<v Diane Lee>Hello there." in vtt
    assert "<v Bob>" in vtt
    assert "SPEAKER_0" not in vtt


# --- TXT ---------------------------------------------------------------------------------------


def test_txt(result: dict[str, Any]) -> None:
    lines = render(result, "txt").splitlines()
    assert lines == [
        "[00:00:01] SPEAKER_00: Hello there.",
        "[00:01:02] SPEAKER_01: Is x < y & y > z?",
        "[01:02:03] SPEAKER_00: Bye.",
    ]
    assert render(result, "txt").endswith("\n")


def test_txt_names(result: dict[str, Any]) -> None:
    lines = render(result, "txt", NAMES).splitlines()
    assert lines[0] == "[00:00:01] Diane Lee: Hello there."
    assert lines[1].startswith("[00:01:02] Bob: ")


def test_unknown_speaker_in_text(result: dict[str, Any]) -> None:
    result["segments"][0]["speaker"] = None
    assert render(result, "txt").splitlines()[0] == "[00:00:01] UNKNOWN: Hello there."
    assert "UNKNOWN: Hello there." in render(result, "srt")


# --- RTTM --------------------------------------------------------------------------------------


def test_rttm(result: dict[str, Any]) -> None:
    lines = render(result, "rttm").splitlines()
    assert len(lines) == len(result["diarization"])
    for line, turn in zip(lines, result["diarization"], strict=True):
        fields = line.split()
        assert len(fields) == 10
        assert fields[0] == "SPEAKER"
        assert fields[2] == "1"
        assert float(fields[3]) == pytest.approx(turn["start"], abs=1e-3)
        assert float(fields[4]) == pytest.approx(turn["end"] - turn["start"], abs=1e-3)
        assert fields[7] == turn["speaker"]
        assert fields[5] == fields[6] == fields[8] == fields[9] == "<NA>"
    assert lines[1].split()[3:5] == ["61.800", "2.500"]


def test_rttm_names_without_spaces(result: dict[str, Any]) -> None:
    lines = render(result, "rttm", NAMES).splitlines()
    assert all(len(line.split()) == 10 for line in lines)
    assert lines[0].split()[7] == "Diane_Lee"
    assert lines[1].split()[7] == "Bob"


def test_rttm_file_id(result: dict[str, Any]) -> None:
    assert all(line.split()[1] == "call42" for line in to_rttm(result, file_id="call42").splitlines())


def test_rttm_reads_back(result: dict[str, Any], tmp_path: Any) -> None:
    from proxyai.pipeline.scoring import read_rttm

    path = tmp_path / "out.rttm"
    path.write_text(render(result, "rttm"))
    turns = read_rttm(str(path))
    assert [(t.start, round(t.end, 3), t.speaker) for t in turns] == [
        (d["start"], d["end"], d["speaker"]) for d in result["diarization"]
    ]


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trip(result: dict[str, Any]) -> None:
    assert json.loads(render(result, "json")) == result


def test_json_names(result: dict[str, Any]) -> None:
    original = copy.deepcopy(result)
    data = json.loads(render(result, "json", NAMES))
    assert data["speakers"] == [{"id": "SPEAKER_00", "label": "Diane Lee"}, {"id": "SPEAKER_01", "label": "Bob"}]
    # ids stay, only labels change
    assert [s["speaker"] for s in data["segments"]] == [s["speaker"] for s in result["segments"]]
    assert data["diarization"] == result["diarization"]
    assert result == original  # rendering never rewrites the stored result


def test_json_keeps_unicode(result: dict[str, Any]) -> None:
    result["segments"][0]["text"] = "Привет, мир — ça va?"
    text = render(result, "json", {"SPEAKER_00": "Дмитрий"})
    assert "Привет, мир — ça va?" in text
    assert "Дмитрий" in text


def test_apply_names_partial_map(result: dict[str, Any]) -> None:
    out = apply_names(result, {"SPEAKER_01": "Bob"})
    assert out["speakers"] == [{"id": "SPEAKER_00", "label": "SPEAKER_00"}, {"id": "SPEAKER_01", "label": "Bob"}]
    assert out is not result
    assert result["speakers"][1]["label"] == "SPEAKER_01"


# --- all formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_names_apply_in_every_format(result: dict[str, Any], fmt: str) -> None:
    plain = render(result, fmt)
    named = render(result, fmt, {"SPEAKER_01": "Zorro"})
    assert "Zorro" not in plain
    assert "Zorro" in named


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_result(fmt: str) -> None:
    empty: dict[str, Any] = {"duration": 0.0, "language": None, "speakers": [], "segments": [], "diarization": []}
    out = render(empty, fmt)
    assert isinstance(out, str)
    if fmt == "json":
        assert json.loads(out) == empty
    elif fmt == "vtt":
        assert out.startswith("WEBVTT")
        assert "-->" not in out
    else:
        assert out == ""


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_keys_render(fmt: str) -> None:
    assert isinstance(render({}, fmt), str)


@pytest.mark.parametrize("fmt", ["pdf", "", "SRT", "docx"])
def test_unknown_format(result: dict[str, Any], fmt: str) -> None:
    with pytest.raises(ValueError, match="format"):
        render(result, fmt)


def test_every_format_has_a_renderer_and_content_type() -> None:
    assert set(FORMATS) == set(RENDERERS) == set(CONTENT_TYPES)


def test_negative_times_clamped(result: dict[str, Any]) -> None:
    result["segments"][0]["start"] = -0.2
    assert render(result, "srt").split("\n")[1].startswith("00:00:00,000 -->")
