"""Configuration from the environment, read into one immutable ``Settings`` object.

Nothing here is cached at import: ``Settings.from_env()`` reads the environment when it
is called, so tests and commands build the settings they need.
"""

from __future__ import annotations

import os
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
RUNTIME_ROLE = "chat_app"
DEFAULT_RUNTIME_PASSWORD = "chat_app_dev_password"  # noqa: S105


class ConfigurationError(Exception):
    """The environment does not describe a configuration the server may run with."""


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
    cors_origins: tuple[str, ...] = ()
    app_env: str = "development"
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 5.0
    pool_tenant_max: int | None = None
    statement_timeout_ms: int = 5000
    idle_in_transaction_timeout_ms: int = 10000
    statement_cache_size: int = 100

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
            cors_origins=origins,
            app_env=(text("APP_ENV") or "development").lower(),
            pool_min_size=int(text("DB_POOL_MIN_SIZE") or 1),
            pool_max_size=int(text("DB_POOL_MAX_SIZE") or 10),
            pool_timeout=float(text("DB_POOL_TIMEOUT") or 5.0),
            pool_tenant_max=int(text("DB_POOL_TENANT_MAX") or 0) or None,
            statement_timeout_ms=int(text("DB_STATEMENT_TIMEOUT_MS") or 5000),
            idle_in_transaction_timeout_ms=int(text("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS") or 10000),
            statement_cache_size=int(text("DB_STATEMENT_CACHE_SIZE") or 100),
        )

    @property
    def tenant_max(self) -> int:
        """Pooled connections one tenant may hold at once: ``DB_POOL_TENANT_MAX``, default half the pool."""
        return self.pool_tenant_max or max(1, self.pool_max_size // 2)

    @property
    def is_production(self) -> bool:
        """True when ``APP_ENV=production``."""
        return self.app_env == "production"

    @property
    def runtime_database_url(self) -> str:
        """The DSN the API server connects with: ``APP_DATABASE_URL`` or the derived ``chat_app`` one."""
        if self.app_database_url:
            return self.app_database_url
        if not self.database_url:
            raise ConfigurationError("set DATABASE_URL or APP_DATABASE_URL")
        return runtime_dsn_from(self.database_url, self.app_db_password)

    @property
    def signing_key(self) -> str:
        """The HS256 key: ``JWT_SECRET``, or the development default outside production."""
        return self.jwt_secret or DEVELOPMENT_JWT_SECRET

    @property
    def verification_key(self) -> str:
        """The key tokens are verified with: the public key for RS256/ES256, else the secret."""
        if self.jwt_algorithm in ASYMMETRIC_ALGORITHMS:
            return self.jwt_public_key or ""
        return self.signing_key

    def validate(self) -> None:
        """Raise ``ConfigurationError`` for a configuration the server must not start with."""
        if self.app_env not in {"development", "production"}:
            raise ConfigurationError("APP_ENV must be 'development' or 'production'")
        if self.jwt_algorithm in ASYMMETRIC_ALGORITHMS:
            if not self.jwt_public_key:
                raise ConfigurationError(f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PUBLIC_KEY (PEM)")
            return
        if self.jwt_algorithm != "HS256":
            raise ConfigurationError("JWT_ALGORITHM must be HS256, RS256 or ES256")
        if self.is_production:
            secret = self.jwt_secret
            if not secret:
                raise ConfigurationError("JWT_SECRET is required when APP_ENV=production")
            if len(secret.encode()) < 32:
                raise ConfigurationError("JWT_SECRET must be at least 32 bytes")
            if secret in WELL_KNOWN_SECRETS:
                raise ConfigurationError("JWT_SECRET is a well-known default; generate a random one")
        elif self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            raise ConfigurationError("JWT_SECRET must be at least 32 bytes")
