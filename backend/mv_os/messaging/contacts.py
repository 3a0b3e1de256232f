"""Contacts: found by `wa_id`, else by `user_id` (usernames/BSUID carry no wa_id), created or completed."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mv_os.db import database
from mv_os.meta.payload import Contact as Named
from mv_os.models import Contact, utcnow

Resolve = Callable[[str | None, str | None], int | None]


def upsert(named: Iterable[Named]) -> Resolve:
    """Create or complete the contacts named, applied in order: a missing wa_id/user_id is filled in when no
    other contact has it, a new name replaces the old.  One SELECT and one multi-row INSERT (plus one UPDATE
    per changed contact, which is rare).  The caller holds the contacts' locks.  Returns `resolve(wa_id,
    user_id) -> contact id`."""
    specs = [(c.wa_id, c.user_id, c.name[:256] if c.name else None) for c in named if c.wa_id or c.user_id]
    by_wa: dict[str, dict] = {}
    by_user: dict[str, dict] = {}
    if not specs:
        return lambda wa_id, user_id: None
    wa_ids = sorted({w for w, _, _ in specs if w})
    user_ids = sorted({u for _, u, _ in specs if u})
    for contact_id, wa_id, user_id, profile_name in database.execute_sql(
        "SELECT id, wa_id, user_id, profile_name FROM contacts "
        "WHERE wa_id = ANY(%b::text[]) OR user_id = ANY(%b::text[])",
        (wa_ids, user_ids),
    ).fetchall():
        row = {"id": contact_id, "wa_id": wa_id, "user_id": user_id, "profile_name": profile_name, "changed": False}
        if wa_id:
            by_wa[wa_id] = row
        if user_id:
            by_user[user_id] = row
    created: list[dict] = []
    for wa_id, user_id, name in specs:
        contact = (by_wa.get(wa_id) if wa_id else None) or (by_user.get(user_id) if user_id else None)
        if contact is None:
            contact = {"id": None, "wa_id": wa_id, "user_id": user_id, "profile_name": name or "", "changed": False}
            created.append(contact)
        else:
            if wa_id and not contact["wa_id"] and wa_id not in by_wa:
                contact["wa_id"], contact["changed"] = wa_id, True
            if user_id and not contact["user_id"] and user_id not in by_user:
                contact["user_id"], contact["changed"] = user_id, True
            if name and name != contact["profile_name"]:
                contact["profile_name"], contact["changed"] = name, True
        if contact["wa_id"]:
            by_wa[contact["wa_id"]] = contact
        if contact["user_id"]:
            by_user[contact["user_id"]] = contact
    now = utcnow()
    if created:
        ids = {
            (wa_id, user_id): contact_id
            for contact_id, wa_id, user_id in database.execute_sql(
                "INSERT INTO contacts (wa_id, user_id, profile_name, created_at, updated_at) "
                "SELECT w, u, n, %s, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(w, u, n) "
                "RETURNING id, wa_id, user_id",
                (now, now, [c["wa_id"] for c in created], [c["user_id"] for c in created],
                 [c["profile_name"] for c in created]),
            ).fetchall()
        }  # fmt: skip
        for contact in created:  # each new contact's wa_id and user_id are unique within the batch
            contact["id"] = ids[(contact["wa_id"], contact["user_id"])]
    for contact in {id(c): c for c in (*by_wa.values(), *by_user.values())}.values():
        if contact["changed"] and contact["id"] is not None and not any(contact is c for c in created):
            Contact.update(
                wa_id=contact["wa_id"], user_id=contact["user_id"], profile_name=contact["profile_name"], updated_at=now
            ).where(Contact.id == contact["id"]).execute()

    def resolve(wa_id: str | None, user_id: str | None) -> int | None:
        contact = (by_wa.get(wa_id) if wa_id else None) or (by_user.get(user_id) if user_id else None)
        return contact["id"] if contact else None

    return resolve
