"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed head of a log.

The note text is the origin line, the tree size in decimal (no leading zeros), the
base64 root hash (32 bytes), then optional non-empty extension lines, each line ending
in a newline. ``Checkpoint.parse`` accepts exactly that and nothing looser, so a parsed
checkpoint always prints back to the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from clearpost.core.tlog.errors import CheckpointError
from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.keys import b64decode_strict, b64encode
from clearpost.core.tlog.nodes import MAX_TREE_SIZE
from clearpost.core.tlog.note import Note, NoteSigner, NoteVerifier, open_note, sign_note

_SIZE_LINE = re.compile(r"0|[1-9][0-9]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's claim: its tree of ``size`` leaves has root ``root_hash``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not _is_line(self.origin):
            raise CheckpointError("origin must be a non-empty line without control characters")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError("tree size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError("tree size must be an unsigned 64-bit integer")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple) or not all(
            isinstance(line, str) and _is_line(line) for line in self.extensions
        ):
            raise CheckpointError("extension lines must be non-empty, without control characters")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root and extensions, one per line."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly; raises ``CheckpointError``."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root hash lines")
        origin, size_line, root_line, *extensions = lines
        if not _SIZE_LINE.fullmatch(size_line):
            raise CheckpointError("tree size must be decimal digits without leading zeros")
        root = b64decode_strict(root_line)
        if root is None:
            raise CheckpointError("root hash must be canonical base64")
        return cls(origin, int(size_line), root, tuple(extensions))

    def sign(self, signers: Sequence[NoteSigner]) -> bytes:
        """This checkpoint as a signed note."""
        return sign_note(self.to_text(), signers)


def open_checkpoint(
    msg: bytes | str, verifiers: Sequence[NoteVerifier], *, origin: str
) -> tuple[Checkpoint, Note]:
    """Open a signed checkpoint from the log named ``origin``.

    1. Open the note (``open_note``): at least one trusted signature, none invalid.
    2. Parse its text as a checkpoint.
    3. Check the origin line is the expected one; a checkpoint of another log, even
       signed by a trusted key, raises ``CheckpointError``.
    """
    note = open_note(msg, verifiers)
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != origin:
        raise CheckpointError("checkpoint is for a different log origin")
    return checkpoint, note


def _is_line(value: str) -> bool:
    return bool(value) and not any(ord(ch) < 0x20 for ch in value)
