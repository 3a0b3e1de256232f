"""Message delivery statuses: one ranking and one transition rule, for inbound receipts and outbound sends.

A status only moves up the ranking, whatever order receipts arrive in (`read` can come before `delivered`);
`failed` is the top, so it is terminal and keeps its error.  `receipts.promote` applies this rule in SQL."""

from __future__ import annotations

RANKED = ("pending", "accepted", "sent", "delivered", "read", "failed")
STATUS_RANK = {status: rank for rank, status in enumerate(RANKED)}
# What a provider may answer a send with; anything else starts the message at "accepted".
SEND_STATUSES = ("pending", "accepted")


def advances(current: str | None, new: str) -> bool:
    """Whether a message at `current` moves to `new` (unknown statuses never win, and rank below everything)."""
    return new in STATUS_RANK and STATUS_RANK[new] > STATUS_RANK.get(current or "", -1)


def initial_outbound(provider_status: str | None) -> str:
    return provider_status if provider_status in SEND_STATUSES else "accepted"
