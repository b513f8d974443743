"""Who is asking, and what their role lets them do.

Four roles:

* ``public`` – anyone, not signed in: the public register (EITI Requirement 2.3
  fields) of published licences, and the survey layers marked public.
* ``geologist`` – reads every survey layer and the register's technical
  details (remarks, the shape as submitted); loads survey layers.
* ``officer`` – bound to one province: creates, changes, transitions and
  publishes that province's licences and applications, and sees its
  unpublished applications and holders' contact details.
* ``admin`` – everything, in every province; manages accounts.

People sign in with a password (argon2id) for a short-lived signed token;
machine clients send an API key, of which only a SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cadastre.domain.provinces import PROVINCES
from cadastre.errors import Forbidden, InvalidInput, Unauthenticated

ROLES = ("public", "geologist", "officer", "admin")
#: Roles an account may have (``public`` is the absence of one).
ACCOUNT_ROLES = ROLES[1:]
KEY_PREFIX = "cad_"
_HASHER = PasswordHasher()  # argon2id with the library's current parameters
#: Verified against when the account does not exist, so a wrong name costs what a
#: wrong password does and the response time does not tell which names exist.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
_ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32
KNOWN_WEAK_SECRETS = frozenset({"secret", "changeme", "change-me", "development", "dev"})


@dataclass(frozen=True)
class Principal:
    """The caller: an account, or the anonymous public."""

    role: str = "public"
    username: str | None = None
    province: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.username is not None

    @property
    def actor(self) -> str:
        """Who the event log names for this caller's writes."""
        return self.username or "anonymous"

    @property
    def sees_details(self) -> bool:
        """Register fields beyond the public ones (remarks, the shape as submitted)."""
        return self.signed_in

    @property
    def unpublished_scope(self) -> str | None:
        """Unpublished applications this caller sees: ``"*"`` all, a province code, or None."""
        if self.role == "admin":
            return "*"
        if self.role == "officer":
            return self.province
        return None

    def sees_unpublished(self, province_code: str) -> bool:
        """Also whose holders' contact details this caller sees."""
        scope = self.unpublished_scope
        return scope == "*" or (scope is not None and scope == province_code)

    @property
    def reads_restricted_layers(self) -> bool:
        """Survey layers not marked public: every signed-in role."""
        return self.signed_in


PUBLIC = Principal()


def _province_name(code: str | None) -> str:
    return PROVINCES.get(code or "", code or "no province")


def require_signed_in(who: Principal, what: str = "this request changes the register") -> None:
    if not who.signed_in:
        raise Unauthenticated(
            f"{what}: sign in (POST /auth/token, then 'Authorization: Bearer <token>') "
            "or send an API key ('X-API-Key: <key>')"
        )


def require_licence_writer(who: Principal, province_code: str) -> None:
    """Only officers of the licence's province, and admins, write licences (401/403)."""
    require_signed_in(who)
    if who.role == "admin":
        return
    if who.role == "officer":
        if who.province == province_code:
            return
        raise Forbidden(
            f"an officer of {_province_name(who.province)} may not change licences of "
            f"{_province_name(province_code)}: officers write their own province's "
            "licences only",
            rule="officer_own_province",
            field="province",
        )
    raise Forbidden(
        f"the role {who.role!r} may not change licences: only officers of the "
        "licence's province and admins may",
        rule="licence_writers",
    )


def require_survey_writer(who: Principal) -> None:
    """Survey layers are loaded and removed by geologists and admins (401/403)."""
    require_signed_in(who)
    if who.role not in ("geologist", "admin"):
        raise Forbidden(
            f"the role {who.role!r} may not load or remove survey layers: only "
            "geologists and admins may",
            rule="survey_writers",
        )


def require_admin(who: Principal, what: str) -> None:
    require_signed_in(who)
    if who.role != "admin":
        raise Forbidden(f"only admins may {what}", rule="admin_only")


# ------------------------------------------------------------------ secrets


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _HASHER.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < 12:
        raise InvalidInput("a password has at least 12 characters", field="password")
    if len(password) > 1024:
        raise InvalidInput("a password has at most 1024 characters", field="password")


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; as slow when there is no account."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_api_key() -> tuple[str, str, str]:
    """A new key: (the key, shown once; its prefix, kept and listed; its hash, kept)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key_prefix(key), key_hash(key)


def key_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 8]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_secret(secret: str, environment: str) -> str:
    """The signing key to use: refuse a missing or weak one outside development."""
    weak = len(secret) < MIN_SECRET_LENGTH or secret.lower() in KNOWN_WEAK_SECRETS
    if not weak:
        return secret
    if environment == "development":
        return secrets.token_urlsafe(48)  # tokens last as long as this process
    raise InvalidInput(
        f"CADASTRE_SECRET_KEY is {'empty' if not secret else 'too weak'}: outside "
        f"development mode (CADASTRE_ENVIRONMENT={environment}) the service needs a "
        f"random key of at least {MIN_SECRET_LENGTH} characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
        field="secret_key",
    )


def issue_token(secret: str, username: str, minutes: int) -> tuple[str, int]:
    """A signed access token for ``username`` and its lifetime in seconds."""
    now = datetime.now(UTC)
    claims = {
        "sub": username,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM), minutes * 60


def token_subject(secret: str, token: str) -> str:
    """The username a token was issued to; 401 naming why when it is not valid."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": ["sub", "exp", "iat"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the access token has expired: sign in again") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated(
            "the access token is not valid (malformed or not signed by this service)"
        ) from None
    return str(claims["sub"])
