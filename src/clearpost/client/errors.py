"""Errors the SDK raises. All sit under ``ClearpostError`` and carry a stable ``code``.

Messages never include key material, tokens, passphrases or plaintext.
"""

from __future__ import annotations

from typing import Any

from clearpost.core.errors import ClearpostError


class ClientError(ClearpostError):
    """The server refused a request, or could not be reached.

    ``code`` is the server's machine code (``conversation_not_found``, ``rate_limited`` ...)
    or ``network_error``; ``status`` is the HTTP status (0 when there was no response).
    """

    code = "client_error"

    def __init__(
        self, message: str, *, code: str | None = None, status: int = 0, **extra: Any
    ) -> None:
        super().__init__(message, code=code, **extra)
        self.status = status


class StoreError(ClearpostError):
    """The local device store cannot be used (missing, corrupt, locked, wrong version)."""

    code = "store_error"


class WrongPassphrase(StoreError):
    """The passphrase does not open this device store."""

    code = "wrong_passphrase"


class CryptoError(ClearpostError):
    """A message or payload could not be decrypted or failed a check; never silent."""

    code = "crypto_error"


class DecryptionFailed(CryptoError):
    """The ciphertext did not authenticate: it was tampered with or corrupted."""

    code = "tampered"


class ReplayDetected(CryptoError):
    """A Megolm message index was seen before for a different message."""

    code = "replay"


class UntrustedSender(CryptoError):
    """The claimed sender is not the device that shared the session, or is not verified."""

    code = "untrusted_sender"


class DeviceVerificationFailed(CryptoError):
    """A device's published keys do not verify (bad self-signature, changed keys)."""

    code = "device_unverified"


class UnsupportedContent(CryptoError):
    """Decrypted content of an unknown type or version."""

    code = "unsupported_content"


class ShareError(ClearpostError):
    """A share intent cannot be sent: unknown, expired, or without recipients."""

    code = "share_failed"


class LogVerificationFailed(ClearpostError):
    """The transparency log's answer about you does not verify.

    ``code`` says which check failed (``log_bad_signature``, ``log_not_included``,
    ``log_subject_mismatch``, ``log_missing_proof``, ``log_not_enough_cosignatures``,
    ``log_inconsistent``, ``log_rollback``, ``log_key_mismatch``, ``log_bad_response``);
    ``index`` names the entry when one entry is at fault. A failure is evidence against
    the server, never something to retry silently.
    """

    code = "log_verification_failed"

    def __init__(
        self, message: str, *, code: str | None = None, index: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message, code=code, **extra)
        self.index = index
