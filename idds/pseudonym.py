"""The pseudonymisation key: read from the environment or a key file outside the repo.

``patient_key`` is a keyed hash of the MRN computed inside DuckDB by the macro
``idds_patient_key`` (``idds/sql/functions.sql``); the key reaches DuckDB only as a
session variable, never as text inside SQL, dbt artefacts, logs or results.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys

from idds.settings import ConfigError, Settings

KEY_ENV = "IDDS_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 16


def load_key(settings: Settings) -> str:
    """Return the key from ``IDDS_PSEUDONYM_KEY`` or the key file; raise ConfigError if none."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key and settings.key_file.is_file():
        key = settings.key_file.read_text(encoding="utf-8").strip()
    if not key:
        raise ConfigError(
            f"No pseudonymisation key: set {KEY_ENV} or create the key file "
            f"{settings.key_file} (owner-only permissions); `idds demo` creates one."
        )
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"The pseudonymisation key must be at least {MIN_KEY_LENGTH} characters.")
    return key


def ensure_demo_key(settings: Settings) -> None:
    """Create a random key file with owner-only permissions if no key is configured."""
    if os.environ.get(KEY_ENV, "").strip() or settings.key_file.is_file():
        return
    settings.key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    print(
        f"warning: created a new pseudonymisation key at {settings.key_file} (mode 600). "
        "Keep it safe and outside the repository: another key gives unlinkable patient keys.",
        file=sys.stderr,
    )


