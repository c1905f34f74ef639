"""Edit the TOML config file (`KASKAD_CONFIG`) the way an operator would by hand: tomlkit keeps
its comments and layout. Only what `kaskad connectors ...` manages is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT

from kaskad.config import ConnectorSettings
from kaskad.domain.errors import BadRequest


def _load(path: Path) -> tomlkit.TOMLDocument:
    return tomlkit.parse(path.read_text("utf-8")) if path.exists() else tomlkit.document()


def _connectors(doc: tomlkit.TOMLDocument) -> AoT:
    smpp = doc.get("smpp")
    if smpp is None:
        smpp = tomlkit.table()
        doc["smpp"] = smpp
    found = smpp.get("connectors")
    if found is None:
        found = tomlkit.aot()
        smpp["connectors"] = found
    return found  # type: ignore[no-any-return]


def add_connector(path: Path, settings: ConnectorSettings) -> None:
    """Append a connector (validated by its model); its name must be new."""
    doc = _load(path)
    connectors = _connectors(doc)
    if any(c.get("name") == settings.name for c in connectors):
        raise BadRequest(f"connector {settings.name!r} exists; remove it first")
    defaults = ConnectorSettings(name="x", host="x", port=1, system_id="", password="")
    table = tomlkit.table()
    for key, value in settings.model_dump().items():
        required = key in ("name", "host", "port", "system_id", "password")
        if required or value != getattr(defaults, key):
            table[key] = value
    connectors.append(table)
    path.write_text(tomlkit.dumps(doc), "utf-8")


def remove_connector(path: Path, name: str) -> None:
    doc = _load(path)
    connectors = _connectors(doc)
    keep = [c for c in connectors if c.get("name") != name]
    if len(keep) == len(connectors):
        raise BadRequest(f"no connector {name!r} in {path}")
    doc["smpp"]["connectors"] = tomlkit.aot()  # type: ignore[index]
    for table in keep:
        doc["smpp"]["connectors"].append(table)  # type: ignore[index]
    path.write_text(tomlkit.dumps(doc), "utf-8")


def connector_rows(connectors: list[ConnectorSettings]) -> list[dict[str, Any]]:
    """What `kaskad connectors list` prints (passwords hidden)."""
    return [{"name": c.name, "address": f"{c.host}:{c.port}", "system_id": c.system_id,
             "binds": c.binds, "window": c.window, "throughput": c.throughput,
             "routes": ",".join(c.routes)} for c in connectors]
