"""What an account may set for itself (the cabinet's settings page, `kaskad accounts set`).

Stored as one JSON document per account so later channels add fields without a migration;
unknown keys are ignored on read, bad values are refused on write.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaskad.domain.errors import BadRequest


class AccountSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Telegram Gateway: the verified channel that signs this account's codes (none: unsigned).
    telegram_sender: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{5,32}$")
    lang: str = Field(default="ru", pattern=r"^(ru|en)$")  # prompts and templates


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
        data[name] = None if value == "" else value
    try:
        return AccountSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(f"setting {first['loc'][0]}: {first['msg']}") from exc


def dump_settings(settings: AccountSettings) -> str:
    return orjson.dumps(settings.model_dump(exclude_defaults=True)).decode()
