"""Pick the messaging adapter named by the environment's policy row (`policy.POLICIES`): local -> mock, always
(even when WhatsApp credentials are present); staging and production -> the WhatsApp Cloud API adapter.

`create_app` stores the result in `app.extensions["messaging"]`; tests replace that entry instead of
monkeypatching."""

from __future__ import annotations

from mv_os.providers.base import MessagingProvider
from mv_os.settings import Settings


def messaging(settings: Settings) -> MessagingProvider:
    # Each adapter is imported only where it is used: local never loads the WhatsApp adapter nor `requests`.
    if settings.environment.policy.provider == "mock":
        from mv_os.providers.mock import MockMessaging

        return MockMessaging.from_settings(settings)
    from mv_os.providers.whatsapp_cloud import WhatsAppCloudMessaging

    return WhatsAppCloudMessaging.from_settings(settings)
