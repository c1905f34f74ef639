"""Typed settings: the only reader of the environment (`KASKAD_*`) and the TOML file
(`KASKAD_CONFIG`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kaskad.channels.telephony.settings import HostPort, SipEndpointSettings
from kaskad.domain.cascade import Timeouts
from kaskad.domain.telegram import DEFAULT_URL


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class SandboxSettings(BaseSettings):
    """The in-process sandbox world (see kaskad.simulators.world for the number rules)."""

    report_delay_s: float = 0.2  # how long the sandbox takes to report delivery
    slow_delay_s: float = 2.0  # delay of the "slow" behaviours
    rules: dict[str, dict[str, str]] = Field(default_factory=dict)  # overrides by last digit
    telegram_token: str = "kaskad-sandbox-token"  # of the built-in Telegram Gateway simulator


class ConnectorSettings(BaseModel):
    """One upstream SMSC (kaskad.channels.sms.connector), declared in the TOML config as
    `[[smpp.connectors]]`, in priority order."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    host: str
    port: int = Field(ge=1, le=65535)
    system_id: str = Field(max_length=15)
    password: str = Field(max_length=8)
    system_type: str = Field(default="", max_length=12)
    binds: int = Field(default=1, ge=1, le=32)
    window: int = Field(default=10, ge=1, le=1000)  # outstanding submit_sm per bind
    throughput: float = Field(default=0, ge=0)  # submit_sm per second for the connector; 0: none
    source_ton: int = 5  # alphanumeric
    source_npi: int = 0
    dest_ton: int = 1  # international
    dest_npi: int = 1  # ISDN
    submit_timeout_s: float = 10.0
    max_throttle_wait_s: float = 60.0
    enquire_link_s: float = 30.0
    tls: bool = False  # SMPP over TLS (e.g. port 3550 at many SMSCs)
    tls_verify: bool = True  # check the SMSC's certificate and host name
    tls_ca_file: str = ""  # a CA bundle for an SMSC whose certificate a private CA signed
    # How the SMSC writes message ids in receipts: "same" as in its submit_sm_resp; "decimal":
    # submit_sm_resp gives hex, receipts the decimal reading of it; "hex": the reverse.
    # (Kannel's msg-id-type.) Receipts match their messages only when this is right.
    receipt_ids: Literal["same", "decimal", "hex"] = "same"
    # Directions this connector carries ("*", "RU", "RU:mts"...); connectors are tried in the
    # order they are declared, among those whose routes cover the number's direction.
    routes: list[str] = Field(default_factory=lambda: ["*"])


class SmppSettings(BaseModel):
    connectors: list[ConnectorSettings] = Field(default_factory=list)
    sender: str = Field(default="kaskad", max_length=11)  # default alphanumeric sender name


