"""The Clearpost SDK: end-to-end encrypted messaging over the Clearpost HTTP API.

Start with ``Client``; everything else here is what its methods take and return.
"""

from clearpost.client.client import Client
from clearpost.client.content import Content, ShareCard, Text
from clearpost.client.errors import (
    ClientError,
    CryptoError,
    DecryptionFailed,
    DeviceVerificationFailed,
    LogVerificationFailed,
    ReplayDetected,
    ShareError,
    StoreError,
    UnsupportedContent,
    UntrustedSender,
    WrongPassphrase,
)
from clearpost.client.model import (
    ConnectedApp,
    Device,
    DeviceListChange,
    Event,
    InboxEntry,
    KeyProblem,
    MembershipEvent,
    Message,
    MessageEvent,
    MessageState,
    Sent,
    Shared,
    ShareIntent,
    ShareIntentEvent,
    Stats,
)
from clearpost.client.store import DeviceStore, KdfParams
from clearpost.client.transparency import LogEntry, VerifiedLog

__all__ = [
    "Client",
    "ClientError",
    "ConnectedApp",
    "Content",
    "CryptoError",
    "DecryptionFailed",
    "Device",
    "DeviceListChange",
    "DeviceStore",
    "DeviceVerificationFailed",
    "Event",
    "InboxEntry",
    "KdfParams",
    "KeyProblem",
    "LogEntry",
    "LogVerificationFailed",
    "MembershipEvent",
    "Message",
    "MessageEvent",
    "MessageState",
    "ReplayDetected",
    "Sent",
    "ShareCard",
    "ShareError",
    "ShareIntent",
    "ShareIntentEvent",
    "Shared",
    "Stats",
    "StoreError",
    "Text",
    "UnsupportedContent",
    "UntrustedSender",
    "VerifiedLog",
    "WrongPassphrase",
]
