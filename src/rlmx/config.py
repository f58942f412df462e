"""Settings from the environment (prefix ``RLMX_``) with pydantic-settings.

Provider keys use their providers' usual variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``, ``OPENAI_API_VERSION``,
``ANTHROPIC_API_KEY``) and are read by the provider clients, never passed to the REPL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

__all__ = ["EnvSettings", "Settings", "default_home", "settings_error"]


def default_home() -> Path:
    """``~/.local/share/rlmx``: the store folder when ``RLMX_HOME`` is unset."""
    return Path.home() / ".local" / "share" / "rlmx"


def settings_error(e: ValidationError, cls: type[BaseSettings]) -> ConfigError:
    """A :class:`ConfigError` for the invalid settings of ``cls``, naming each environment
    variable (``RLMX_STEP_TIMEOUT_S='abc'``) when the value came from one, else the field."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    env = {k.upper(): v for k, v in os.environ.items()}
    parts = []
    for err in e.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        var = f"{prefix}{field}".upper()
        if var in env:
            parts.append(f"{var}={env[var]!r}: {err['msg']}")
        else:
            parts.append(f"{cls.__name__}.{field}: {err['msg']}")
    hint = "Fix or unset the variable (see the README's Configuration)"
    return ConfigError(f"invalid setting {'; '.join(parts)}. {hint}")


class EnvSettings(BaseSettings):
    """Settings read from the environment whose invalid values raise :class:`ConfigError`
    naming the variable (see :func:`settings_error`), never a raw pydantic error."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise settings_error(e, type(self)) from None


class Settings(EnvSettings):
    """rlmx settings. Units: seconds, characters.

    * ``RLMX_HOME`` — store folder (SQLite metadata, blobs, FTS index).
    * ``RLMX_MODEL`` / ``RLMX_SUB_MODEL`` — root / sub-LM spec (``openai:gpt-4o-mini``...).
    * ``RLMX_PRICES_FILE`` — TOML price table extending the built-in one.
    * ``RLMX_STEP_TIMEOUT_S`` — wall-clock limit of one REPL step.
    * ``RLMX_OUTPUT_MAX_CHARS`` — stdout returned to the root LM per turn (head + tail).
    * ``RLMX_MAX_CONCURRENCY`` — concurrent sub-calls of an execution tree.
    * ``RLMX_DATABASE_URL`` — metadata store: a SQLAlchemy URL (``sqlite:///PATH`` or
      ``postgresql+psycopg://USER:PASS@HOST:PORT/DB``); default the SQLite file
      ``$RLMX_HOME/rlmx.sqlite``.
    * ``RLMX_BLOB_URL`` — blob store: a folder path or ``file:///PATH``, or
      ``s3://BUCKET/PREFIX`` (obstore; ``AWS_*`` variables, ``AWS_ENDPOINT_URL`` for an
      S3-compatible server); default ``$RLMX_HOME/blobs``.
    * ``RLMX_CACHE_DIR`` / ``RLMX_CACHE_MAX_BYTES`` — the local read-only cache of remote
      blobs that the REPL memory-maps (default ``$RLMX_HOME/cache``, 10 GiB).
    """

    model_config = SettingsConfigDict(env_prefix="RLMX_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    model: str | None = None
    sub_model: str | None = None
    prices_file: Path | None = None
    step_timeout_s: float = 120.0
    output_max_chars: int = 20_000
    repl_output_cap_chars: int = 2_000_000
    max_concurrency: int = 16
    request_timeout_s: float = 120.0
    max_retries: int = 4
    database_url: str | None = None
    blob_url: str | None = None
    cache_dir: Path | None = None
    cache_max_bytes: int = 10 << 30
