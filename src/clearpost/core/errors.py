"""The one error tree of Clearpost.

Every error carries a stable machine ``code`` and a human ``message``. Domain errors know
nothing about HTTP; ``clearpost.server.http.errors`` is the only place that maps them to a
status. Messages never contain secrets (tokens, passwords, key material).
"""

from __future__ import annotations

from typing import Any


class ClearpostError(Exception):
    """Root of every error Clearpost raises on purpose."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(ClearpostError):
    """The request is well-formed JSON but a value breaks a documented rule."""

    code = "invalid_input"


class NotEncrypted(InvalidInput):
    """A body that must be ciphertext is not an encrypted envelope at all."""

    code = "not_encrypted"


class InvalidEnvelope(InvalidInput):
    """An encrypted envelope whose fields or ciphertext do not parse."""

    code = "invalid_envelope"


class SignatureInvalid(InvalidInput):
    """A signed object whose signature does not verify."""

    code = "invalid_signature"


class Unauthenticated(ClearpostError):
    """No valid credentials: absent, unknown, revoked or expired token, or a wrong password."""

    code = "unauthenticated"


class Forbidden(ClearpostError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"


class NotFound(ClearpostError):
    """The thing does not exist, or the caller may not know that it exists."""

    code = "not_found"


class Conflict(ClearpostError):
    """The request contradicts the current state (a taken name, a changed key, a reused id)."""

    code = "conflict"


class RateLimited(ClearpostError):
    """Too many requests; ``retry_after`` says how many seconds to wait."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ClearpostError):
    """The database cannot be reached right now (down, restarting, refusing connections).

    Not a bug and not the caller's fault: the request was not carried out — or, if it was
    in flight when the connection dropped, it may have been — and the same request may be
    sent again after ``retry_after`` seconds (idempotent requests safely)."""

    code = "database_unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ClearpostError):
    """A body or a field is larger than its documented limit."""

    code = "payload_too_large"


class StoredDataDamaged(ClearpostError):
    """The server's own stored data is not what it wrote (a damaged or edited database).

    Not the client's fault, so a 5xx; the message says what is damaged and where, so the
    operator can act on it (and it is logged once, not as a traceback per request)."""

    code = "stored_data_damaged"
