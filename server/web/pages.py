"""The two HTML pages; the app itself is the JavaScript in static/."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from server import __version__
from server.engine.errors import NotFoundError, UnsafePathError
from server.engine.events import vocabulary

pages = Blueprint("pages", __name__)


def _context(pipeline_id: str | None) -> dict:
    st = current_app.extensions["pipeloom"]
    return {"token": current_app.config["PIPELOOM_TOKEN"], "pipeline_id": pipeline_id,
            "pipelines": st.pipelines.list(), "version": __version__, "vocabulary": vocabulary()}


@pages.get("/")
def index():
    return render_template("index.html", **_context(None))


@pages.get("/pipelines/<pipeline_id>")
def studio(pipeline_id: str):
    try:
        current_app.extensions["pipeloom"].pipelines.path_for(pipeline_id)
    except NotFoundError:
        abort(404, description=f"no pipeline `{pipeline_id}` in this workspace")
    except UnsafePathError as exc:
        abort(403, description=str(exc))
    return render_template("studio.html", **_context(pipeline_id))
