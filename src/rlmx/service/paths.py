"""Path policy: which server paths a session may read (``RLMX_ALLOWED_PATHS``, never the
store's home), the names uploads are stored under, and their folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..ids import new_id
from .base import ServiceBase
from .errors import BadRequest, Forbidden

__all__ = ["PathsMixin", "safe_filename"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def safe_filename(name: str, taken: set[str]) -> str:
    """A file name for an upload: its last path component, odd characters replaced, made
    unique among ``taken``."""
    base = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .") or "upload"
    base = base[:120]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    cand, n = base, 1
    while cand.lower() in taken:
        n += 1
        cand = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
    taken.add(cand.lower())
    return cand


class PathsMixin(ServiceBase):
    """Server paths a session may read, and the folders uploads land in."""

    def check_path(self, raw: str) -> Path:
        """The resolved path when it lies under ``RLMX_ALLOWED_PATHS`` and neither lies under
        nor contains the store's home (uploads, key pepper, snapshot key; else Forbidden),
        and exists (else BadRequest). A folder's walk does not leave the folder (see
        :mod:`rlmx.corpus.collect`)."""
        roots = self.settings.allowed_roots()
        where = "a folder listed in RLMX_ALLOWED_PATHS on the server" if roots else "RLMX_ALLOWED_PATHS (empty)"
        try:
            given = Path(raw).expanduser()
            absolute = Path(os.path.abspath(given))
            real = given.resolve()
        except (ValueError, OSError, RuntimeError):
            raise BadRequest(f"invalid path {raw!r}") from None
        if not roots or not _under(absolute, roots) or not _under(real, roots):
            raise Forbidden(f"path {raw!r} is not under {where}; upload the files instead (multipart)")
        homes = list(dict.fromkeys([Path(os.path.abspath(self.store.home)), self.store.home.resolve()]))
        for p in (absolute, real):
            if _under(p, homes) or any(_under(h, [p]) for h in homes):
                raise Forbidden(
                    f"path {raw!r} is, or contains, the server's store (RLMX_HOME), which sessions may "
                    "not read; upload the files instead (multipart)"
                )
        if not real.exists():
            raise BadRequest(f"path {raw!r} does not exist on the server")
        return real

    def new_upload_dir(self) -> tuple[str, Path]:
        sid = new_id("ses")
        folder = self.store.home / "uploads" / sid
        folder.mkdir(parents=True, exist_ok=True)
        return sid, folder
