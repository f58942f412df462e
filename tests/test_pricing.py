"""Price table: built-in prices, snapshot and wildcard matching, unknown → None, user files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlmx.errors import ConfigError
from rlmx.lm import Price, PriceTable


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_known_models(table: PriceTable) -> None:
    assert table.cost("openai:gpt-5", 1_000_000, 0) == pytest.approx(1.25)
    assert table.cost("openai:gpt-5", 0, 1_000_000) == pytest.approx(10.0)
    assert table.cost("openai:gpt-5-mini", 2_000, 1_000) == pytest.approx((2_000 * 0.25 + 1_000 * 2.0) / 1e6)
    for spec in (
        "openai:gpt-5-nano",
        "openai:gpt-4.1",
        "openai:gpt-4.1-mini",
        "openai:gpt-4.1-nano",
        "openai:gpt-4o",
        "openai:gpt-4o-mini",
        "anthropic:claude-sonnet-4-5",
        "anthropic:claude-haiku-4-5",
        "anthropic:claude-opus-4-1",
    ):
        cost = table.cost(spec, 1000, 1000)
        assert cost is not None and cost > 0, spec


def test_snapshot_names_match_by_prefix(table: PriceTable) -> None:
    assert table.price("openai:gpt-4o-mini-2024-07-18") == table.price("openai:gpt-4o-mini")
    assert table.price("openai:gpt-5-2025-08-07") == table.price("openai:gpt-5")
    assert table.price("anthropic:claude-sonnet-4-5-20250929") == Price(3.0, 15.0)
    assert table.price("anthropic:claude-3-5-haiku-latest") == Price(0.8, 4.0)
    # an explicitly listed snapshot beats the prefix
    assert table.price("openai:gpt-4o-2024-05-13") == Price(5.0, 15.0)


def test_other_suffixes_are_not_guessed(table: PriceTable) -> None:
    assert table.price("openai:gpt-5-pro") == Price(15.0, 120.0)  # its own entry
    assert table.cost("openai:gpt-5-turbo-nonexistent", 10, 10) is None
    assert table.cost("openai:gpt-5x", 10, 10) is None


def test_unknown_is_none_never_zero(table: PriceTable) -> None:
    assert table.cost("openai:llama-3-70b", 1000, 1000) is None
    assert table.cost("azure:my-deployment", 1000, 1000) is None
    assert table.cost("nobody:nothing", 0, 0) is None


def test_local_providers_are_free(table: PriceTable) -> None:
    assert table.cost("baseline:bm25-extractive", 10_000, 10_000) == 0.0
    assert table.cost("baseline", 10, 10) == 0.0
    assert table.cost("scripted:/tmp/script.json", 10_000, 10_000) == 0.0


def test_user_file_extends_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "prices.toml"
    f.write_text(
        """
[models]
"openai:gpt-5" = { input = 2.0, output = 20.0 }
"openai:llama-3-70b" = { input = 0.5, output = 0.5 }
"openai:ft-*" = { input = 1, output = 1 }
"azure:prod" = { same_as = "openai:gpt-5-mini" }
"azure:loop-a" = { same_as = "azure:loop-b" }
"azure:loop-b" = { same_as = "azure:loop-a" }
""",
        encoding="utf-8",
    )
    table = PriceTable.load(f)
    assert table.cost("openai:gpt-5", 1_000_000, 0) == pytest.approx(2.0)
    assert table.cost("openai:llama-3-70b", 1_000_000, 1_000_000) == pytest.approx(1.0)
    assert table.cost("openai:ft-my-model:v2", 1_000_000, 0) == pytest.approx(1.0)
    assert table.price("azure:prod") == Price(0.25, 2.0)
    assert table.price("azure:loop-a") is None  # cycles are unknown, not a hang
    assert table.cost("openai:gpt-4o", 1_000_000, 0) == pytest.approx(2.5)  # built-ins kept


@pytest.mark.parametrize(
    "content",
    [
        "[models\n",  # invalid TOML
        '[models]\n"gpt-5" = { input = 1, output = 1 }',  # no provider
        '[models]\n"openai:x" = { input = 1 }',  # missing output
        '[models]\n"openai:x" = { input = -1, output = 1 }',  # negative
        '[models]\n"openai:x" = { input = "1", output = 1 }',  # not a number
        '[models]\n"openai:x" = { input = 1, output = 1, currency = "EUR" }',  # unknown field
        '[models]\n"openai:x" = 3',
    ],
)
def test_bad_user_files_are_config_errors(tmp_path: Path, content: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=str(f)):
        PriceTable.load(f)


def test_missing_user_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RLMX_PRICES_FILE"):
        PriceTable.load(tmp_path / "absent.toml")


def test_programmatic_table_and_merge() -> None:
    mine = PriceTable({"openai:local": Price(0.0, 0.0), "azure:d": "openai:local"})
    merged = PriceTable.builtin().merge(mine)
    assert merged.cost("azure:d", 100, 100) == 0.0
    assert merged.cost("openai:gpt-5", 0, 0) == 0.0
    assert "openai:local" in set(merged.keys())
