"""The strength rule for production secrets: an entropy estimate, not a blocklist (no database)."""

from __future__ import annotations

import base64
import os
import random
import secrets
import string

import pytest

from app.settings import (
    DEVELOPMENT_JWT_SECRET,
    MIN_SECRET_BITS,
    SECRET_ADVICE,
    ConfigurationError,
    Settings,
    estimate_entropy_bits,
    require_strong_secret,
)

ADVICE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"

# At least 32 bytes each, and worthless.
WORTHLESS = [
    "a" * 32,
    "Z" * 64,
    "0" * 32,
    "!" * 40,
    " " * 32,
    "\t" * 32,
    " \t\n" * 11,
    "changeme" * 4,
    "ChangeMe" * 4,
    "change-me-" * 4,
    "secret" * 6,
    "password" * 4,
    "Password1!" * 4,
    "your-256-bit-secret" * 2,
    "secret" + "0" * 26,
    "secret" + "!" * 30,
    "mysecretkey" + "x" * 30,
    "0" * 26 + "secret",
    "abcdefghijklmnopqrstuvwxyz012345",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef",
    "zyxwvutsrqponmlkjihgfedcba987654",
    "0123456789" * 4,
    "qwertyuiopasdfghjklzxcvbnm123456",
    "QWERTYUIOP" * 4,
    "abcabcabcabcabcabcabcabcabcabcab",
    "0123456789abcdef0123456789abcdef",
    "ab" * 20,
    "1a2b" * 10,
    "x1" * 16,
    "development" * 3,
    "1111111122222222333333334444444455555555",
    "ChangeMeCHANGEMEchangemeCHangeMe",
]

# Case and whitespace variants of the well-known development key (it is long and varied,
# so only its being known makes it worthless).
KNOWN_DEFAULT_VARIANTS = [
    DEVELOPMENT_JWT_SECRET,
    DEVELOPMENT_JWT_SECRET.upper(),
    DEVELOPMENT_JWT_SECRET.title(),
    f"  {DEVELOPMENT_JWT_SECRET}\n",
    DEVELOPMENT_JWT_SECRET.replace("-", " "),
    DEVELOPMENT_JWT_SECRET.replace("-", "\t").swapcase(),
    DEVELOPMENT_JWT_SECRET.replace("-", "_").rstrip("!"),
]

GENERATORS = {
    "token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "token_urlsafe(48)": lambda: secrets.token_urlsafe(48),
    "token_urlsafe(64)": lambda: secrets.token_urlsafe(64),
    "token_hex(32)": lambda: secrets.token_hex(32),
    "token_hex(48)": lambda: secrets.token_hex(48),
    "HEX(32)": lambda: secrets.token_hex(32).upper(),
    "base64(32 bytes)": lambda: base64.b64encode(os.urandom(32)).decode(),
    "40 random printable": lambda: "".join(
        secrets.choice(string.ascii_letters + string.digits + "!@#$%^&*") for _ in range(40)
    ),
}


@pytest.mark.parametrize("secret", WORTHLESS, ids=repr)
def test_worthless_secrets_of_32_bytes_and_more_are_refused(secret: str) -> None:
    assert len(secret.encode()) >= 32
    assert estimate_entropy_bits(secret) < MIN_SECRET_BITS
    # Refused as too easy to guess, or (a default padded with punctuation) as a well-known default.
    with pytest.raises(ConfigurationError, match=r"JWT_SECRET is (too easy to guess|a well-known default)") as refused:
        require_strong_secret("JWT_SECRET", secret)
    assert ADVICE in str(refused.value)


@pytest.mark.parametrize("secret", KNOWN_DEFAULT_VARIANTS, ids=repr)
def test_any_case_or_spacing_of_a_known_default_is_refused(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="JWT_SECRET is a well-known default") as refused:
        require_strong_secret("JWT_SECRET", secret)
    assert ADVICE in str(refused.value)


@pytest.mark.parametrize(("secret", "message"), [(None, "required"), ("", "required"), ("k3Y!" * 7, "32 bytes")])
def test_missing_and_short_secrets_are_refused_with_the_advice(secret: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        require_strong_secret("CURSOR_SECRET", secret)
    assert str(refused.value).startswith("CURSOR_SECRET ")
    assert SECRET_ADVICE in str(refused.value)


@pytest.mark.parametrize("generate", GENERATORS.values(), ids=GENERATORS.keys())
def test_generated_secrets_always_pass(generate) -> None:
    for _ in range(500):
        secret = generate()
        require_strong_secret("JWT_SECRET", secret)
        Settings(jwt_secret=secret).validate()


def test_the_advice_itself_passes_and_scores_far_above_the_bar() -> None:
    lowest = min(estimate_entropy_bits(secrets.token_urlsafe(32)) for _ in range(2000))
    assert lowest >= 1.3 * MIN_SECRET_BITS


def test_a_good_secret_spoiled_by_repetition_is_refused() -> None:
    """The estimate reads repetition, not the alphabet alone: a random chunk repeated stays as weak as the chunk."""
    chunk = secrets.token_urlsafe(12)  # 16 characters
    require_strong_secret("JWT_SECRET", chunk + secrets.token_urlsafe(24))
    with pytest.raises(ConfigurationError, match="too easy to guess"):
        require_strong_secret("JWT_SECRET", chunk * 3)


def test_the_estimate_grows_with_real_randomness() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    estimates = [estimate_entropy_bits("".join(rng.choice(alphabet) for _ in range(n))) for n in (8, 16, 32, 64, 128)]
    assert estimates == sorted(estimates)
    assert estimate_entropy_bits("") == 0.0
    assert estimate_entropy_bits("a") == 0.0
    # The estimate never exceeds what the alphabet allows.
    assert estimate_entropy_bits("0123456789" * 2) < 20 * 3.33
    assert estimate_entropy_bits("é" * 40) < estimate_entropy_bits(
        "éàüøñç" + "".join(rng.choice(alphabet) for _ in range(34))
    )
