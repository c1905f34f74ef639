"""Settings come from KASKAD_* variables or the TOML file named by KASKAD_CONFIG."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaskad.config import Settings


def test_toml_file_is_read_and_environment_wins(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "kaskad.toml"
    toml.write_text('port = 9100\nsend_wait_s = 1.5\ndefault_directions = "RU,KZ"\n'
                    '[sandbox]\nreport_delay_s = 0.5\n', encoding="utf-8")
    monkeypatch.setenv("KASKAD_CONFIG", str(toml))
    monkeypatch.setenv("KASKAD_PORT", "9200")
    settings = Settings()
    assert settings.port == 9200  # the environment wins over the file
    assert settings.send_wait_s == 1.5
    assert settings.default_direction_list == ["RU", "KZ"]
    assert settings.sandbox.report_delay_s == 0.5


def test_nested_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KASKAD_CONFIG", raising=False)
    monkeypatch.setenv("KASKAD_SANDBOX__SLOW_DELAY_S", "7")
    monkeypatch.setenv("KASKAD_DATA_DIR", "/tmp/somewhere")
    settings = Settings()
    assert settings.sandbox.slow_delay_s == 7
    assert settings.effective_database_url == "sqlite+aiosqlite:////tmp/somewhere/kaskad.db"


def test_a_wrong_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KASKAD_CONFIG", raising=False)
    monkeypatch.setenv("KASKAD_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings()