class TelephonySettings(BaseModel):
    """Our numbers and calls. `pool`: the DIDs subscribers call for wait_call (E.164 digits) in
    the sandbox; with SIP trunks, their `dids` are the pool."""

    pool: list[str] = Field(default_factory=lambda: [f"7495123000{i}" for i in range(1, 6)],
                            min_length=1)
    flash_prefix: str = Field(default="7495000", pattern=r"^\d+$")  # sandbox flash caller ids
    voice_caller: str = Field(default="74951230000", pattern=r"^\d+$")  # sandbox voice calls


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASKAD_", env_nested_delimiter="__",
                                      extra="ignore")

    config: Path | None = None  # the TOML file this was read from, if any
    data_dir: Path = Path("kaskad-data")
    database_url: str = ""  # empty: SQLite file in data_dir
    host: str = "127.0.0.1"
    port: int = 8765
    proxy_headers: bool = False  # trust X-Forwarded-* (only behind your own reverse proxy)
    node_id: str = Field(default_factory=default_node_id)
    log_level: str = "info"
    timezone: str = "Europe/Moscow"

    # API behaviour
    send_wait_s: float = 3.0  # how long /api/send/ waits for the first step's outcome
    max_body_bytes: int = 16 * 1024
    auth_cache_ttl_s: float = 2.0  # a revoked key or a disabled account stops within this time

    # accounts
    test_balance_kop: int = 5000  # 50.00 RUB for every new account
    default_directions: str = "RU"  # comma-separated; "*" permits every direction

    # cascade
    telegram_timeout_s: float = 60.0
    sms_timeout_s: float = 300.0
    voice_timeout_s: float = 90.0
    max_temporary_retries: int = 2
    retry_backoff_s: float = 1.0

    # engine
    engine: bool = True  # `serve` runs the cascade engine in-process too
    workers: int = Field(default=1, ge=1, le=64)  # `serve` processes sharing the port
    lease_s: float = 30.0
    poll_interval_s: float = 0.5
    claim_batch: int = 256
    max_in_flight: int = 2000  # steps sending at once per process
    # Backpressure: while a process has this many steps queued or running, new requests wait
    # (up to admit_wait_s; then they are taken anyway, durably queued) and it claims no more.
    max_backlog: int = Field(default=4000, ge=1)
    admit_wait_s: float = Field(default=10.0, ge=0)
    write_batch: int = 512
    pg_writers: int = Field(default=1, ge=1, le=8)  # PostgreSQL: concurrent group commits
    # While the process is saturated, a group commit of few writes waits until this long after
    # the previous one began (more writes per commit, less CPU each); 0: never. storage.batch.
    write_coalesce_ms: float = Field(default=8.0, ge=0, le=50)

    # customer callbacks
    callback_timeout_s: float = 5.0
    callback_max_attempts: int = 10
    callback_backoff_s: float = 2.0
    callback_backoff_cap_s: float = 600.0
    callback_concurrency: int = 64
    callback_allow_private: bool = True  # the demo calls back to loopback

    # Telegram Gateway. "auto": the real gateway when a token is given, else the built-in
    # simulator (served by `kaskad serve` at /sandbox/telegram/, reached over HTTP like the
    # real one). "inprocess": the sandbox without HTTP (engine tests, the foundation benchmark).
    telegram_mode: Literal["auto", "gateway", "simulator", "inprocess"] = "auto"
    telegram_url: str = DEFAULT_URL
    telegram_token: str = ""
    telegram_proxy: str = ""  # http(s)://host:port, for networks that reach Telegram only so
    telegram_http_timeout_s: float = 5.0
    telegram_retries: int = 2  # network errors and 5xx, then the cascade moves on
    telegram_ttl_s: int = 0  # 0: the Telegram step's timeout, within the API's 30..3600
    telegram_negative_cache_s: float = 3600.0  # "no Telegram" answers believed this long
    telegram_report_window_s: float = 300.0  # report timestamps further from now are refused
    telegram_sender: str = ""  # default sender_username (accounts may set their own)
    # Where the outside world reaches this gateway (webhooks are derived from it); empty:
    # http://host:port of this server.
    public_url: str = ""

    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # SMS over SMPP. "auto": the declared connectors, else (serve/demo) the built-in SMSC
    # simulator over loopback SMPP; "inprocess": the sandbox without SMPP (engine tests, bench).
    sms_mode: Literal["auto", "smpp", "simulator", "inprocess"] = "auto"
    numbering_refresh_s: float = 60.0  # how often a changed numbering plan is picked up
    smpp: SmppSettings = Field(default_factory=SmppSettings)
    telephony: TelephonySettings = Field(default_factory=TelephonySettings)
    # Calls over SIP. "auto": the declared trunks (`[[sip.trunks]]`), else (serve/demo) the
    # sandbox phone network over loopback SIP; "inprocess": the sandbox without SIP (engine
    # tests, benchmarks). KASKAD_SIP_LISTEN (host:port) is our SIP endpoint's address.
    telephony_mode: Literal["auto", "sip", "simulator", "inprocess"] = "auto"
    sip_listen: str = ""
    sip: SipEndpointSettings = Field(default_factory=SipEndpointSettings)
    ssms_max_phones: int = 50  # numbers in one push_msg (more: error 629)
    ssms_session_idle_s: float = 24 * 60  # method=login sessions end after this idle time

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("KASKAD_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kaskad.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        url = self.public_url or f"http://{self.host}:{self.port}"
        return url.rstrip("/")

    @property
    def effective_telegram_mode(self) -> str:
        if self.telegram_mode == "auto":
            return "gateway" if self.telegram_token else "simulator"
        return self.telegram_mode

    @property
    def effective_sms_mode(self) -> str:
        if self.sms_mode == "auto":
            return "smpp" if self.smpp.connectors else "simulator"
        return self.sms_mode

    @property
    def effective_telephony_mode(self) -> str:
        if self.telephony_mode == "auto":
            return "sip" if self.sip.trunks else "simulator"
        return self.telephony_mode

    @property
    def sip_endpoint(self) -> SipEndpointSettings:
        """`sip` with KASKAD_SIP_LISTEN applied."""
        if not self.sip_listen:
            return self.sip
        return self.sip.model_copy(update={"listen": HostPort.parse(self.sip_listen)})

    @property
    def effective_telegram_ttl_s(self) -> int:
        ttl = self.telegram_ttl_s or int(self.telegram_timeout_s + 0.999)
        return min(max(ttl, 30), 3600)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(self.telegram_timeout_s, self.sms_timeout_s, self.voice_timeout_s)

    @property
    def default_direction_list(self) -> list[str]:
        return [d.strip().upper() for d in self.default_directions.split(",") if d.strip()]


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
