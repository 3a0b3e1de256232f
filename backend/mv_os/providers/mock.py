"""Mock messaging adapter for local runs and tests.

- Deterministic wamids: `wamid.MOCK.<digest of seed, sequence number, recipient and body>`.  Tests pass a
  fixed seed; the registry gives each process a random one, so restarts and gunicorn workers never collide on
  the unique wamid column.
- Records every send in `sent`.
- With `status_webhooks=True` it delivers signed status webhooks (sent -> delivered -> read) for each send to
  `webhook_url` over real HTTP, in a background thread, exactly as Meta would: same payload shape, same
  X-Hub-Signature-256.  The webhook handler has no special case for the mock.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from mv_os.meta.signing import meta_json, signed_headers
from mv_os.providers.base import SendResult

log = logging.getLogger("mv_os.providers.mock")

STATUS_SEQUENCE = ("sent", "delivered", "read")


@dataclass(frozen=True)
class SentMessage:
    wamid: str
    to: str
    body: str
    reply_to: str | None


class MockMessaging:
    name = "mock"

    def __init__(
        self,
        *,
        phone_number_id: str = "100000000000001",
        display_phone_number: str = "15550000001",
        app_secret: str = "",
        webhook_url: str = "http://127.0.0.1:3000/webhooks/whatsapp",
        status_webhooks: bool = False,
        status_delay: float = 0.2,
        seed: str = "mock",
    ):
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self._secret = app_secret
        self.webhook_url = webhook_url
        self.status_webhooks = status_webhooks
        self.status_delay = status_delay
        self.seed = seed
        # Bounded, so a long-running dev server does not grow without end.
        self.sent: deque[SentMessage] = deque(maxlen=1000)
        self.deliveries: deque[tuple[str, str, int]] = deque(maxlen=3000)  # (wamid, status, HTTP status or 0)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"MockMessaging(status_webhooks={self.status_webhooks}, webhook_url={self.webhook_url!r})"

    @classmethod
    def from_settings(cls, settings) -> MockMessaging:
        return cls(
            phone_number_id=settings.whatsapp_phone_number_id,
            app_secret=settings.whatsapp_app_secret,
            webhook_url=settings.public_base_url.rstrip("/") + "/webhooks/whatsapp",
            status_webhooks=settings.mock_status_webhooks,
            status_delay=settings.mock_status_delay,
            seed=secrets.token_hex(4),
        )

    def wamid_for(self, n: int, to: str, body: str) -> str:
        digest = hashlib.sha256(f"{self.seed}\0{n}\0{to}\0{body}".encode()).digest()
        return "wamid.MOCK." + base64.b32encode(digest[:20]).decode().rstrip("=")

    def send_text(self, to: str, body: str, *, reply_to: str | None = None) -> SendResult:
        with self._lock:
            n = next(self._counter)
            wamid = self.wamid_for(n, to, body)
            self.sent.append(SentMessage(wamid=wamid, to=to, body=body, reply_to=reply_to))
        raw = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }
        if self.status_webhooks:
            thread = threading.Thread(
                target=self._deliver_statuses, args=(wamid, to), daemon=True, name=f"mock-status-{n}"
            )
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()
        return SendResult(wamid=wamid, to=to, status="accepted", raw=raw)

    def status_payload(self, wamid: str, to: str, status: str, timestamp: int | None = None) -> bytes:
        recipient = {"recipient_user_id": to} if "." in to else {"recipient_id": to}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id},
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(timestamp or int(time.time())),
                    **recipient,
                    "pricing": {
                        "billable": False,
                        "pricing_model": "PMP",
                        "category": "service",
                        "type": "free_customer_service",
                    },
                }
            ],
        }
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "0", "changes": [{"value": value, "field": "messages"}]}],
        }
        return meta_json(payload)

    def _deliver_statuses(self, wamid: str, to: str) -> None:
        import requests  # only when status webhooks are on (MOCK_STATUS_WEBHOOKS=1)

        for status in STATUS_SEQUENCE:
            time.sleep(self.status_delay)
            body = self.status_payload(wamid, to, status)
            code = 0
            for attempt in range(3):  # like Meta, try again on a non-200 (e.g. the send not committed yet)
                try:
                    response = requests.post(
                        self.webhook_url,
                        data=body,
                        headers=signed_headers(self._secret, body),
                        timeout=5,
                    )
                    code = response.status_code
                except requests.RequestException as exc:
                    log.warning("mock status webhook %s for %s failed: %s", status, wamid, type(exc).__name__)
                    code = 0
                if code == 200:
                    break
                time.sleep(self.status_delay * (attempt + 1))
            self.deliveries.append((wamid, status, code))

    def wait_for_webhooks(self, timeout: float = 10.0) -> None:
        """Tests: wait until every background delivery has finished."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
