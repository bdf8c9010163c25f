"""Authentication and session load test: login, token verification and refresh before expiry.

Each user logs in once, then mostly verifies its access token; it tracks the token's expiry
and refreshes it when less than a quarter of its lifetime is left (logging in again if the
refresh token has expired too). Forged tokens must be rejected. Cheap per user (no extra
greenlets, a few strings of state), so it is meant for 200+ concurrent users.

Run: `locust -f load_tests/auth_session_test.py --headless -u 200 -r 50 -t 2m --host http://127.0.0.1:8000`.
"""

from __future__ import annotations

from checks import TokenSession, expect_json
from locust import FastHttpUser, between, task


class AuthSessionUser(FastHttpUser):
    """A signed-in client checking its session between actions."""

    wait_time = between(0.5, 1.5)
    concurrency = 1

    def on_start(self) -> None:
        self.session = TokenSession(self.client)
        self.session.login()

    @task(10)
    def verify(self) -> None:
        self.session.verify()

    @task(1)
    def relogin(self) -> None:
        self.session.login()

    @task(1)
    def forged_token(self) -> None:
        if not self.session.ensure_fresh() or self.session.access_token is None:
            return
        body, _, signature = self.session.access_token.partition(".")
        forged = f"{body}.{signature[::-1]}"
        headers = {"Authorization": f"Bearer {forged}"}
        name = "/api/v1/auth/verify [forged]"
        with self.client.get("/api/v1/auth/verify", headers=headers, name=name, catch_response=True) as response:
            expect_json(response, status=401, keys=("error",))
