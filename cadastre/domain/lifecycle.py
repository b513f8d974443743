"""The life of a licence as a state machine.

::

    applied ──grant──▶ granted ──renew / transfer / relinquish──▶ granted
       │                  │
       └─refuse─▶ refused └─surrender / cancel / expire─▶ surrendered / cancelled / expired

Renewal, transfer and partial relinquishment keep a title ``granted``: they
change its term, its holder or its ground, and each is recorded as an event.
``refused``, ``surrendered``, ``cancelled`` and ``expired`` are final.
"""

from __future__ import annotations

from cadastre.errors import IllegalTransition, InvalidInput

STATUSES = ("applied", "granted", "refused", "surrendered", "cancelled", "expired")
ACTIONS = ("grant", "renew", "transfer", "relinquish", "surrender", "cancel", "expire", "refuse")

#: action -> status it leads to, per current status.
TRANSITIONS: dict[str, dict[str, str]] = {
    "applied": {"grant": "granted", "refuse": "refused"},
    "granted": {
        "renew": "granted",
        "transfer": "granted",
        "relinquish": "granted",
        "surrender": "surrendered",
        "cancel": "cancelled",
        "expire": "expired",
    },
    "refused": {},
    "surrendered": {},
    "cancelled": {},
    "expired": {},
}

#: Statuses in which a title holds its ground against others.
LIVE_STATUSES = ("granted",)


def allowed_actions(status: str) -> list[str]:
    """Actions allowed from ``status``, in a stable order."""
    return list(TRANSITIONS[status])


def next_status(status: str, action: str) -> str:
    """The status that ``action`` leads to from ``status``.

    Raises
    ------
    InvalidInput
        ``action`` is not an action at all.
    IllegalTransition
        ``action`` is not allowed from ``status``; names the allowed ones.

    Examples
    --------
    >>> next_status("applied", "grant")
    'granted'
    >>> next_status("granted", "transfer")
    'granted'
    """
    if action not in ACTIONS:
        raise InvalidInput(
            f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", field="action"
        )
    try:
        return TRANSITIONS[status][action]
    except KeyError:
        raise IllegalTransition(action, status, allowed_actions(status)) from None


def check_status(status: str, *, field: str = "status") -> str:
    if status not in STATUSES:
        raise InvalidInput(
            f"unknown status {status!r}; expected one of {', '.join(STATUSES)}", field=field
        )
    return status
