"""``python -m app.welcome URL [PID]``: what ``make run`` prints once the server answers.

Started in the background just before ``serve``, it waits for ``URL/ready``, then prints where
the page and the API docs are, the demo users and how to sign in, with a demo token from the
development sign-in when the server offers it. It gives up quietly when process ``PID`` (the
``make`` that runs the server) ends first, or after ``--wait`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from app.db.embedded import pid_alive
from app.seed import PEOPLE, TENANTS, demo_email, demo_id

DEMO_TENANT, DEMO_PERSON = "eTMS", "anna"


def _get(url: str, data: dict[str, str] | None = None) -> tuple[int, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (our own http:// URL)
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, b""


def wait_ready(url: str, pid: int | None, seconds: float) -> bool:
    """Poll ``url/ready`` until it answers 200 (True), or until ``pid`` ends or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while (pid is None or pid_alive(pid)) and time.monotonic() < deadline:
        try:
            if _get(f"{url}/ready")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def demo_token(url: str) -> str | None:
    """A one-hour token for the demo supporter from the development sign-in, or None without it."""
    status, body = _get(
        f"{url}/dev/token",
        {"tenant_id": str(demo_id(DEMO_TENANT)), "user_id": str(demo_id(DEMO_TENANT, DEMO_PERSON))},
    )
    token = json.loads(body).get("token") if status == 201 else None
    return token if isinstance(token, str) else None


def announcement(url: str, token: str | None) -> str:
    """The lines printed once the server answers."""
    sign_in = "pick a demo user on the page (development sign-in)" if token else "paste a token on the page"
    lines = [
        "",
        "Chat Sessions API is running.",
        f"  page       {url}/",
        f"  API docs   {url}/schema  (OpenAPI document: {url}/schema/openapi.json)",
        f"  sign in    {sign_in}, or mint a token in a second terminal:",
        f"             .venv/bin/python -m app token {demo_email(DEMO_TENANT, DEMO_PERSON)}  (valid one hour)",
        "  demo users:",
    ]
    for tenant in TENANTS:
        people = ", ".join(f"{demo_email(tenant, person)} ({role})" for person, _, role in PEOPLE)
        lines.append(f"    {tenant:<5} {people}")
    if token:
        who = f"{demo_email(DEMO_TENANT, DEMO_PERSON)}, supporter of {DEMO_TENANT}"
        lines += [f"  demo token ({who}, valid one hour):", token]
    lines += ["Ctrl-C stops the server.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Wait for the server, then print the announcement (exit 0), or give up quietly (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m app.welcome", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("pid", type=int, nargs="?", help="give up when this process ends")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    if not wait_ready(url, args.pid, args.wait):
        return 1
    print(announcement(url, demo_token(url)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
