"""Conversations (newest first, with contact and last message) and their messages, paginated."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request
from peewee import JOIN, fn

from mv_os.auth import require_auth
from mv_os.errors import ApiError
from mv_os.models import Contact, Conversation, Message

bp = Blueprint("conversations", __name__, url_prefix="/api")
MAX_PER_PAGE = 100


MAX_PAGE = 1_000_000  # far beyond any inbox, and (page - 1) * per_page stays well inside a bigint
_WHOLE_NUMBER = re.compile(r"[0-9]{1,7}")  # ASCII digits only: str.isdigit() takes "²" and other scripts' digits


def page_args(default_per_page: int = 50) -> tuple[int, int]:
    return query_int("page", 1, MAX_PAGE), query_int("per_page", default_per_page, MAX_PER_PAGE)


def query_int(name: str, default: int, maximum: int) -> int:
    """A query parameter holding a whole number from 1 to `maximum`, else 400 in the JSON error shape."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ApiError(400, "invalid_request", f"`{name}` must be a whole number from 1 to {maximum}.")
    return int(raw)


def page_json(items: list, page: int, per_page: int, has_more: bool) -> dict:
    return {"items": items, "page": page, "per_page": per_page, "has_more": has_more}


def iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(m: Message) -> dict:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "direction": m.direction,
        "wamid": m.wamid,
        "type": m.type,
        "text": m.text,
        "status": m.status,
        "error": {"code": m.error_code, "title": m.error_title} if m.error_code else None,
        "sent_at": iso(m.sent_at),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def contact_json(c: Contact) -> dict:
    return {
        "id": c.id,
        "wa_id": c.wa_id,
        "user_id": c.user_id,
        "profile_name": c.profile_name,
        "label": c.label,
    }


@bp.get("/conversations")
@require_auth
def list_conversations():
    page, per_page = page_args()
    conversations = list(
        Conversation.select(Conversation, Contact)
        .join(Contact)
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    has_more = len(conversations) > per_page
    conversations = conversations[:per_page]
    last = _last_messages([c.id for c in conversations])
    items = [
        {
            "id": c.id,
            "phone_number_id": c.phone_number_id,
            "contact": contact_json(c.contact),
            "last_message_at": iso(c.last_message_at),
            "last_message": message_json(last[c.id]) if c.id in last else None,
        }
        for c in conversations
    ]
    return jsonify(page_json(items, page, per_page, has_more))


def _last_messages(conversation_ids: list[int]) -> dict[int, Message]:
    if not conversation_ids:
        return {}
    ranked = Message.select(
        Message.id,
        fn.ROW_NUMBER()
        .over(partition_by=[Message.conversation], order_by=[Message.sent_at.desc(), Message.id.desc()])
        .alias("rn"),
    ).where(Message.conversation.in_(conversation_ids))
    sub = ranked.alias("ranked")
    query = Message.select().join(sub, JOIN.INNER, on=(Message.id == sub.c.id)).where(sub.c.rn == 1)
    return {m.conversation_id: m for m in query}


@bp.get("/conversations/<id:conversation_id>/messages")
@require_auth
def list_messages(conversation_id: int):
    if not Conversation.select().where(Conversation.id == conversation_id).exists():
        raise ApiError(404, "not_found", "No such conversation.")
    page, per_page = page_args()
    # Newest first, like the conversation list: page 1 is what a person looks at; a chat view reverses it.
    messages = list(
        Message.select()
        .where(Message.conversation == conversation_id)
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    has_more = len(messages) > per_page
    return jsonify(page_json([message_json(m) for m in messages[:per_page]], page, per_page, has_more))
