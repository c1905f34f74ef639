"""What an account may set for itself (the cabinet's settings page, `kaskad accounts set`).

Stored as one JSON document per account so later channels add fields without a migration;
unknown keys are ignored on read, bad values are refused on write.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kaskad.domain.errors import BadRequest

SENDER_PATTERN = r"^([A-Za-z0-9.\- _!&]{1,11}|[0-9]{1,15})$"
URL_PATTERN = r"^https?://[^\s]+$"


class AccountSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Telegram Gateway: the verified channel that signs this account's codes (none: unsigned).
    telegram_sender: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{5,32}$")
    lang: str = Field(default="ru", pattern=r"^(ru|en)$")  # prompts and templates
    # Seed 000: an SMS whose text is a verification code goes through Telegram as that code
    # (kaskad.domain.code_detect), when the code's length is within this range.
    sms_codes_to_telegram: bool = False
    code_length_min: int = Field(default=4, ge=4, le=8)
    code_length_max: int = Field(default=8, ge=4, le=8)
    # Alphanumeric sender names the operator approved for this account, and the one used when
    # a message names none (else the gateway's default, `[smpp] sender`).
    senders: list[Annotated[str, Field(pattern=SENDER_PATTERN)]] = Field(
        default_factory=list, max_length=50)
    default_sender: str | None = Field(default=None, pattern=SENDER_PATTERN)
    # Where message status reports go (push_msg; a message's own `dlr_url` wins), and where an
    # incoming call that confirms a wait_call is announced (a GET; `hook_url` wins).
    status_url: str | None = Field(default=None, pattern=URL_PATTERN, max_length=2048)
    incoming_call_url: str | None = Field(default=None, pattern=URL_PATTERN, max_length=2048)
    # Seed 002's `resending` when a request names none (None: the seed's own default, stop).
    default_resending: str | None = Field(default=None, pattern=r"^(sms|voice|stop)$")
    # Company details for invoices and contracts (the cabinet's settings page). Russian INN:
    # 10 digits for an organisation, 12 for a sole trader; KPP: 9 (organisations only).
    company_name: str | None = Field(default=None, max_length=300)
    inn: str | None = Field(default=None, pattern=r"^([0-9]{10}|[0-9]{12})$")
    kpp: str | None = Field(default=None, pattern=r"^[0-9]{9}$")
    address: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _range(self) -> AccountSettings:
        if self.code_length_min > self.code_length_max:
            raise ValueError("code_length_min is above code_length_max")
        return self


def parse_settings(raw: str | bytes | None) -> AccountSettings:
    """The stored document; a damaged one reads as the defaults rather than failing a send."""
    try:
        data = orjson.loads(raw or b"{}")
        return AccountSettings.model_validate(data if isinstance(data, dict) else {})
    except (orjson.JSONDecodeError, ValidationError):
        return AccountSettings()


def updated(current: AccountSettings, changes: dict[str, Any]) -> AccountSettings:
    """`current` with `changes` applied (None or "" clears a field); BadRequest if invalid."""
    data = current.model_dump()
    for name, value in changes.items():
        if name not in AccountSettings.model_fields:
            raise BadRequest(f"unknown setting {name!r}")
        if isinstance(value, str) and isinstance(data[name], list):  # "A,B" from a CLI or form
            value = [v.strip() for v in value.split(",") if v.strip()]
        data[name] = None if value == "" else value
    try:
        return AccountSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"][0] if first["loc"] else "settings"
        raise BadRequest(f"setting {where}: {first['msg']}") from exc


def dump_settings(settings: AccountSettings) -> str:
    return orjson.dumps(settings.model_dump(exclude_defaults=True)).decode()
