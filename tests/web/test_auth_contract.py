"""The auth contract: every route the app serves needs the token.

It walks the app's url_map, so a route added later is checked without anyone
remembering to list it. A route that should answer without a token must be
named in PUBLIC (today there is none), which makes the exception a reviewed decision.
"""

from __future__ import annotations

from tests.web.conftest import TOKEN, assert_json_error, shell_pipeline
from tests.web.routes import routes

PUBLIC: set[tuple[str, str]] = set()  # (method, rule) pairs that need no token; keep it empty if you can
ORIGIN = {"Origin": "http://localhost", "Content-Type": "application/json"}


def unguarded_routes(app) -> tuple[list[str], int]:
    """(routes answering without a valid token, number of routes checked)."""
    client = app.test_client()
    found, checked = [], 0
    for route in routes(app):
        if (route.method, route.rule) in PUBLIC:
            continue
        checked += 1
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                        {"Cookie": "pipeloom_token=wrong"}):
            h = dict(headers)
            if route.writes:
                h.update(ORIGIN)  # a same-origin JSON write: only the token is missing
            r = client.open(route.url, method=route.method, headers=h, data="{}" if route.writes else None)
            if r.status_code not in (401, 403):
                found.append(f"{route.method} {route.rule} answered {r.status_code} with {headers or 'no token'}")
            elif route.is_api:
                assert_json_error(r, r.status_code)
    return found, checked


def test_every_route_needs_the_token(workspace, app):
    shell_pipeline(workspace)
    leaks, checked = unguarded_routes(app)
    assert not leaks, "routes answering without the token:\n" + "\n".join(leaks)
    # the walk really covered the app: pages, static files, reads and writes
    methods = {r.method for r in routes(app)}
    assert checked >= 20 and {"GET", "POST", "PUT"} <= methods


def test_the_contract_catches_a_route_that_skips_the_token(workspace, app):
    """A route served around the security middleware is found (so the test above can fail)."""
    flask_app = app.wsgi_app.app  # what the middleware wraps

    @app.get("/api/leak")
    def leak():
        return {"secret": True}

    guarded = app.wsgi_app

    def bypass(environ, start_response):
        if environ.get("PATH_INFO") == "/api/leak":
            return flask_app(environ, start_response)
        return guarded(environ, start_response)

    app.wsgi_app = bypass
    leaks, _ = unguarded_routes(app)
    assert leaks and all(line.startswith("GET /api/leak ") for line in leaks), leaks
