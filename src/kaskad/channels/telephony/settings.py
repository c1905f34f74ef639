"""A SIP trunk as data: where to send calls, how to authenticate, which numbers are ours.

config.py embeds these models; nothing here reads the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class HostPort(BaseModel):
    host: str
    port: int = Field(default=5060, ge=0, le=65535)

    @classmethod
    def parse(cls, text: str, default_port: int = 5060) -> HostPort:
        """`host:port`, `host` or `[v6]:port`, as operators write it in config files."""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            return cls(host=host, port=int(rest[1:]) if rest.startswith(":") else default_port)
        host, sep, port = text.rpartition(":")
        return cls(host=host, port=int(port)) if sep else cls(host=text, port=default_port)

    def as_tuple(self) -> tuple[str, int]:
        return (self.host, self.port)


class FlashRange(BaseModel):
    """The caller ids a trunk lets us present: `prefix` followed by `digits` free digits.

    A flash call shows the code in the last digits of the caller id, so `digits` must be at least
    the longest code length we send (8).
    """

    prefix: str = Field(pattern=r"^\d+$")
    digits: int = Field(ge=4, le=10)


class TrunkSettings(BaseModel):
    """One SIP trunk (a carrier's outbound proxy and the DID numbers it routes to us)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = "trunk"
    proxy: HostPort  # outbound proxy / registrar
    transport: Literal["udp", "tcp"] = "udp"
    username: str = ""
    password: str = ""
    domain: str = ""  # the SIP domain in our URIs; also the realm we expect (empty: proxy host)
    register_enabled: bool = Field(default=False, alias="register")
    register_expires: int = Field(default=300, ge=30)
    caller_id: str = "{number}"  # how our numbers are written in From: "{number}", "+{number}"
    voice_caller: str = ""  # the number voice-code calls come from (digits)
    calls_per_second: float = Field(default=10.0, gt=0)
    flash_range: FlashRange | None = None
    dids: list[str] = Field(default_factory=list)  # E.164 digits of our pool numbers
    ring_timeout: float = Field(default=40.0, gt=0)  # voice call: no answer after this → CANCEL
    flash_timeout: float = Field(default=8.0, gt=0)  # flash call: no ringing after this → CANCEL

    @field_validator("dids")
    @classmethod
    def _digits_only(cls, dids: list[str]) -> list[str]:
        for did in dids:
            if not did.isdigit():
                raise ValueError(f"DID {did!r} must be E.164 digits without '+'")
        return dids

    @model_validator(mode="after")
    def _caller_id_has_number(self) -> TrunkSettings:
        if "{number}" not in self.caller_id:
            raise ValueError("caller_id must contain {number}")
        return self

    @property
    def sip_domain(self) -> str:
        return self.domain or self.proxy.host

    def format_caller(self, digits: str) -> str:
        return self.caller_id.format(number=digits)


class SipEndpointSettings(BaseModel):
    """Our own SIP endpoint (KASKAD_SIP_LISTEN) and the trunks behind it."""

    listen: HostPort = Field(default_factory=lambda: HostPort(host="127.0.0.1", port=0))
    transports: list[Literal["udp", "tcp"]] = Field(default=["udp", "tcp"])
    public_host: str = ""  # what we write in Via/Contact/SDP when behind NAT (empty: listen host)
    trunks: list[TrunkSettings] = Field(default_factory=list)
