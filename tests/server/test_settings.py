"""Settings layers: defaults < TOML file < PARLEY_* environment < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings, load_settings


def test_defaults_are_the_production_safe_ones() -> None:
    s = load_settings()
    assert s == Settings()
    assert (s.insecure_http, s.rate_limit, s.sqlite_synchronous) == (False, 20.0, "FULL")
    assert s.max_frame_bytes == 64 * 1024 and s.ws_per_message_deflate is False


def test_layers_override_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "parley.toml"
    toml.write_text(
        '[parley]\nport = 9001\nrate-limit = 5\nallowed-origins = ["https://a.example"]\n'
        'host = "0.0.0.0"\n'
    )
    env = {"PARLEY_PORT": "9002", "PARLEY_INSECURE_HTTP": "yes", "UNRELATED": "x"}
    s = load_settings({"port": 9003, "host": None}, env, toml)
    assert s.port == 9003  # command line beats environment beats file
    assert s.insecure_http is True  # from the environment
    assert (s.rate_limit, s.host) == (5.0, "0.0.0.0")  # from the file; None flags don't count
    assert s.allowed_origins == ("https://a.example",)
    assert load_settings(
        env={"PARLEY_ALLOWED_ORIGINS": "https://b, https://c"}
    ).allowed_origins == (
        "https://b",
        "https://c",
    )


def test_database_url_selects_postgresql_and_empty_means_sqlite() -> None:
    url = "postgresql://parley@127.0.0.1:5432/parley"
    assert load_settings().database_url is None
    assert load_settings(env={"PARLEY_DATABASE_URL": url}).database_url == url
    assert load_settings({"database_url": ""}, {"PARLEY_DATABASE_URL": url}).database_url is None


def test_top_level_toml_keys_and_synchronous_case(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('sqlite_synchronous = "normal"\nmoderation-workers = 2\n')
    s = load_settings(config_file=toml)
    assert (s.sqlite_synchronous, s.moderation_workers) == ("NORMAL", 2)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[parley]\nprot = 1\n", "unknown setting 'prot'"),
        ('sqlite_synchronous = "sometimes"\n', "sqlite_synchronous must be"),
    ],
)
def test_bad_config_is_refused_with_its_name(tmp_path: Path, text: str, error: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_settings(config_file=toml)
