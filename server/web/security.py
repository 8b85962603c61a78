"""The one security middleware: Host allowlist, token and Origin checks.

It wraps the whole WSGI app (Flask-SocketIO's middleware included), because
requests to /socket.io never reach Flask's `before_request`. Socket.IO carries
its token in the CONNECT packet, so /socket.io is checked for Host and Origin
here and for the token in the connect handler (see sockets.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

COOKIE_NAME = "pipeloom_token"
INVOKE_PREFIX = "/invoke/"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
SCHEMES = {"ws": "http", "wss": "https"}
JSON_TYPE = "application/json"
MIN_TOKEN_LENGTH = 16
MIN_TOKEN_DISTINCT = 8


def token_problem(token: str) -> str | None:
    """Why `token` is too weak to guard a server others can reach, or None when it will do."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"it has {len(token)} characters; use at least {MIN_TOKEN_LENGTH}"
    if len(set(token)) < MIN_TOKEN_DISTINCT:
        return f"it repeats a few characters; use at least {MIN_TOKEN_DISTINCT} different ones"
    return None


def is_json_type(content_type: str | None) -> bool:
    """True for `application/json`, with or without parameters such as `; charset=utf-8`."""
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON_TYPE


def is_loopback(host: str) -> bool:
    """True when `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    h = host.strip().strip("[]").lower()
    if h in LOOPBACK_NAMES or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def split_host(value: str | None) -> tuple[str, str | None]:
    """Split a Host header into (hostname, port); IPv6 literals lose their brackets."""
    value = (value or "").strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        host, rest = value[1:end], value[end + 1:]
        return host, rest[1:] if rest.startswith(":") and rest[1:] else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port or None
    return value, None


class Guard:
    """The security policy shared by the HTTP middleware and the Socket.IO handlers."""

    def __init__(self, token: str, allowed_hosts: set[str] | list[str], extra_origins: list[str] | None = None):
        if not token:
            raise ValueError("a token is required")
        self.token = token
        self.allowed_hosts = {"localhost", "127.0.0.1", "::1"}
        for h in allowed_hosts:
            h = (h or "").strip().lower()
            if h.startswith("[") or h.count(":") <= 1:
                h = split_host(h)[0]
            if h:
                self.allowed_hosts.add(h)
        self.extra_origins = {o.rstrip("/").lower() for o in (extra_origins or [])}

    def host_ok(self, host_header: str | None) -> bool:
        """Is the Host header one of ours? (defeats DNS rebinding)"""
        if not host_header:
            return False
        host, port = split_host(host_header)
        if port is not None and not port.isdigit():
            return False
        return host in self.allowed_hosts

    def token_ok(self, candidate: str | None) -> bool:
        """Constant-time comparison with the launch token."""
        if not candidate or not isinstance(candidate, str):
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self.token.encode("utf-8"))

    def origin_ok(self, origin: str | None, host_header: str | None, scheme: str = "http") -> bool:
        """An Origin is accepted when it has the request's scheme, host and port
        (and that host is allowed), or is one of the configured extra origins."""
        if origin is None:
            return True  # not a browser, or a same-origin GET; the token still applies
        origin = origin.strip().lower().rstrip("/")
        if origin in self.extra_origins:
            return True
        if origin == "null" or "://" not in origin:
            return False
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        try:
            o_port = str(parts.port) if parts.port else DEFAULT_PORTS[parts.scheme]
        except ValueError:
            return False
        h_host, h_port = split_host(host_header)
        h_port = h_port or DEFAULT_PORTS.get(scheme, "80")
        # an https page talking to this plain-http server is another origin, even on the same host:port
        return (parts.scheme == SCHEMES.get(scheme, scheme) and parts.hostname == h_host and o_port == h_port
                and h_host in self.allowed_hosts)

    def engineio_origin_check(self, origin: str | None, environ: dict | None = None) -> bool:
        """`cors_allowed_origins` callable for python-engineio."""
        environ = environ or {}
        return self.origin_ok(origin, environ.get("HTTP_HOST"), environ.get("wsgi.url_scheme", "http"))

    def bearer(self, environ: dict) -> str | None:
        """Only `Authorization: Bearer` (what invoke routes accept)."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None

    def token_from_environ(self, environ: dict) -> str | None:
        """The token from `Authorization: Bearer` or the cookie (never the query string)."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return cookie_token(environ)


def cookie_token(environ: dict) -> str | None:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    try:
        jar = SimpleCookie()
        jar.load(raw)
    except Exception:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel else None


def _json_response(start_response, status: str, payload: dict, headers: list | None = None):
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")] + (headers or []))
    return [body]


UNAUTHORIZED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pipeloom: sign in</title>
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;line-height:1.5}
code{background:#8882;padding:.1em .3em;border-radius:3px}</style></head><body>
<h1>This studio needs its token</h1>
<p>Open the address that <code>pipeloom serve</code> printed when it started; it ends with
<code>?token=&hellip;</code> and logs this browser in.</p></body></html>"""


