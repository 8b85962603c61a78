"""Domain errors become JSON responses here, and only here."""

from __future__ import annotations

import json
import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from server.engine.errors import (
    ConflictError, NotFoundError, PipeloomError, UnsafePathError, UsageError, ValidationError,
)
from server.engine.paths import BadPathError

from .security import JSON_TYPE, STATE_CHANGING, is_json_type

log = logging.getLogger("pipeloom.web")


class StaleVersionError(ConflictError):
    """A save based on an old version; carries the version the client should reload."""

    def __init__(self, message: str, current_version: int | None):
        super().__init__(message)
        self.current_version = current_version


class BrokenFileError(ConflictError):
    """A save over a pipeline file that does not parse; carries the file's problems."""

    def __init__(self, message: str, problems: list):
        super().__init__(message)
        self.problems = list(problems)


class RunActiveError(ConflictError):
    """A run of the pipeline is already going; carries its id."""

    def __init__(self, message: str, run_id: str):
        super().__init__(message)
        self.run_id = run_id


def error_body(message: str, details: list | None = None, **extra) -> dict:
    body = {"error": message, "details": details or []}
    body.update(extra)
    return body


def problem_dict(problem) -> dict:
    """A Problem as JSON, `line` always present (null when unknown), with what it is about
    (`node`, `port`, `port_kind`, or `edge`) when it concerns one step, port or connection."""
    return {"where": problem.where, "message": problem.message, "line": problem.line, **problem.subject()}


class UnsupportedMediaError(UsageError):
    """A write whose body is not declared as JSON (415)."""


def require_json_type() -> None:
    """Refuse a write to an API route unless it declares `Content-Type: application/json`.

    A cross-site form can post text/plain, urlencoded or multipart bodies without a
    preflight, never JSON. Runs before every route (after routing, so a wrong method
    is still a 405)."""
    if request.url_rule is None or request.method not in STATE_CHANGING or not request.path.startswith("/api/"):
        return
    if not is_json_type(request.headers.get("Content-Type")):
        given = request.headers.get("Content-Type") or "none"
        raise UnsupportedMediaError(f"send the body as JSON with `Content-Type: {JSON_TYPE}` (got {given[:80]})")


MAX_JSON_DEPTH = 100  # a pipeline document needs a handful of levels; params rarely a dozen


def json_body() -> dict:
    """The request body as a JSON object; an empty body is `{}`; anything else is a UsageError (400).

    Every route reads its body through here; `require_json_type` has already insisted on
    `Content-Type: application/json`."""
    raw = request.get_data(cache=True)
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except RecursionError:
        raise UsageError(f"the request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    check_json_value(data)
    return data


def check_json_value(value, limit: int = MAX_JSON_DEPTH) -> None:
    """UsageError when a parsed JSON value is deeper than `limit` or holds a lone surrogate
    (`"\\ud800"` parses, but no file, database or terminal can take it)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise UsageError(f"the request body is nested too deeply (at most {limit} levels)")
        if isinstance(item, dict):
            for k, v in item.items():
                _check_text(k)
                stack.append((v, depth + 1))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        shown = shown if len(shown) <= 60 else shown[:60] + "…"
        raise UsageError(f"the request body has a lone surrogate in \"{shown}\"; send valid Unicode text") from None


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api" or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    """Map the engine's exception hierarchy to HTTP statuses with a JSON body."""

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return jsonify(error_body(str(exc), [p.to_dict() for p in exc.problems])), 422

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError):
        return jsonify(error_body(str(exc))), 404

    @app.errorhandler(ConflictError)
    def _conflict(exc: ConflictError):
        extra = {}
        details = None
        if isinstance(exc, BrokenFileError):
            extra["broken"] = True
            details = [problem_dict(p) for p in exc.problems]
        if isinstance(exc, StaleVersionError):
            extra["current_version"] = exc.current_version
        if isinstance(exc, RunActiveError):
            extra["run_id"] = exc.run_id
        return jsonify(error_body(str(exc), details, **extra)), 409

    @app.errorhandler(UnsafePathError)
    def _unsafe(exc: UnsafePathError):
        return jsonify(error_body(str(exc))), 403

    @app.errorhandler(BadPathError)
    def _bad_path(exc: BadPathError):
        return jsonify(error_body(str(exc))), 400

    @app.errorhandler(UsageError)
    def _usage(exc: UsageError):
        field = getattr(exc, "field", None)  # the query parameter at fault, when the error knows it
        return jsonify(error_body(str(exc), **({"field": field} if field else {}))), 400

    @app.errorhandler(UnsupportedMediaError)
    def _media(exc: UnsupportedMediaError):
        return jsonify(error_body(str(exc))), 415

    @app.errorhandler(PipeloomError)
    def _other_domain(exc: PipeloomError):
        # any other deliberate engine error (a preview out of range...): the client asked for what it cannot have
        return jsonify(error_body(str(exc))), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if not _wants_json():
            return exc
        return jsonify(error_body(exc.description or exc.name)), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        if _wants_json():
            return jsonify(error_body("internal error; the server log has the details")), 500
        return "Internal error; the server log has the details.", 500
