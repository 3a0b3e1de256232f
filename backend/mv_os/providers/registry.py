"""Pick the messaging adapter for the environment: local -> mock, always (even when WhatsApp credentials are
present); staging and production -> the WhatsApp Cloud API adapter.

`create_app` stores the result in `app.extensions["messaging"]`; tests replace that entry instead of
monkeypatching."""

from __future__ import annotations

from mv_os.providers.base import MessagingProvider
from mv_os.providers.mock import MockMessaging
from mv_os.providers.whatsapp_cloud import WhatsAppCloudMessaging
from mv_os.settings import Environment, Settings


def messaging(settings: Settings) -> MessagingProvider:
    if settings.environment is Environment.LOCAL:
        return MockMessaging.from_settings(settings)
    return WhatsAppCloudMessaging.from_settings(settings)
