"""The province and deployment configs: the demo province written as TOML loads equal to
``demo_province()``; the sample Yunnan config is the two-prefecture, four-county province."""

from __future__ import annotations

from pathlib import Path

import pytest

from guoku.deploy.config import DeployConfigError, load_config
from guoku.province import demo_province
from guoku.province_config import ProvinceConfigError, load_province_file, province_from_mapping

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_province_as_toml_is_the_demo_province() -> None:
    assert load_province_file(ROOT / "deploy" / "demo.toml") == demo_province()


def test_the_sample_yunnan_config() -> None:
    config = load_config(ROOT / "deploy" / "yunnan.toml")
    province = config.province
    levels = {len(code.rstrip("0")) for code in province.admdivs}
    assert sorted(province.admdivs) == ["530000", "530100", "530102", "530103", "533100",
                                        "533102", "533103"]
    assert levels == {2, 4, 6}  # province, prefectures, counties
    assert [n.name for n in province.nodes] == ["finance", "pboc", "bank-icbc", "bank-abc"]
    finance = province.nodes[0]
    assert {p for p in finance.parties if p.startswith("F")} == {
        f"F{code}" for code in province.admdivs}
    assert len([p for p in finance.parties if p.startswith("U")]) == 4
    for county in ("533103", "533102", "530102", "530103"):
        for desk in ("fin", "icbc", "abc", "pboc", "unit"):
            assert f"{desk}-{county}-seal" in {u.username for u in province.users}
    assert config.workers_of(finance) == 2 and config.partitions == 4
    assert config.directory == (ROOT / "var" / "yunnan").resolve()
    assert config.db_url(finance).endswith("options=-csearch_path%3Dgk_yunnan_finance")


def _minimal() -> dict[str, object]:
    return {"code": "530000", "name": "云南省", "finance": "云南省财政厅",
            "pboc": {"code": "P530000", "name": "国库", "desk": "pboc"},
            "banks": [{"code": "B-ICBC", "name": "工行", "node": "bank-icbc", "desk": "icbc"}],
            "prefectures": [{"code": "533100", "name": "德宏", "counties": [
                {"code": "533103", "name": "芒市", "finance": "芒市财政局",
                 "units": [{"code": "U1", "name": "教育局"}]}]}]}


def test_a_minimal_province_and_its_mistakes() -> None:
    spec = province_from_mapping(_minimal())
    assert [n.name for n in spec.nodes] == ["finance", "pboc", "bank-icbc"]
    broken = _minimal()
    broken["prefectures"] = [{"code": "5331", "name": "x", "counties": []}]
    with pytest.raises(ProvinceConfigError, match="six digits"):
        province_from_mapping(broken)
    twice = _minimal()
    twice["banks"] = [*twice["banks"], *twice["banks"]]  # type: ignore[misc]
    with pytest.raises(ProvinceConfigError, match="twice"):
        province_from_mapping(twice)
    no_bank = _minimal()
    no_bank["banks"] = []
    with pytest.raises(ProvinceConfigError, match="agent bank"):
        province_from_mapping(no_bank)


def test_deploy_config_mistakes(tmp_path: Path) -> None:
    province = (ROOT / "deploy" / "demo.toml").read_text().split("\n[province]\n", 1)[1]

    def config(deployment: str) -> Path:
        path = tmp_path / "d.toml"
        path.write_text(f"[deployment]\n{deployment}\n[province]\n{province}")
        return path

    base = 'database = "postgresql+psycopg://x@h/db"\nbroker = "amqp://h/"\n'
    assert load_config(config(base)).partitions is None
    with pytest.raises(DeployConfigError, match="need partitions"):
        load_config(config(base + "[deployment.workers]\nfinance = 2\n"))
    with pytest.raises(DeployConfigError, match="no node 'nope'"):
        load_config(config(base + "partitions = 2\n[deployment.workers]\nnope = 2\n"))
    with pytest.raises(DeployConfigError, match="broker is required"):
        load_config(config('database = "postgresql+psycopg://x@h/db"\n'))
    with pytest.raises(DeployConfigError, match="prefix"):
        load_config(config(base + 'prefix = "Bad Prefix"\n'))
