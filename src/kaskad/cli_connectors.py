"""`kaskad connectors ...`: the SMPP connectors of the TOML config file, listed, added,
removed and checked (a real bind). A running gateway reads them when it starts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

from kaskad.config import ConnectorSettings, load_settings
from kaskad.config_edit import add_connector, connector_rows, remove_connector
from kaskad.domain.errors import BadRequest

connectors_app = typer.Typer(help="SMPP connectors (upstream SMSCs) and their routes.",
                             no_args_is_help=True)


def _config_path() -> Path:
    path = os.environ.get("KASKAD_CONFIG")
    if not path:
        typer.echo("set KASKAD_CONFIG to the TOML config file to manage connectors in",
                   err=True)
        raise typer.Exit(2)
    return Path(path)


@connectors_app.command("list")
def list_connectors() -> None:
    for row in connector_rows(load_settings().smpp.connectors):
        typer.echo("\t".join(str(v) for v in row.values()))


@connectors_app.command("add")
def add(name: str, host: str = typer.Option(...), port: int = typer.Option(...),
        system_id: str = typer.Option(...), password: str = typer.Option(...),
        system_type: str = typer.Option(""), binds: int = typer.Option(1),
        window: int = typer.Option(10), throughput: float = typer.Option(0.0),
        routes: str = typer.Option("*", help='Directions, e.g. "RU:mts,RU:beeline" or "*"'),
        ) -> None:
    """Declare an SMSC in the config file (connectors are tried in the order declared)."""
    try:
        settings = ConnectorSettings(
            name=name, host=host, port=port, system_id=system_id, password=password,
            system_type=system_type, binds=binds, window=window, throughput=throughput,
            routes=[r.strip() for r in routes.split(",") if r.strip()])
        add_connector(_config_path(), settings)
    except (ValueError, BadRequest) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"connector {name} added; restart the gateway to use it")


@connectors_app.command("remove")
def remove(name: str) -> None:
    try:
        remove_connector(_config_path(), name)
    except BadRequest as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"connector {name} removed; restart the gateway to stop using it")


@connectors_app.command("check")
def check(name: str, timeout: float = typer.Option(10.0)) -> None:
    """Bind to the SMSC with the configured credentials, then unbind: are they right?"""
    from kaskad.channels.sms.connector import SmppConnector

    found = [c for c in load_settings().smpp.connectors if c.name == name]
    if not found:
        typer.echo(f"error: no connector {name!r}", err=True)
        raise typer.Exit(1)

    async def _check() -> bool:
        connector = SmppConnector(found[0].model_copy(update={"binds": 1}),
                                  on_receipt=lambda _name, _receipt: None)
        await connector.start()
        try:
            return await connector.wait_bound(timeout)
        finally:
            await connector.stop()

    if not asyncio.run(_check()):
        typer.echo(f"{name}: not bound within {timeout:g} s", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: bound")
