"""Hypothesis strategies for webhook bodies: Meta-shaped payloads whose leaves and lists are mutated, arbitrary
JSON, and hostile text (NUL, lone surrogates, huge numbers).  Shared by the parser's properties (no database)
and the receiver's (through the database)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from mv_os.meta.signing import meta_json

KEYS = st.sampled_from(
    [
        "object",
        "entry",
        "id",
        "changes",
        "field",
        "value",
        "messaging_product",
        "metadata",
        "phone_number_id",
        "contacts",
        "profile",
        "name",
        "username",
        "wa_id",
        "user_id",
        "messages",
        "from",
        "from_user_id",
        "timestamp",
        "type",
        "text",
        "body",
        "image",
        "caption",
        "url",
        "reaction",
        "emoji",
        "statuses",
        "status",
        "recipient_id",
        "errors",
        "code",
        "title",
        "message",
        "error_data",
        "interactive",
        "button_reply",
    ]
)
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "a" * 300,
            "1" * 70,
            "wamid.X",
            "read",
            "failed",
            "delivered",
            "sent",
            "messages",
            "text",
            "-1",
            "99999999999999999999",
            "1e309",
            "NaN",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # NaN/Infinity are not JSON: test_fuzz.py
    NASTY_TEXT,
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=30,
)


def _message():
    return st.fixed_dictionaries(
        {"id": NASTY_TEXT, "from": st.one_of(NASTY_TEXT, SCALARS), "timestamp": SCALARS, "type": NASTY_TEXT},
        optional={
            "text": st.one_of(JSONISH, st.fixed_dictionaries({"body": SCALARS})),
            "from_user_id": NASTY_TEXT,
            "image": JSONISH,
            "reaction": JSONISH,
        },
    )


def _status():
    return st.fixed_dictionaries(
        {"id": NASTY_TEXT, "status": NASTY_TEXT},
        optional={"timestamp": SCALARS, "recipient_id": SCALARS, "errors": st.one_of(JSONISH, st.lists(JSONISH))},
    )


# Meta-shaped payloads whose leaves and lists are mutated: exercises the ingest paths, not only the parser.
META_SHAPED = st.builds(
    lambda contacts, messages, statuses, errors, extra, field, phone: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": field,
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": phone},
                            "contacts": contacts,
                            "messages": messages,
                            "statuses": statuses,
                            "errors": errors,
                            **extra,
                        },
                    }
                ],
            }
        ],
    },
    contacts=st.lists(
        st.fixed_dictionaries({}, optional={"wa_id": SCALARS, "user_id": SCALARS, "profile": JSONISH}), max_size=3
    ),
    messages=st.one_of(st.lists(_message(), max_size=3), JSONISH),
    statuses=st.one_of(st.lists(_status(), max_size=3), JSONISH),
    errors=st.one_of(st.lists(JSONISH, max_size=2), JSONISH),
    extra=st.dictionaries(st.text(max_size=8), JSONISH, max_size=2),
    field=st.one_of(st.just("messages"), NASTY_TEXT),
    phone=SCALARS,
)


def encode(payload) -> bytes:
    try:
        return meta_json(payload)
    except ValueError:  # e.g. a lone surrogate that cannot be escaped as ASCII... fall back to Python's JSON
        return json.dumps(payload).encode("utf-8", "surrogatepass")
