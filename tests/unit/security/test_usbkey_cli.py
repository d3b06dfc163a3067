"""``guoku usbkey``: init, info, genkey, unblock and change-pin through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from guoku.cli import app
from guoku.security.crypto import SM2PublicKey
from guoku.security.token_protocol import PinIncorrect, TokenLocked
from guoku.security.usbkey import MIN_PIN_ITERATIONS, SoftwareToken

FAST = ["--iterations", str(MIN_PIN_ITERATIONS)]
runner = CliRunner()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    result = runner.invoke(
        app,
        ["usbkey", "init", str(tmp_path / "k.usbkey"), "--label", "张三",
         "--so-pin", "so-pin-8765", "--pin", "123456", *FAST],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "initialized USB key" in result.output
    return tmp_path / "k.usbkey"


def test_init_prompts_for_hidden_confirmed_pins(tmp_path: Path) -> None:
    target = tmp_path / "p.usbkey"
    result = runner.invoke(
        app,
        ["usbkey", "init", str(target), "--label", "李四", *FAST],
        input="so-pin-8765\nso-pin-8765\n123456\n123456\n",
    )
    assert result.exit_code == 0, result.output
    assert "so-pin-8765" not in result.output and "123456" not in result.output
    SoftwareToken.open(target).login("123456")


def test_genkey_prints_the_public_key_that_the_token_then_holds(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sign.pem"
    result = runner.invoke(
        app, ["usbkey", "genkey", str(path), "sign", "--pin", "123456", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("-----BEGIN PUBLIC KEY-----")
    public = SM2PublicKey.from_pem(result.output.encode())
    assert public == SM2PublicKey.from_pem(out.read_bytes())
    assert SoftwareToken.open(path).public_key("sign") == public


def test_genkey_reads_the_pin_from_a_hidden_prompt(path: Path) -> None:
    result = runner.invoke(app, ["usbkey", "genkey", str(path), "sign"], input="123456\n")
    assert result.exit_code == 0, result.output
    assert "BEGIN PUBLIC KEY" in result.output


def test_info_shows_serial_counters_and_objects(path: Path) -> None:
    runner.invoke(app, ["usbkey", "genkey", str(path), "sign", "--pin", "123456"])
    runner.invoke(app, ["usbkey", "genkey", str(path), "sign", "--pin", "999999"])
    result = runner.invoke(app, ["usbkey", "info", str(path)])
    assert result.exit_code == 0, result.output
    token = SoftwareToken.open(path)
    assert token.serial in result.output and "张三" in result.output
    assert "user PIN   4/5 attempts left" in result.output
    assert "SO PIN     10/10 attempts left" in result.output
    assert "state      ready" in result.output
    assert "sm2-key" in result.output and "sign" in result.output


def test_a_wrong_pin_is_a_typed_error_and_the_token_locks_after_five(path: Path) -> None:
    for _ in range(4):
        result = runner.invoke(app, ["usbkey", "genkey", str(path), "k", "--pin", "000000"])
        assert isinstance(result.exception, PinIncorrect)
    result = runner.invoke(app, ["usbkey", "genkey", str(path), "k", "--pin", "000000"])
    assert isinstance(result.exception, TokenLocked)
    info = runner.invoke(app, ["usbkey", "info", str(path)])
    assert "LOCKED" in info.output

    result = runner.invoke(
        app, ["usbkey", "unblock", str(path), "--so-pin", "so-pin-8765", "--new-pin", "654321"]
    )
    assert result.exit_code == 0, result.output
    assert "5 attempts left" in result.output
    result = runner.invoke(app, ["usbkey", "genkey", str(path), "k", "--pin", "654321"])
    assert result.exit_code == 0, result.output


def test_change_pin_from_the_command_line(path: Path) -> None:
    result = runner.invoke(
        app, ["usbkey", "change-pin", str(path), "--pin", "123456", "--new-pin", "abcdef"]
    )
    assert result.exit_code == 0, result.output
    SoftwareToken.open(path).login("abcdef")


def test_main_turns_a_token_error_into_one_line_and_exit_2(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guoku import cli

    monkeypatch.setattr(
        "sys.argv", ["guoku", "usbkey", "genkey", str(path), "k", "--pin", "000000"]
    )
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert "PIN_INCORRECT" in capsys.readouterr().err


def test_info_as_json_for_scripts(path: Path) -> None:
    runner.invoke(app, ["usbkey", "genkey", str(path), "sign", "--pin", "123456"])
    result = runner.invoke(app, ["usbkey", "info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["serial"] == SoftwareToken.open(path).serial
    assert (data["retries_left"], data["so_retries_left"], data["state"]) == (5, 10, "ready")
    assert data["iterations"] == MIN_PIN_ITERATIONS
    assert [(o["kind"], o["label"]) for o in data["objects"]] == [("sm2-key", "sign")]
