"""Settings: bad values name their key, sizes parse, every documented key exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxyai.config import Settings, SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO_ROOT / ".env.example"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"vad_level": 7}, "VAD_LEVEL"),
        ({"vad_level": -1}, "VAD_LEVEL"),
        ({"max_file_size": "lots"}, "MAX_FILE_SIZE"),
        ({"max_file_size": "0"}, "MAX_FILE_SIZE"),
        ({"max_file_size": "-5MB"}, "MAX_FILE_SIZE"),
        ({"segment_length_s": 45}, "SEGMENT_LENGTH_S"),
        ({"whisper_device": "tpu"}, "WHISPER_DEVICE"),
        ({"rate_limit_upload": "often"}, "RATE_LIMIT_UPLOAD"),
        ({"metrics_port": 70000}, "METRICS_PORT"),
        ({"file_retention_days": 0}, "FILE_RETENTION_DAYS"),
    ],
)
def test_a_bad_value_raises_settings_error_naming_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert key in message, message
    # only the bad key is named
    others = {name.upper() for name in Settings.model_fields} - {key}
    assert not any(re.search(rf"\b{other}\b", message) for other in others), message


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("500MB", 500_000_000),
        ("1GiB", 1_073_741_824),
        ("500MiB", 500 * 1024**2),
        ("1G", 1_000_000_000),
        ("2kb", 2000),
        (" 1.5 GB ", 1_500_000_000),
        ("524288000", 524_288_000),
        (1234, 1234),
    ],
)
def test_sizes_parse(value: object, size: int) -> None:
    assert load_settings(max_file_size=value).max_file_size == size


def test_a_bad_value_in_the_environment_or_dotenv_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAD_LEVEL", "9")
    with pytest.raises(SettingsError, match="VAD_LEVEL"):
        load_settings()
    monkeypatch.delenv("VAD_LEVEL")
    (tmp_path / ".env").write_text("MAX_FILE_SIZE=huge\n")
    with pytest.raises(SettingsError, match="MAX_FILE_SIZE"):
        load_settings()
    (tmp_path / ".env").write_text("MAX_FILE_SIZE=2GiB\nALLOWED_ORIGINS=https://a.example, https://b.example\n")
    settings = load_settings()
    assert settings.max_file_size == 2 * 1024**3
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]
    # keyword overrides win over the environment and .env
    assert load_settings(max_file_size="1MB").max_file_size == 1_000_000


def _example_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line!r}"
        keys[key.strip()] = value.strip()
    return keys


def test_every_key_in_env_example_is_a_setting() -> None:
    keys = _example_keys()
    assert len(keys) >= 30
    fields = set(Settings.model_fields)
    unknown = sorted(k for k in keys if k.lower() not in fields)
    assert not unknown, f"keys in .env.example that Settings ignores: {unknown}"
    assert all(k == k.upper() for k in keys)


def test_env_example_loads_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copied to .env unchanged, the example gives a working configuration: the documented defaults."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text())
    settings = load_settings()
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_file_size == 500_000_000 == defaults.max_file_size
    assert settings.database_url is None and settings.celery_broker_url is None and settings.admin_token is None
    assert settings.allowed_origins == []
    assert settings.embedded
    for key, value in _example_keys().items():
        name = key.lower()
        if value and name not in ("pyannote_protocol", "max_file_size"):
            assert getattr(settings, name) == getattr(defaults, name), key
