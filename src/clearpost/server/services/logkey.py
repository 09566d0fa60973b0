"""The log's signing key: generated on first start, kept in the data directory."""

from __future__ import annotations

import os
from pathlib import Path

from clearpost.core.errors import ClearpostError
from clearpost.core.tlog import Signer


def load_or_create(path: Path, origin: str) -> Signer:
    """Read the signer key at ``path``; create it (mode 0600) if the file does not exist.

    The key's name is the log origin, as C2SP tlog-checkpoint expects."""
    if path.exists():
        signer = Signer.from_skey(path.read_text().strip())
        if signer.name != origin:
            raise ClearpostError(
                f"the log key in {path} is for origin {signer.name!r}, not {origin!r}",
                code="log_key_mismatch",
            )
        return signer
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = Signer.generate(origin)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(signer.reveal_skey() + "\n")
    return signer
