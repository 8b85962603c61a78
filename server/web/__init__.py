"""The studio's web layer: a thin Flask + Flask-SocketIO shell over the engine."""

from .app import WebConfig, create_app
from .serve import serve, studio_url

__all__ = ["WebConfig", "create_app", "serve", "studio_url"]
