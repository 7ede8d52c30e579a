"""Objects that hold a secret never show it in ``repr``: not in a log line, an error report
or a traceback's locals."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation.providers.openai import OpenAIConfig
from moderation.providers.webhook import CustomApiConfig
from server.auth import Secrets
from server.moderation_settings import CustomApiSettings
from server.settings import Settings
from server.webhook_settings import WebhookSettings

SECRET = "s3cr3t-value-0123456789"


@pytest.mark.parametrize(
    "obj",
    [
        Settings(data_dir=Path("d"), api_key=SECRET),
        Settings(data_dir=Path("d"), jwt_secret=SECRET),
        Settings(data_dir=Path("d"), database_url=f"postgresql://parley:{SECRET}@db/parley"),
        Secrets(api_key=SECRET, jwt_secret=SECRET + "2"),
        OpenAIConfig(api_key=SECRET),
        CustomApiConfig(url="https://example.test/moderate", secret=SECRET),
        *WebhookSettings.parse_all([{"url": "https://example.test/hook", "secret": SECRET}], ()),
        CustomApiSettings(url="https://example.test/moderate", secret=SECRET),
    ],
    ids=[
        "settings-api-key",
        "settings-jwt",
        "settings-database-url",
        "secrets",
        "openai",
        "custom-api",
        "webhook",
        "custom-api-settings",
    ],
)
def test_repr_hides_the_secret(obj: object) -> None:
    assert SECRET not in repr(obj) and SECRET not in str(obj)