class SecurityMiddleware:
    """WSGI wrapper enforcing Host, Origin and token on every request."""

    def __init__(self, app, guard: Guard):
        self.app = app
        self.guard = guard

    def __call__(self, environ, start_response):
        g = self.guard
        host = environ.get("HTTP_HOST")
        if not g.host_ok(host):
            return _json_response(start_response, "400 Bad Request", {
                "error": f"Host `{host or ''}` is not allowed; open the studio through localhost or 127.0.0.1, "
                         "or add the name with --allow-host / PIPELOOM_ALLOWED_HOSTS",
                "details": []})
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith(INVOKE_PREFIX):
            # called by other programs: no Origin or cookie; the route checks an invoke key (or the token)
            # sent as `Authorization: Bearer`, which a cross-site page cannot attach without a preflight
            environ.pop("HTTP_COOKIE", None)
            return self.app(environ, start_response)
        origin = environ.get("HTTP_ORIGIN")
        scheme = environ.get("wsgi.url_scheme", "http")
        if method in STATE_CHANGING or path.startswith("/socket.io"):
            if not g.origin_ok(origin, host, scheme):
                return _json_response(start_response, "403 Forbidden", {
                    "error": f"Origin `{origin}` is not allowed; requests must come from the studio's own page",
                    "details": []})
            if method in STATE_CHANGING and environ.get("HTTP_SEC_FETCH_SITE") == "cross-site":
                return _json_response(start_response, "403 Forbidden", {
                    "error": "cross-site requests are refused", "details": []})
        if path.startswith("/socket.io"):
            return self.app(environ, start_response)  # the token is checked on CONNECT

        is_api = path.startswith("/api/") or path == "/api"
        query = environ.get("QUERY_STRING", "")
        if method == "GET" and not is_api and "token=" in query:
            pairs = parse_qsl(query, keep_blank_values=True)
            given = next((v for k, v in pairs if k == "token"), None)
            if given is not None and g.token_ok(given):
                rest = urlencode([(k, v) for k, v in pairs if k != "token"])
                location = (environ.get("SCRIPT_NAME", "") + path) + (f"?{rest}" if rest else "")
                cookie = f"{COOKIE_NAME}={g.token}; Path=/; HttpOnly; SameSite=Strict"
                start_response("302 Found", [("Location", location), ("Set-Cookie", cookie),
                                             ("Content-Length", "0"), ("Cache-Control", "no-store")])
                return [b""]
        if not g.token_ok(g.token_from_environ(environ)):
            if is_api or method != "GET":
                return _json_response(start_response, "401 Unauthorized", {
                    "error": "missing or wrong token: send `Authorization: Bearer <token>` "
                             "(the token is printed by `pipeloom serve`)",
                    "details": []}, [("WWW-Authenticate", 'Bearer realm="pipeloom"')])
            body = UNAUTHORIZED_PAGE.encode()
            start_response("401 Unauthorized", [("Content-Type", "text/html; charset=utf-8"),
                                                ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)
