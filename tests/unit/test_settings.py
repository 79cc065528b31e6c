"""Settings from the environment and the refusal of unsafe configurations (no database)."""

from __future__ import annotations

import secrets

import pytest

from app.settings import DEVELOPMENT_JWT_SECRET, ConfigurationError, Settings, runtime_dsn_from

STRONG = secrets.token_urlsafe(48)


def test_an_unset_app_env_is_production() -> None:
    settings = Settings.from_env({})
    assert settings.app_env == "production"
    assert settings.is_production
    assert not settings.uses_development_key
    assert settings.development_warning is None
    assert settings.database_url is None
    assert settings.jwt_algorithm == "HS256"
    assert settings.cors_origins == ()
    with pytest.raises(ConfigurationError, match="JWT_SECRET is required in production"):
        settings.validate()
    with pytest.raises(ConfigurationError, match="JWT_SECRET is not set"):
        _ = settings.signing_key
    assert Settings().app_env == "production"  # built in code, too


def test_explicit_development_uses_the_development_key() -> None:
    settings = Settings.from_env({"APP_ENV": "Development"})
    assert not settings.is_production
    assert settings.uses_development_key
    assert settings.signing_key == settings.verification_key == DEVELOPMENT_JWT_SECRET
    assert "/dev/token" in (settings.development_warning or "")
    settings.validate()


@pytest.mark.parametrize(
    "environ",
    [
        {"APP_ENV": "development", "JWT_SECRET": STRONG},
        {"APP_ENV": "development", "JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": "PEM"},
    ],
)
def test_a_configured_key_turns_the_development_key_off(environ: dict[str, str]) -> None:
    settings = Settings.from_env(environ)
    settings.validate()
    assert not settings.uses_development_key
    assert settings.verification_key != DEVELOPMENT_JWT_SECRET
    assert "development mode" in (settings.development_warning or "")
    assert "/dev/token" not in (settings.development_warning or "")


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://owner:pw@db:5433/chat",
            "APP_DB_PASSWORD": "p@ss/word",
            "JWT_SECRET": STRONG,
            "JWT_ISSUER": "https://idp",
            "JWT_AUDIENCE": "chat",
            "CORS_ORIGINS": "https://a.example, https://b.example,,",
            "APP_ENV": "Production",
            "DB_POOL_MAX_SIZE": "3",
            "DB_POOL_TIMEOUT": "0.5",
            "DB_STATEMENT_TIMEOUT_MS": "100",
        }
    )
    assert settings.is_production
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.pool_max_size == 3
    assert settings.pool_timeout == 0.5
    assert settings.statement_timeout_ms == 100
    assert settings.runtime_database_url == "postgresql://chat_app:p%40ss%2Fword@db:5433/chat"
    settings.validate()


def test_app_database_url_wins() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://o@h/d", "APP_DATABASE_URL": "postgresql://r@h/d"})
    assert settings.runtime_database_url == "postgresql://r@h/d"


def test_runtime_dsn_needs_a_database_url() -> None:
    with pytest.raises(ConfigurationError):
        _ = Settings.from_env({}).runtime_database_url


def test_runtime_dsn_keeps_ipv6_hosts_and_query() -> None:
    assert runtime_dsn_from("postgresql://o@[::1]:5432/chat?sslmode=require", "pw") == (
        "postgresql://chat_app:pw@[::1]:5432/chat?sslmode=require"
    )
    assert runtime_dsn_from("postgresql://o@localhost/chat", "pw") == "postgresql://chat_app:pw@localhost/chat"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "JWT_SECRET is required in production"),
        ({"APP_ENV": "production"}, "JWT_SECRET is required in production"),
        ({"APP_ENV": "production", "JWT_SECRET": "short"}, "at least 32 bytes"),
        ({"APP_ENV": "production", "JWT_SECRET": DEVELOPMENT_JWT_SECRET}, "well-known"),
        ({"JWT_SECRET": "a" * 40}, "too easy to guess"),
        ({"APP_ENV": "development", "JWT_SECRET": "short"}, "at least 32 bytes"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"JWT_ALGORITHM": "HS512"}, "JWT_ALGORITHM"),
        ({"JWT_ALGORITHM": "none"}, "JWT_ALGORITHM"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"APP_ENV": "development", "JWT_PUBLIC_KEY": "PEM"}, "JWT_ALGORITHM is HS256"),
        ({"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": "PEM"}, "JWT_ISSUER and JWT_AUDIENCE"),
        ({"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEY": "PEM", "JWT_ISSUER": "https://idp"}, "JWT_AUDIENCE"),
        ({"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": "PEM", "JWT_AUDIENCE": "chat"}, "JWT_ISSUER"),
    ],
)
def test_unsafe_configurations_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(environ).validate()


def test_asymmetric_algorithms_verify_with_the_public_key() -> None:
    environ = {
        "JWT_ALGORITHM": "es256",
        "JWT_PUBLIC_KEY": "PEM",
        "JWT_ISSUER": "https://idp",
        "JWT_AUDIENCE": "chat",
        "CURSOR_SECRET": secrets.token_urlsafe(32),
    }
    settings = Settings.from_env(environ)
    settings.validate()
    assert settings.is_production
    assert settings.jwt_algorithm == "ES256"
    assert settings.verification_key == "PEM"
    Settings.from_env({**environ, "JWT_ISSUER": "", "JWT_AUDIENCE": "", "APP_ENV": "development"}).validate()


def test_live_update_settings() -> None:
    defaults = Settings.from_env({"APP_DATABASE_URL": "postgresql://r@pooler:6432/d"})
    assert defaults.listen_database_url == "postgresql://r@pooler:6432/d"  # unset: the runtime DSN
    assert (defaults.events_max_streams, defaults.events_keepalive_seconds) == (1000, 10.0)
    settings = Settings.from_env(
        {
            "APP_DATABASE_URL": "postgresql://r@pooler:6432/d",
            "APP_LISTEN_DATABASE_URL": "postgresql://r@db:5432/d",
            "EVENTS_MAX_STREAMS": "0",
            "EVENTS_KEEPALIVE_SECONDS": "15",
            "JWT_SECRET": STRONG,
        }
    )
    assert settings.listen_database_url == "postgresql://r@db:5432/d"
    assert (settings.events_max_streams, settings.events_keepalive_seconds) == (0, 15.0)
    settings.validate()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EVENTS_MAX_STREAMS": "-1"}, "EVENTS_MAX_STREAMS must be 0 or more"),
        ({"EVENTS_KEEPALIVE_SECONDS": "16"}, "EVENTS_KEEPALIVE_SECONDS must be above 0 and at most 15"),
        ({"EVENTS_KEEPALIVE_SECONDS": "-1"}, "EVENTS_KEEPALIVE_SECONDS must be above 0"),
    ],
)
def test_live_update_settings_out_of_range_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({"JWT_SECRET": STRONG, **environ}).validate()
