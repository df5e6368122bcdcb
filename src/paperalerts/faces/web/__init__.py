"""The web app: public sign-up and preferences, the admin, the JSON API.

``create_app(settings)`` builds it; ``paperalerts web`` serves it with uvicorn.
"""

# Registers the ``{name:id}`` path convertor before any router module compiles its paths.
from paperalerts.faces.web import ids  # noqa: F401  (imported for its registration)
from paperalerts.faces.web.app import create_app

__all__ = ["create_app"]
