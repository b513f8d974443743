"""Accounts and API keys in the database (see :mod:`cadastre.auth` for the roles)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cadastre import auth
from cadastre.db.tables import accounts, api_keys
from cadastre.domain.provinces import province_code
from cadastre.errors import Conflict, InvalidInput, NotFound, Unauthenticated


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    role: str
    province: str | None
    display_name: str | None
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    has_password: bool

    @property
    def principal(self) -> auth.Principal:
        return auth.Principal(self.role, self.username, self.province)

    def to_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "province": self.province,
            "display_name": self.display_name,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "signs_in_with_password": self.has_password,
        }


_COLUMNS = (
    accounts.c.id,
    accounts.c.username,
    accounts.c.role,
    accounts.c.province_code,
    accounts.c.display_name,
    accounts.c.created_at,
    accounts.c.created_by,
    accounts.c.disabled_at,
    accounts.c.password_hash.is_not(None).label("has_password"),
)


def _account(row: Any) -> Account:
    return Account(*row)


def normal_username(username: str) -> str:
    name = username.strip().lower()
    if not name:
        raise InvalidInput("a username is required", field="username")
    return name


def add_account(
    conn: Connection,
    username: str,
    role: str,
    *,
    province: str | None = None,
    password: str | None = None,
    display_name: str | None = None,
    created_by: str,
) -> Account:
    """Create an account; an officer names its province, other roles none."""
    name = normal_username(username)
    if role not in auth.ACCOUNT_ROLES:
        raise InvalidInput(
            f"unknown role {role!r}; expected one of {', '.join(auth.ACCOUNT_ROLES)}",
            field="role",
        )
    code: str | None = None
    if role == "officer":
        if not province:
            raise InvalidInput("an officer is bound to one province: name it", field="province")
        code = province_code(province)
    elif province:
        raise InvalidInput(f"only officers are bound to a province, not a {role}", field="province")
    hashed = auth.hash_password(password) if password is not None else None
    try:
        with conn.begin_nested():
            conn.execute(
                insert(accounts).values(
                    username=name,
                    role=role,
                    province_code=code,
                    display_name=display_name,
                    password_hash=hashed,
                    created_by=created_by,
                )
            )
    except IntegrityError as exc:
        if "uq_accounts_username" in str(exc.orig):
            raise Conflict(f"an account named {name!r} exists", field="username") from None
        if "ck_accounts_username" in str(exc.orig):
            raise InvalidInput(
                f"username {name!r}: 2-64 characters of a-z, 0-9, '.', '_', '@', '-', "
                "starting with a letter or digit",
                field="username",
            ) from None
        raise
    return get_account(conn, name)


def get_account(conn: Connection, username: str) -> Account:
    row = conn.execute(
        select(*_COLUMNS).where(accounts.c.username == normal_username(username))
    ).one_or_none()
    if row is None:
        raise NotFound(f"no account named {username!r}", field="username")
    return _account(row)


def list_accounts(conn: Connection) -> list[Account]:
    return [_account(r) for r in conn.execute(select(*_COLUMNS).order_by(accounts.c.username))]


def set_disabled(conn: Connection, username: str, disabled: bool) -> Account:
    """Disable (or enable again) an account: its tokens and keys stop working."""
    account = get_account(conn, username)
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(disabled_at=func.now() if disabled else None)
    )
    return get_account(conn, username)


def set_password(conn: Connection, username: str, password: str) -> None:
    account = get_account(conn, username)
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(password_hash=auth.hash_password(password))
    )


def count_admins(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(accounts)
            .where(accounts.c.role == "admin", accounts.c.disabled_at.is_(None))
        ).scalar_one()
    )


# -------------------------------------------------------------------- keys


def create_key(conn: Connection, username: str, name: str) -> tuple[str, dict[str, Any]]:
    """A new API key for the account: the key itself (shown once) and its listing."""
    account = get_account(conn, username)
    if not name.strip():
        raise InvalidInput("name what the key is for", field="name")
    key, prefix, hashed = auth.new_api_key()
    conn.execute(
        insert(api_keys).values(
            account_id=account.id, prefix=prefix, key_hash=hashed, name=name.strip()
        )
    )
    return key, {"prefix": prefix, "name": name.strip(), "account": account.username}


def list_keys(conn: Connection, username: str | None = None) -> list[dict[str, Any]]:
    q = (
        select(
            api_keys.c.prefix,
            api_keys.c.name,
            accounts.c.username,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        )
        .join(accounts, accounts.c.id == api_keys.c.account_id)
        .order_by(accounts.c.username, api_keys.c.created_at)
    )
    if username:
        q = q.where(accounts.c.username == normal_username(username))
    return [
        {
            "prefix": r.prefix,
            "name": r.name,
            "account": r.username,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in conn.execute(q)
    ]


def revoke_key(conn: Connection, prefix: str) -> None:
    done = conn.execute(
        update(api_keys)
        .where(api_keys.c.prefix == prefix.strip(), api_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    ).rowcount
    if not done:
        raise NotFound(f"no live API key with prefix {prefix!r}", field="prefix")


# ----------------------------------------------------------- authentication


def by_password(conn: Connection, username: str, password: str) -> Account:
    """The account whose name and password these are; 401 (saying no more) otherwise."""
    row = conn.execute(
        select(*_COLUMNS, accounts.c.password_hash).where(
            accounts.c.username == username.strip().lower()
        )
    ).one_or_none()
    stored = row.password_hash if row is not None else None
    ok = auth.verify_password(stored, password)
    if row is None or not ok:
        raise Unauthenticated("wrong username or password")
    account = _account(row[: len(_COLUMNS)])
    if account.disabled_at is not None:
        raise Unauthenticated(f"the account {account.username!r} is disabled")
    return account


def by_key(conn: Connection, key: str) -> Account:
    """The live account an API key belongs to; 401 naming why otherwise."""
    if not key.startswith(auth.KEY_PREFIX):
        raise Unauthenticated(f"an API key starts with {auth.KEY_PREFIX!r}")
    row = conn.execute(
        select(*_COLUMNS, api_keys.c.key_hash, api_keys.c.revoked_at)
        .join(api_keys, api_keys.c.account_id == accounts.c.id)
        .where(api_keys.c.prefix == auth.key_prefix(key))
    ).one_or_none()
    if row is None or not auth.same_hash(row.key_hash, auth.key_hash(key)):
        raise Unauthenticated("unknown API key")
    if row.revoked_at is not None:
        raise Unauthenticated("the API key has been revoked")
    account = _account(row[: len(_COLUMNS)])
    if account.disabled_at is not None:
        raise Unauthenticated(f"the account {account.username!r} is disabled")
    return account


def by_username(conn: Connection, username: str) -> Account:
    """The live account a token names; 401 when it is gone or disabled."""
    row = conn.execute(select(*_COLUMNS).where(accounts.c.username == username)).one_or_none()
    if row is None:
        raise Unauthenticated(f"the account {username!r} no longer exists")
    account = _account(row)
    if account.disabled_at is not None:
        raise Unauthenticated(f"the account {account.username!r} is disabled")
    return account
