"""What ``make run`` prints once the server answers (``python -m app.welcome``), against real servers."""

from __future__ import annotations

import subprocess
import sys

import httpx

from app.auth.tokens import decode_token
from app.seed import TENANTS, demo_email, demo_id
from app.settings import Settings
from app.welcome import main
from tests.conftest import TEST_JWT_SECRET
from tests.live import free_port, live_server


def test_in_development_it_prints_the_page_the_docs_the_demo_users_and_a_token(database, seeded, capsys) -> None:
    env = {"DATABASE_URL": database.owner_dsn, "APP_DATABASE_URL": database.runtime_dsn, "APP_ENV": "development"}
    with live_server(env) as server:
        assert main([server.url]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert f"  page       {server.url}/" in lines
        assert f"  API docs   {server.url}/schema  (OpenAPI document: {server.url}/schema/openapi.json)" in lines
        assert httpx.get(f"{server.url}/").status_code == 200  # both answer
        assert httpx.get(f"{server.url}/schema").status_code == 200
    assert "pick a demo user on the page (development sign-in)" in out
    for tenant in TENANTS:
        assert f"{demo_email(tenant, 'admin')} (admin), {demo_email(tenant, 'anna')} (supporter)" in out
    token = lines[lines.index("  demo token (anna@etms.example, supporter of eTMS, valid one hour):") + 1]
    claims = decode_token(token, Settings(app_env="development"))
    assert (claims.user_id, claims.tenant_id) == (demo_id("eTMS", "anna"), demo_id("eTMS"))


def test_without_the_development_sign_in_it_says_to_paste_a_token(database, seeded, capsys) -> None:
    env = {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "APP_ENV": "production",
        "JWT_SECRET": TEST_JWT_SECRET,
    }
    with live_server(env) as server:
        assert main([server.url]) == 0
    out = capsys.readouterr().out
    assert "paste a token on the page, or mint a token in a second terminal:" in out
    assert "demo token" not in out


def test_it_gives_up_quietly_when_make_ends_or_the_wait_is_over(capsys) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    make = subprocess.Popen([sys.executable, "-c", "pass"])
    make.wait()  # the process it watches has ended: it stops at once
    assert main([nobody_listens, str(make.pid), "--wait", "120"]) == 1
    assert main([nobody_listens, "--wait", "0.5"]) == 1
    assert capsys.readouterr() == ("", "")
