"""X-Hub-Signature-256 and Meta's serialization, and that the protocol package needs only the standard library
(the replay CLI runs without the backend's dependencies)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import pytest

from mv_os.meta.signing import HEADER, meta_json, sign, signed_headers, verify
from tests.support.servers import ROOT
from tests.support.webhooks import LOCAL_SECRET, fixture

pytestmark = pytest.mark.unit


def test_the_signature_is_hmac_sha256_of_the_exact_bytes_with_the_app_secret():
    body = fixture("inbound_text.json")
    expected = hmac.new(LOCAL_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(LOCAL_SECRET, body) == "sha256=" + expected
    assert signed_headers(LOCAL_SECRET, body)[HEADER] == "sha256=" + expected


def test_verify_accepts_the_signature_in_any_case_and_refuses_one_changed_byte():
    body = fixture("inbound_text.json")
    signature = sign(LOCAL_SECRET, body)
    assert verify(LOCAL_SECRET, body, signature.upper().replace("SHA256=", "sha256="))
    assert not verify(LOCAL_SECRET, body[:-2] + b" }", signature)
    assert not verify("another-secret", body, signature)


def test_meta_json_escapes_like_meta():
    assert meta_json({"t": "Gr\u00fc\u00dfe https://x/y"}) == b'{"t":"Gr\\u00fc\\u00dfe https:\\/\\/x\\/y"}'


def test_the_protocol_package_imports_with_the_standard_library_alone():
    code = (
        "import sys, mv_os.meta.signing, mv_os.meta.payload, mv_os.meta.errors\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & {'flask', 'peewee', 'psycopg', 'requests', 'werkzeug'}\n"
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path[:0] = [{str(ROOT / 'backend')!r}]\n{code}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
