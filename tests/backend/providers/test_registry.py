"""The registry picks the adapter from NODE_ENV (one test per environment), and the mock's behaviour."""

from __future__ import annotations

import json

import pytest

from mv_os.meta.signing import sign, verify
from mv_os.providers import registry
from mv_os.providers.mock import MockMessaging
from mv_os.providers.whatsapp_cloud import WhatsAppCloudMessaging
from mv_os.settings import ConfigError, Settings
from tests.support.servers import cloud_credentials

CLOUD = {
    "DATABASE_URL": "postgresql://app:pw@db.internal:5432/app",  # pragma: allowlist secret (test value)
    **cloud_credentials(),
    "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
}


def test_local_uses_the_mock_even_with_whatsapp_credentials():
    settings = Settings.from_env({"NODE_ENV": "local", **CLOUD})
    provider = registry.messaging(settings)
    assert isinstance(provider, MockMessaging)
    assert settings.whatsapp_access_token is None
    assert "WHATSAPP_ACCESS_TOKEN" in settings.ignored_credentials


def test_staging_uses_the_whatsapp_cloud_adapter():
    provider = registry.messaging(Settings.from_env({"NODE_ENV": "staging", **CLOUD, "WHATSAPP_API_VERSION": "v24.0"}))
    assert isinstance(provider, WhatsAppCloudMessaging)
    assert provider.url == "https://graph.facebook.com/v24.0/106540352242922/messages"


def test_production_uses_the_whatsapp_cloud_adapter():
    provider = registry.messaging(Settings.from_env({"NODE_ENV": "production", **CLOUD}))
    assert isinstance(provider, WhatsAppCloudMessaging)
    assert provider.url.startswith("https://graph.facebook.com/v23.0/")


def test_messaging_settings_are_read_and_validated():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@localhost/x",
            "WHATSAPP_SEND_TIMEOUT": "2.5",
            "WHATSAPP_SEND_ATTEMPTS": "1",
            "MOCK_STATUS_WEBHOOKS": "true",
            "MOCK_STATUS_DELAY": "0",
        }
    )
    assert (settings.whatsapp_send_timeout, settings.whatsapp_send_attempts) == (2.5, 1)
    assert (settings.mock_status_webhooks, settings.mock_status_delay) == (True, 0.0)
    with pytest.raises(ConfigError, match="MOCK_STATUS_WEBHOOKS"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@localhost/x", "MOCK_STATUS_WEBHOOKS": "maybe"})
    with pytest.raises(ConfigError, match="WHATSAPP_SEND_TIMEOUT"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@localhost/x", "WHATSAPP_SEND_TIMEOUT": "0"})


def test_mock_wamids_are_deterministic_and_sends_are_recorded():
    first, second = MockMessaging(seed="t"), MockMessaging(seed="t")
    ids = [first.send_text("4915112345678", "hi").wamid, first.send_text("4915112345678", "hi").wamid]
    assert ids == [second.send_text("4915112345678", "hi").wamid, second.send_text("4915112345678", "hi").wamid]
    assert ids[0] != ids[1], "two sends of the same text are two messages"
    assert MockMessaging(seed="other").send_text("4915112345678", "hi").wamid != ids[0]
    assert [(s.to, s.body) for s in first.sent] == [("4915112345678", "hi")] * 2


def test_mock_status_webhooks_are_signed_meta_payloads():
    mock = MockMessaging(app_secret="s3cret", seed="t")
    body = mock.status_payload("wamid.X", "4915112345678", "delivered", timestamp=1764080000)
    assert verify("s3cret", body, sign("s3cret", body))
    status = json.loads(body)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status == {
        **status,
        "id": "wamid.X",
        "status": "delivered",
        "timestamp": "1764080000",
        "recipient_id": "4915112345678",
    }
