"""Every route of the app as concrete URLs, for tests that must cover all of them."""

from __future__ import annotations

from dataclasses import dataclass

# a value for each URL argument the app's rules use; unknown arguments fail loudly
SAMPLES = {
    "pipeline_id": "flow",
    "node_id": "make",
    "run_id": "RUN",
    "port": "out",
    "number": 1,
    "filename": "js/api.js",
    "trigger_id": "hook",
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    endpoint: str
    url: str
    arguments: tuple[str, ...]

    @property
    def writes(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def is_api(self) -> bool:
        return self.rule.startswith("/api/")


def routes(app, values: dict | None = None) -> list[Route]:
    """One Route per (rule, method) of the app, its arguments filled from `values` or SAMPLES."""
    adapter = app.url_map.bind("127.0.0.1")
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            missing = set(rule.arguments) - set(SAMPLES) - set(values or {})
            assert not missing, f"no sample value for {missing} in {rule.rule}: add one to tests/web/routes.py"
            args = {a: (values or {}).get(a, SAMPLES[a]) for a in rule.arguments}
            url = adapter.build(rule.endpoint, args, method=method)
            found.append(Route(method, rule.rule, rule.endpoint, url, tuple(sorted(rule.arguments))))
    return found
