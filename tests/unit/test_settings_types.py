"""Settings: a TOML value must have the setting's type, ranges are checked, and every
refusal names the setting (and the file or variable it came from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearpost.core.errors import InvalidInput
from clearpost.server.config import load_settings


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('port = "8448"', "setting 'port' must be a whole number, not '8448'"),
        ("port = true", "setting 'port' must be a whole number, not True"),
        ("port = 70000", "setting 'port' must be 0 to 65535"),
        ("log_level = 5", "setting 'log_level' must be a string, not 5"),
        ("max_body_bytes = 1.5", "setting 'max_body_bytes' must be a whole number"),
        ("data_dir = [1]", "setting 'data_dir' must be a path (string)"),
        ("login_rate_per_minute = -1", "setting 'login_rate_per_minute' must be 0 (off) or above"),
        ("body_timeout_seconds = 0", "setting 'body_timeout_seconds' must be above 0"),
        ("keydir_log_seconds = -1", "setting 'keydir_log_seconds' must be 0 (at every epoch)"),
        ("keydir_log_seconds = 3601", "to 3600 (clients refuse a longer interval)"),
        ("keydir_heartbeat_seconds = 86401", "to 86400 (clients refuse a longer heartbeat)"),
        ('trusted_proxies = "10.0.0.0/33"', "setting 'trusted_proxies'"),
        ("server = 1", "[server] must be a table"),
    ],
)
def test_wrong_values_in_the_file_are_named(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    with pytest.raises(InvalidInput) as err:
        load_settings(config)
    assert message in err.value.message


def test_right_values_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[server]\nheader_timeout_seconds = 2\ntrusted_proxies = "127.0.0.1, 10.0.0.0/8"\n'
    )
    monkeypatch.setenv("CLEARPOST_MAX_CONNECTIONS", "50")
    settings = load_settings(config)
    assert settings.header_timeout_seconds == 2.0 and settings.max_connections == 50
    assert [str(n) for n in settings.proxy_networks()] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert load_settings().proxy_networks() == []  # nothing is trusted by default


def test_a_wrong_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARPOST_HEADER_TIMEOUT_SECONDS", "soon")
    with pytest.raises(InvalidInput, match=r"\$CLEARPOST_HEADER_TIMEOUT_SECONDS"):
        load_settings()
