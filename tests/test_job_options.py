"""One set of job options, validated the same way wherever a job comes from; the lifecycle's names."""

from __future__ import annotations

import pytest

from proxyai.jobs import ACTIVE, JobOptions, OptionsError, Stage, Status, overall_progress


def test_form_fields_become_typed_options_and_only_the_choices_are_stored() -> None:
    options = JobOptions.parse(
        {"language": " RU ", "num_speakers": "2", "channels": "", "max_speakers": "auto", "unknown": "x"}
    )
    assert (options.language, options.num_speakers, options.max_speakers, options.channels) == ("ru", 2, None, "auto")
    assert options.stored() == {"language": "ru", "num_speakers": 2}
    assert JobOptions.parse(options.stored()) == options  # what the worker reads back is what was asked
    assert JobOptions.parse({}) == JobOptions()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"language": "xx"}, "language"),
        ({"language": 5}, "language"),
        ({"num_speakers": True}, "num_speakers"),
        ({"num_speakers": 0}, "num_speakers"),
        ({"min_speakers": 3, "max_speakers": 2}, "min_speakers"),
        ({"task": "translate", "diarization": "pyannote", "channels": "mono"}, "channels"),
    ],
)
def test_a_bad_option_names_its_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(OptionsError) as caught:
        JobOptions.parse(values)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")


def test_the_cli_refuses_what_the_api_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    from proxyai.cli import main

    assert main(["transcribe", "missing.wav", "--language", "klingon"]) != 0
    assert "language: unknown language code 'klingon'" in capsys.readouterr().err


def test_statuses_and_stages() -> None:
    assert [s.value for s in Status] == ["queued", "processing", "done", "failed"]
    assert Stage.PREPARING == "preparing" and Status.QUEUED in ACTIVE and Status.DONE not in ACTIVE
    assert overall_progress(0.0, 0.0, prepared=False) == 0
    assert overall_progress(0.0, 0.0) == 5 and overall_progress(1.0, 1.0) == 95
