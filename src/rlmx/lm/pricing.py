"""Cost in USD from a per-model price table (built in, extensible by the user).

Price file format (TOML; the built-in table is ``rlmx/lm/prices.toml``)::

    [models]
    # USD per 1 million tokens
    "openai:gpt-5" = { input = 1.25, output = 10.00 }
    "openai:my-finetune-*" = { input = 0.30, output = 1.20 }   # any model with this prefix
    "azure:prod-gpt5" = { same_as = "openai:gpt-5" }          # an Azure deployment's price

A user file (``RLMX_PRICES_FILE``) is merged over the built-in table: its keys add to or
replace the built-in ones. ``azure:`` deployments have no price until mapped like above.

Lookup of a spec ``provider:model`` (:meth:`PriceTable.price`):

1. the exact key;
2. else the longest key ``K`` such that the spec is ``K`` plus a snapshot suffix
   (``-YYYY-MM-DD``, ``-YYYYMMDD``, ``-MMDD`` or ``-latest``), e.g.
   ``openai:gpt-4o-mini-2024-07-18`` → ``openai:gpt-4o-mini``;
3. else the longest wildcard key ``P*`` with the spec starting with ``P``;
4. else unknown: :meth:`PriceTable.cost` returns None, never a silent zero.

Suffixes other than snapshots do not match (``openai:gpt-5-pro`` is not ``openai:gpt-5``).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rlmx.errors import ConfigError

__all__ = ["Price", "PriceTable"]

_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)")


@dataclass(frozen=True)
class Price:
    """USD per 1 million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for the given token counts."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True)
class _Entry:
    price: Price | None = None
    same_as: str | None = None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number (USD per 1M tokens), got {value!r}")
    if value < 0 or not math.isfinite(value):
        raise ConfigError(f"{where}: price must be a finite number >= 0, got {value!r}")
    return float(value)


def _parse(data: Mapping[str, Any], source: str) -> dict[str, _Entry]:
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: [models] must be a table of 'provider:model' entries")
    entries: dict[str, _Entry] = {}
    for key, spec in models.items():
        where = f"{source}: models.{key!r}"
        if ":" not in key:
            raise ConfigError(f"{where}: keys are 'provider:model', e.g. 'openai:gpt-5'")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected {{ input = N, output = N }} or {{ same_as = ... }}")
        unknown = set(spec) - {"input", "output", "same_as"}
        if unknown:
            raise ConfigError(f"{where}: unknown fields {sorted(unknown)}")
        if "same_as" in spec:
            if not isinstance(spec["same_as"], str) or set(spec) != {"same_as"}:
                raise ConfigError(f"{where}: same_as takes a 'provider:model' string alone")
            entries[key] = _Entry(same_as=spec["same_as"])
        elif {"input", "output"} <= set(spec):
            entries[key] = _Entry(
                price=Price(
                    _number(spec["input"], where + ".input"),
                    _number(spec["output"], where + ".output"),
                )
            )
        else:
            raise ConfigError(f"{where}: give both input and output (USD per 1M tokens)")
    return entries


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"price file {path}: cannot read it ({exc}); check RLMX_PRICES_FILE") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"price file {path}: invalid TOML ({exc})") from exc


class PriceTable:
    """Model prices keyed by ``provider:model`` (matching rules: module docstring)."""

    def __init__(self, entries: Mapping[str, Price | str] | None = None) -> None:
        """``entries``: spec → Price, or spec → another spec whose price it shares."""
        self._entries: dict[str, _Entry] = {}
        for key, value in (entries or {}).items():
            self._entries[key] = _Entry(same_as=value) if isinstance(value, str) else _Entry(price=value)

    @classmethod
    def builtin(cls) -> PriceTable:
        """The table shipped with rlmx (``rlmx/lm/prices.toml``)."""
        text = resources.files("rlmx.lm").joinpath("prices.toml").read_text(encoding="utf-8")
        table = cls()
        table._entries = _parse(tomllib.loads(text), "built-in prices.toml")
        return table

    @classmethod
    def load(cls, extra_file: Path | str | None = None) -> PriceTable:
        """The built-in table merged with ``extra_file`` (same TOML format), if given.

        Raises ConfigError when the file is unreadable or malformed.
        """
        table = cls.builtin()
        if extra_file is not None:
            path = Path(extra_file).expanduser()
            table._entries.update(_parse(_read_toml(path), f"price file {path}"))
        return table

    def merge(self, other: PriceTable) -> PriceTable:
        """A new table: ``self`` with ``other``'s entries added or replacing."""
        merged = PriceTable()
        merged._entries = {**self._entries, **other._entries}
        return merged

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def _match(self, spec: str) -> str | None:
        if spec in self._entries:
            return spec
        best: str | None = None
        for key in self._entries:
            if (
                not key.endswith("*")
                and spec.startswith(key)
                and _SNAPSHOT.fullmatch(spec[len(key) :])
                and (best is None or len(key) > len(best))
            ):
                best = key
        if best is not None:
            return best
        for key in self._entries:
            if key.endswith("*") and spec.startswith(key[:-1]) and (best is None or len(key) > len(best)):
                best = key
        return best

    def price(self, spec: str) -> Price | None:
        """The Price for ``provider:model`` (a bare ``provider`` means ``provider:``), or None."""
        if ":" not in spec:
            spec += ":"
        seen: set[str] = set()
        while True:
            key = self._match(spec)
            if key is None or key in seen:
                return None
            seen.add(key)
            entry = self._entries[key]
            if entry.price is not None:
                return entry.price
            assert entry.same_as is not None
            spec = entry.same_as

    def cost(self, spec: str, input_tokens: int, output_tokens: int) -> float | None:
        """USD for one call to ``spec``; None when the model's price is unknown."""
        price = self.price(spec)
        return None if price is None else price.cost(input_tokens, output_tokens)
