"""Wires stores and services together for one server process."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher

from clearpost.core.clock import Clock, SystemClock
from clearpost.core.tlog import CosignatureVerifier, Signer
from clearpost.server.config import Settings
from clearpost.server.services.accounts import AccountService
from clearpost.server.services.authorize import OAuthService
from clearpost.server.services.conversations import ConversationService
from clearpost.server.services.erasure import AccountDeletion
from clearpost.server.services.keydir import KeyDirService
from clearpost.server.services.keys import KeyService
from clearpost.server.services.messages import MessageService
from clearpost.server.services.notifier import Notifier
from clearpost.server.services.partners import PartnerService
from clearpost.server.services.ratelimit import RateLimiter
from clearpost.server.services.reports import ReportService, load_or_create_report_key
from clearpost.server.services.shares import ShareService
from clearpost.server.services.stats import StatsService
from clearpost.server.services.sync import SyncService
from clearpost.server.services.tiles import TileService
from clearpost.server.services.tlog import LogService
from clearpost.server.services.todevice import ToDeviceService
from clearpost.storage.db import Database
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.conversations import ConversationStore
from clearpost.storage.sql.keydir import KeyDirStore
from clearpost.storage.sql.keys import KeyStore
from clearpost.storage.sql.messages import MessageStore
from clearpost.storage.sql.oauth import OAuthStore
from clearpost.storage.sql.partners import PartnerStore
from clearpost.storage.sql.secrets import SecretStore
from clearpost.storage.sql.shares import ShareStore
from clearpost.storage.sql.syncview import SyncView
from clearpost.storage.sql.tlog import LogStore
from clearpost.storage.sql.todevice import ToDeviceStore


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    clock: Clock
    notifier: Notifier
    accounts: AccountService
    keys: KeyService
    conversations: ConversationService
    messages: MessageService
    to_device: ToDeviceService
    sync: SyncService
    login_limiter: RateLimiter
    token_limiter: RateLimiter
    log: LogService
    partners: PartnerService
    oauth: OAuthService
    shares: ShareService
    click_limiter: RateLimiter
    reports: ReportService
    tiles: TileService
    stats: StatsService
    deletion: AccountDeletion = field(init=False)
    keydir: KeyDirService = field(init=False)


def build_services(
    settings: Settings, db: Database, signer: Signer, clock: Clock | None = None
) -> Services:
    clock = clock or SystemClock()
    witnesses = [CosignatureVerifier.from_vkey(v) for v in settings.witness_vkeys()]
    notifier = Notifier()
    account_store, key_store = AccountStore(db), KeyStore(db)
    message_store, to_device_store = MessageStore(db), ToDeviceStore(db)
    services = Services(
        settings=settings,
        db=db,
        clock=clock,
        notifier=notifier,
        accounts=AccountService(
            account_store,
            key_store,
            clock,
            notifier,
            PasswordHasher(
                time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
            ),
            settings.registration,
            settings.server_name,
        ),
        keys=KeyService(key_store, account_store, clock, notifier, settings.server_name),
        conversations=ConversationService(
            ConversationStore(db),
            account_store,
            clock,
            notifier,
            settings.max_group_members,
            settings.server_name,
        ),
        messages=(
            messages := MessageService(message_store, clock, notifier, settings.max_message_bytes)
        ),
        to_device=ToDeviceService(
            to_device_store, clock, notifier, settings.max_message_bytes, settings.server_name
        ),
        sync=SyncService(SyncView(db), to_device_store, notifier),
        login_limiter=RateLimiter(
            clock, settings.login_rate_per_minute / 60, settings.login_burst, "login attempts"
        ),
        token_limiter=RateLimiter(
            clock, settings.token_rate_per_second, settings.token_burst, "requests"
        ),
        log=(log := LogService(db, LogStore(db), signer, witnesses, clock)),
        partners=(
            partners := PartnerService(PartnerStore(db), SecretStore(db), clock, log.appended)
        ),
        oauth=OAuthService(settings.base_url(), OAuthStore(db), partners, log, clock),
        shares=ShareService(
            ShareStore(db), partners, log, account_store, clock, settings.base_url()
        ),
        click_limiter=RateLimiter(clock, settings.click_rate_per_minute / 60, 30, "link clicks"),
        reports=ReportService.from_settings(
            settings, db, partners, load_or_create_report_key(settings.report_key_path()), clock
        ),
        tiles=TileService(db),
        stats=StatsService(db, messages, notifier, clock),
    )
    services.accounts.on_logged = log.appended
    services.keys.on_logged = log.appended
    services.keys.on_device_changed = lambda user, device: services.accounts.forget((user, device))
    services.oauth.on_logged = log.appended
    services.oauth.user_suspended = account_store.is_suspended
    services.deletion = AccountDeletion(
        db, services.accounts, services.conversations, services.oauth
    )
    services.keydir = KeyDirService(
        db,
        KeyDirStore(db),
        log,
        clock,
        settings.keydir_heartbeat_seconds,
        settings.keydir_log_seconds,
    )
    log.before_integrate = services.keydir.publish_in
    services.stats.keydir_leaves = services.keydir.leaves_in_memory
    services.keys.until_published = services.keydir.wait_published
    services.shares.on_logged = log.appended
    services.reports.on_logged = log.appended
    return services
