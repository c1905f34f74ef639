"""`kaskad connectors add|remove` edit the TOML config and keep what the operator wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaskad.cli import app
from kaskad.config import ConnectorSettings, load_settings
from kaskad.config_edit import add_connector, remove_connector
from kaskad.domain.errors import BadRequest


def test_add_and_remove_keep_comments_and_other_settings(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    path = tmp_path / "kaskad.toml"
    path.write_text('# my gateway\nport = 9000\n\n[smpp]\nsender = "Shop" # approved\n')
    add_connector(path, ConnectorSettings(name="mts", host="10.0.0.1", port=2775,
                                          system_id="acme", password="pw", window=20,
                                          routes=["RU:mts"]))
    add_connector(path, ConnectorSettings(name="backup", host="10.0.0.2", port=2775,
                                          system_id="acme", password="pw"))
    text = path.read_text()
    assert "# my gateway" in text and "# approved" in text
    monkeypatch.setenv("KASKAD_CONFIG", str(path))
    settings = load_settings()
    assert settings.port == 9000 and settings.smpp.sender == "Shop"
    assert [c.name for c in settings.smpp.connectors] == ["mts", "backup"]
    assert settings.smpp.connectors[0].window == 20
    assert settings.smpp.connectors[0].routes == ["RU:mts"]
    with pytest.raises(BadRequest):
        add_connector(path, ConnectorSettings(name="mts", host="h", port=1, system_id="",
                                              password=""))
    remove_connector(path, "mts")
    assert [c.name for c in load_settings().smpp.connectors] == ["backup"]
    with pytest.raises(BadRequest):
        remove_connector(path, "mts")


def test_cli_validates_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kaskad.toml"
    monkeypatch.setenv("KASKAD_CONFIG", str(path))
    runner = CliRunner()
    bad = runner.invoke(app, ["connectors", "add", "Bad Name", "--host", "h", "--port", "1",
                              "--system-id", "s", "--password", "p"])
    assert bad.exit_code == 1 and not path.exists()
    ok = runner.invoke(app, ["connectors", "add", "main", "--host", "127.0.0.1", "--port",
                             "2775", "--system-id", "s", "--password", "sekret", "--routes",
                             "RU:mts, RU"])
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["connectors", "list"])
    assert "main\t127.0.0.1:2775\ts\t1\t10\t0\tRU:mts,RU" in listed.output
    assert "sekret" not in listed.output
