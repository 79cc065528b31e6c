"""Configuration from the environment, read into one immutable ``Settings`` object.

Nothing here is cached at import: ``Settings.from_env()`` reads the environment when it
is called, so tests and commands build the settings they need.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

DEVELOPMENT_JWT_SECRET = "development-only-secret-do-not-use-in-production!"  # noqa: S105
WELL_KNOWN_SECRETS = frozenset(
    {
        DEVELOPMENT_JWT_SECRET,
        "changeme",
        "change-me",
        "secret",
        "your-secret-key",
        "your-256-bit-secret",
        "supersecret",
    }
)
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
DEVELOPMENT, PRODUCTION = "development", "production"
MIN_SECRET_BYTES = 32
MIN_SECRET_BITS = 128
SECRET_ADVICE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105 (advice)
# Runs that cost almost nothing to guess: the alphabet, the digits and the keyboard rows, both ways.
_ROWS = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_SEQUENCES = _ROWS + tuple(row[::-1] for row in _ROWS)
_PATTERN_MIN = 3
RUNTIME_ROLE = "chat_app"
MAX_KEEPALIVE_SECONDS = 15  # the contract: a comment line at least every 15 s
DEFAULT_RUNTIME_PASSWORD = "chat_app_dev_password"  # noqa: S105


class ConfigurationError(Exception):
    """The environment does not describe a configuration the server may run with."""


def _alphabet_size(text: str) -> int:
    """How many symbols a guesser must try per character, from the character classes ``text`` uses."""
    ascii_text = [c for c in text if c.isascii()]
    classes = [
        (10, any(c.isdigit() for c in ascii_text)),
        (26, any(c.islower() for c in ascii_text)),
        (26, any(c.isupper() for c in ascii_text)),
        (33, any(not c.isalnum() for c in ascii_text)),  # punctuation and whitespace
        (100, len(ascii_text) < len(text)),  # anything beyond ASCII
    ]
    return sum(size for size, used in classes if used)


def _shannon_bits_per_character(text: str) -> float:
    """The entropy of ``text``'s own character frequencies: low when few characters recur a lot."""
    n = len(text)
    return -sum(count / n * math.log2(count / n) for count in Counter(text).values())


def _pattern_length(text: str, i: int) -> int:
    """The longest run starting at ``i`` that repeats earlier text (overlaps allowed) or follows a sequence."""
    best = 0
    start = text[i : i + _PATTERN_MIN]
    j = text.find(start, 0, i + _PATTERN_MIN - 1)
    while 0 <= j < i:
        k = 0
        while i + k < len(text) and text[j + k] == text[i + k]:
            k += 1
        best = max(best, k)
        j = text.find(start, j + 1, i + _PATTERN_MIN - 1)
    lowered = text.lower()
    for sequence in _SEQUENCES:
        p = sequence.find(lowered[i])
        k = 0
        while p >= 0 and i + k < len(text) and p + k < len(sequence) and lowered[i + k] == sequence[p + k]:
            k += 1
        best = max(best, k)
    return best


def estimate_entropy_bits(secret: str) -> float:
    """A conservative estimate of how many bits of entropy ``secret`` holds.

    The text is read left to right. A run of 3 or more characters that repeats earlier text
    (``changemechangeme``, ``secret0000``, 32 spaces) or follows the alphabet, the digits or
    a keyboard row costs what naming it costs (where it starts and how long: 2·log2 of the
    secret's length). Every other character costs log2 of the alphabet its character classes
    span, capped by the text's own character-frequency entropy (few distinct characters,
    little entropy). Words are not recognised: a passphrase of common words scores higher
    than it deserves, which is why the advice is a generated secret.
    """
    if not secret:
        return 0.0
    literal = min(math.log2(_alphabet_size(secret)), _shannon_bits_per_character(secret))
    pattern = 2 * math.log2(len(secret))
    bits, i = 0.0, 0
    while i < len(secret):
        length = _pattern_length(secret, i)
        if length >= _PATTERN_MIN:
            bits, i = bits + pattern, i + length
        else:
            bits, i = bits + literal, i + 1
    return bits


