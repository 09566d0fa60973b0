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
    ReplayDetected,
    StoreError,
    UnsupportedContent,
    UntrustedSender,
    WrongPassphrase,
)
from clearpost.client.model import (
    Event,
    InboxEntry,
    MembershipEvent,
    Message,
    MessageEvent,
    MessageState,
    Sent,
    Stats,
)
from clearpost.client.store import DeviceStore, KdfParams
from clearpost.client.verify import Device, DeviceListChange

__all__ = [
    "Client",
    "ClientError",
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
    "MembershipEvent",
    "Message",
    "MessageEvent",
    "MessageState",
    "ReplayDetected",
    "Sent",
    "ShareCard",
    "Stats",
    "StoreError",
    "Text",
    "UnsupportedContent",
    "UntrustedSender",
    "WrongPassphrase",
]
