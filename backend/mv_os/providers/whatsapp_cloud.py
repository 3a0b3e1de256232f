"""WhatsApp Cloud API adapter: `POST {base}/{version}/{phone-number-id}/messages`.

The only backend module that imports `requests` (enforced by the import-linter contract in .importlinter).
Every call has a timeout.  Errors are mapped from the response's `error.code`:

- retried with exponential backoff and full jitter: 130429 (rate limit), 131056 (pair rate limit),
  80007 (WABA rate limit), 131000 (something went wrong), any 5xx without a known permanent code, and
  connection failures (the request never reached Meta, so it cannot have been sent);
- never retried: 131047 (24 h window closed), 131026 (undeliverable), 190 (access token expired: an
  operator has to act, so it is logged at ERROR) and every other 4xx;
- a read timeout is not retried either: Meta may already have sent the message, and a retry would send it
  twice.  It is reported as retryable, so the caller can offer to try again.

requests' read timeout bounds each socket read, not the whole answer: a Meta that drips a byte every few
seconds would hold the thread for ever.  So each attempt also has a deadline (connect timeout + send timeout):
a watchdog shuts the socket down when it passes, and that counts as a read timeout.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from mv_os.meta.errors import CONFIG_CODES, NEVER_RETRY_CODES, RETRYABLE_CODES
from mv_os.providers.base import (
    PermanentProviderError,
    ProviderConfigError,
    ProviderError,
    RetryableProviderError,
    SendResult,
)

log = logging.getLogger("mv_os.providers.whatsapp")

MAX_BACKOFF_SECONDS = 8.0
# Business-scoped user ids (BSUID) look like "US.13491208655302741918"; phone-based wa_ids are digits.
_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]+$")


# ---------------------------------------------------------------------------------- deadline per attempt
_attempt_state = threading.local()  # {"connection": the urllib3 connection this thread's attempt uses}


class _TrackedHTTPConnection(HTTPConnection):
    def request(self, *args, **kwargs):
        state = getattr(_attempt_state, "current", None)
        if state is not None:
            state["connection"] = self
        return super().request(*args, **kwargs)


class _TrackedHTTPSConnection(HTTPSConnection):
    request = _TrackedHTTPConnection.request


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _TrackingAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections tell `_attempt_state` which socket the current attempt uses."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class _Deadline:
    """Shut the attempt's socket down if it is still in use `seconds` from now."""

    def __init__(self, seconds: float):
        self.state: dict = {}
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self):
        _attempt_state.current = self.state
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _attempt_state.current = None
        return False

    def _fire(self):
        connection = self.state.get("connection")
        sock = getattr(connection, "sock", None)
        if sock is not None:
            self.fired = True
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class WhatsAppCloudMessaging:
    name = "whatsapp_cloud"

    def __init__(
        self,
        *,
        access_token: str,
        phone_number_id: str,
        api_version: str = "v23.0",
        base_url: str = "https://graph.facebook.com",
        timeout: float = 10.0,
        connect_timeout: float = 3.05,
        max_attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        # A missing token is reported per send (ProviderConfigError -> 502), not at start-up: settings
        # validation already refuses to start staging/production without one.
        self._token = access_token
        self.url = f"{base_url.rstrip('/')}/{api_version}/{phone_number_id}/messages"
        self.timeout = (connect_timeout, timeout)
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self._sleep = sleep
        self._local = threading.local()

    def __repr__(self) -> str:  # never shows the token
        return f"WhatsAppCloudMessaging(url={self.url!r})"

    @classmethod
    def from_settings(cls, settings) -> WhatsAppCloudMessaging:
        return cls(
            access_token=settings.whatsapp_access_token or "",
            phone_number_id=settings.whatsapp_phone_number_id,
            api_version=settings.whatsapp_api_version,
            base_url=settings.whatsapp_api_base_url,
            timeout=settings.whatsapp_send_timeout,
            max_attempts=settings.whatsapp_send_attempts,
            backoff=settings.whatsapp_retry_backoff,
        )

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            for prefix in ("http://", "https://"):
                session.mount(prefix, _TrackingAdapter())
            session.headers["Authorization"] = f"Bearer {self._token}"
            self._local.session = session
        return session

    def send_text(self, to: str, body: str, *, reply_to: str | None = None) -> SendResult:
        if not self._token:
            raise ProviderConfigError("the WhatsApp access token is not configured")
        payload: dict = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        payload["recipient" if _BSUID.match(to) else "to"] = to
        payload.update(type="text", text={"preview_url": False, "body": body})
        if reply_to:
            payload["context"] = {"message_id": reply_to}

        last: RetryableProviderError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._attempt(payload, to)
            except RetryableProviderError as err:
                err.attempts = attempt
                last = err
                if not err.safe_to_retry or attempt == self.max_attempts:
                    break
                delay = random.uniform(0, min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (attempt - 1)))
                log.warning(
                    "whatsapp send failed (%s), attempt %d/%d; retrying in %.2fs",
                    err,
                    attempt,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)
        assert last is not None
        log.warning("whatsapp send gave up after %d attempt(s): %s", last.attempts, last)
        raise last

    def _timed_out(self) -> RetryableProviderError:
        """A read timeout or a passed deadline: the request reached Meta and may have been sent; never retried."""
        self._local.session = None  # its connection may be cut off mid-answer: start clean next time
        return RetryableProviderError(
            "the WhatsApp API did not answer in time; the message may have been sent", safe_to_retry=False
        )

    def _attempt(self, payload: dict, to: str) -> SendResult:
        deadline = _Deadline(sum(self.timeout))
        try:
            with deadline:
                response = self._session().post(self.url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            if deadline.fired:  # the watchdog cut a dripping answer off: the request did reach Meta
                raise self._timed_out() from None
            if isinstance(exc, requests.ConnectionError):
                # ConnectTimeout is a ConnectionError too: the request never reached Meta.
                raise RetryableProviderError(f"cannot reach the WhatsApp API ({type(exc).__name__})") from None
            if isinstance(exc, requests.Timeout):
                raise self._timed_out() from None
            raise ProviderError(f"WhatsApp API request failed ({type(exc).__name__})") from None
        if deadline.fired:  # cut off mid-answer: what was read is incomplete (headers may just have ended)
            raise self._timed_out()

        try:
            data = response.json()
        except ValueError:
            data = None
        if response.ok and isinstance(data, dict):
            try:
                message = data["messages"][0]
                wamid = str(message["id"])
            except (KeyError, IndexError, TypeError):
                raise ProviderError(
                    "the WhatsApp API answered without a message id", http_status=response.status_code
                ) from None
            return SendResult(wamid=wamid, to=to, status=str(message.get("message_status") or "accepted"), raw=data)
        raise _map_error(response.status_code, data)


def _map_error(http_status: int, data) -> ProviderError:
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    text = str(error.get("message") or f"HTTP {http_status}")[:300]
    kwargs = {"code": code, "http_status": http_status}
    if code in RETRYABLE_CODES:
        return RetryableProviderError(text, **kwargs)
    if code in CONFIG_CODES or (http_status in (401, 403) and code is None):
        log.error("WhatsApp rejected our credentials or configuration: %s (code %s)", text, code)
        return ProviderConfigError(text, **kwargs)
    if code in NEVER_RETRY_CODES:
        return PermanentProviderError(text, **kwargs)
    if http_status >= 500 or http_status == 429:
        return RetryableProviderError(text, **kwargs)
    return PermanentProviderError(text, **kwargs)