def _folded(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


_FOLDED_WELL_KNOWN = frozenset(_folded(secret) for secret in WELL_KNOWN_SECRETS)


def require_strong_secret(name: str, secret: str | None) -> None:
    """Raise ``ConfigurationError`` unless ``secret`` is fit for production.

    Fit means: at least 32 bytes, not a well-known default in any case or spacing, and an
    estimated entropy (``estimate_entropy_bits``) of at least 128 bits. The message names
    the variable and says how to make a good secret. ``secrets.token_urlsafe(32)`` and longer
    always pass.
    """
    if not secret:
        raise ConfigurationError(f"{name} is required in production; {SECRET_ADVICE}")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"{name} must be at least {MIN_SECRET_BYTES} bytes; {SECRET_ADVICE}")
    if _folded(secret) in _FOLDED_WELL_KNOWN:
        raise ConfigurationError(f"{name} is a well-known default; {SECRET_ADVICE}")
    bits = estimate_entropy_bits(secret)
    if bits < MIN_SECRET_BITS:
        raise ConfigurationError(
            f"{name} is too easy to guess (an estimated {bits:.0f} bits of entropy, {MIN_SECRET_BITS} needed: "
            f"repeated, sequential or few distinct characters); {SECRET_ADVICE}"
        )


def runtime_dsn_from(owner_dsn: str, password: str) -> str:
    """The owner DSN with its role replaced by the runtime role ``chat_app``."""
    parts = urlsplit(owner_dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{RUNTIME_ROLE}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Settings:
    """Everything the application reads from the environment."""

    database_url: str | None = None
    app_database_url: str | None = None
    app_db_password: str = DEFAULT_RUNTIME_PASSWORD
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    cursor_secret: str | None = None
    cors_origins: tuple[str, ...] = ()
    app_env: str = PRODUCTION
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 5.0
    pool_tenant_max: int | None = None
    statement_timeout_ms: int = 5000
    idle_in_transaction_timeout_ms: int = 10000
    statement_cache_size: int = 100
    app_read_database_url: str | None = None
    replica_max_lag_ms: int = 5000
    app_listen_database_url: str | None = None
    events_max_streams: int = 1000
    events_keepalive_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        origins = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            database_url=text("DATABASE_URL"),
            app_database_url=text("APP_DATABASE_URL"),
            app_db_password=text("APP_DB_PASSWORD") or DEFAULT_RUNTIME_PASSWORD,
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_public_key=text("JWT_PUBLIC_KEY"),
            jwt_algorithm=(text("JWT_ALGORITHM") or "HS256").upper(),
            jwt_issuer=text("JWT_ISSUER"),
            jwt_audience=text("JWT_AUDIENCE"),
            cursor_secret=env.get("CURSOR_SECRET") or None,
            cors_origins=origins,
            app_env=(text("APP_ENV") or PRODUCTION).lower(),
            pool_min_size=int(text("DB_POOL_MIN_SIZE") or 1),
            pool_max_size=int(text("DB_POOL_MAX_SIZE") or 10),
            pool_timeout=float(text("DB_POOL_TIMEOUT") or 5.0),
            pool_tenant_max=int(text("DB_POOL_TENANT_MAX") or 0) or None,
            statement_timeout_ms=int(text("DB_STATEMENT_TIMEOUT_MS") or 5000),
            idle_in_transaction_timeout_ms=int(text("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS") or 10000),
            statement_cache_size=int(text("DB_STATEMENT_CACHE_SIZE") or 100),
            app_read_database_url=text("APP_READ_DATABASE_URL"),
            replica_max_lag_ms=int(text("DB_REPLICA_MAX_LAG_MS") or 5000),
            app_listen_database_url=text("APP_LISTEN_DATABASE_URL"),
            events_max_streams=int(text("EVENTS_MAX_STREAMS") or 1000),
            events_keepalive_seconds=float(text("EVENTS_KEEPALIVE_SECONDS") or 10.0),
        )

    @property
    def tenant_max(self) -> int:
        """Pooled connections one tenant may hold at once: ``DB_POOL_TENANT_MAX``, default half the pool."""
        return self.pool_tenant_max or max(1, self.pool_max_size // 2)

    @property
    def is_production(self) -> bool:
        """True unless ``APP_ENV=development`` was set explicitly (an unset ``APP_ENV`` is production)."""
        return self.app_env != DEVELOPMENT

    @property
    def uses_development_key(self) -> bool:
        """The well-known development key and the ``/dev`` sign-in routes are on.

        Only with ``APP_ENV=development`` set explicitly and neither ``JWT_SECRET`` nor
        ``JWT_PUBLIC_KEY`` configured: a real key never signs tokens for the dev routes.
        """
        return self.app_env == DEVELOPMENT and not self.jwt_secret and not self.jwt_public_key

    @property
    def development_warning(self) -> str | None:
        """The line the server logs at start-up in development mode (``None`` in production)."""
        if self.is_production:
            return None
        if self.uses_development_key:
            return (
                "development mode (APP_ENV=development): /dev/users and /dev/token sign anyone in as any seeded "
                "user with the well-known development key; never expose this server"
            )
        return (
            "development mode (APP_ENV=development): the strength of JWT_SECRET and the issuer/audience of "
            "RS256/ES256 tokens are not checked; never expose this server"
        )

    @property
    def runtime_database_url(self) -> str:
        """The DSN the API server connects with: ``APP_DATABASE_URL`` or the derived ``chat_app`` one."""
        if self.app_database_url:
            return self.app_database_url
        if not self.database_url:
            raise ConfigurationError("set DATABASE_URL or APP_DATABASE_URL")
        return runtime_dsn_from(self.database_url, self.app_db_password)

    @property
    def listen_database_url(self) -> str:
        """The DSN of the one connection per process that LISTENs: ``APP_LISTEN_DATABASE_URL``, else the runtime one.

        It must reach PostgreSQL directly (or through a pooler in session mode): LISTEN does not
        work through a pooler in transaction mode.
        """
        return self.app_listen_database_url or self.runtime_database_url

    @property
    def signing_key(self) -> str:
        """The HS256 key: ``JWT_SECRET``, or the development key when ``uses_development_key``."""
        if self.jwt_secret:
            return self.jwt_secret
        if self.uses_development_key:
            return DEVELOPMENT_JWT_SECRET
        raise ConfigurationError("JWT_SECRET is not set (the development key needs APP_ENV=development)")

    @property
    def verification_key(self) -> str:
        """The key tokens are verified with: the public key for RS256/ES256, else the secret."""
        if self.jwt_algorithm in ASYMMETRIC_ALGORITHMS:
            return self.jwt_public_key or ""
        return self.signing_key

    def validate(self) -> None:
        """Raise ``ConfigurationError`` for a configuration the server must not start with."""
        if self.app_env not in {DEVELOPMENT, PRODUCTION}:
            raise ConfigurationError("APP_ENV must be 'development' or 'production' (unset: production)")
        if self.events_max_streams < 0:
            raise ConfigurationError("EVENTS_MAX_STREAMS must be 0 or more (0: no live updates)")
        if not 0 < self.events_keepalive_seconds <= MAX_KEEPALIVE_SECONDS:
            raise ConfigurationError(f"EVENTS_KEEPALIVE_SECONDS must be above 0 and at most {MAX_KEEPALIVE_SECONDS}")
        if self.jwt_algorithm in ASYMMETRIC_ALGORITHMS:
            if not self.jwt_public_key:
                raise ConfigurationError(f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PUBLIC_KEY (PEM)")
            if self.is_production and not (self.jwt_issuer and self.jwt_audience):
                raise ConfigurationError(
                    f"JWT_ALGORITHM={self.jwt_algorithm} in production needs JWT_ISSUER and JWT_AUDIENCE: without "
                    "them a token the identity provider issued for another service would be accepted"
                )
            if self.is_production:  # the cursors' key: no JWT_SECRET to derive it from
                require_strong_secret("CURSOR_SECRET", self.cursor_secret)
            return
        if self.jwt_algorithm != "HS256":
            raise ConfigurationError("JWT_ALGORITHM must be HS256, RS256 or ES256")
        if self.jwt_public_key:
            raise ConfigurationError(
                "JWT_PUBLIC_KEY is set but JWT_ALGORITHM is HS256: set JWT_ALGORITHM=RS256 or ES256"
            )
        if self.is_production:
            if not self.jwt_secret:
                raise ConfigurationError(
                    "JWT_SECRET is required in production (an unset APP_ENV means production; APP_ENV=development "
                    f"signs with the development key instead); {SECRET_ADVICE}"
                )
            require_strong_secret("JWT_SECRET", self.jwt_secret)
            if self.cursor_secret:
                require_strong_secret("CURSOR_SECRET", self.cursor_secret)
        elif self.jwt_secret and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes; {SECRET_ADVICE}")
