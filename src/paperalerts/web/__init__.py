"""The web app (DESIGN §1, §5): public sign-up and preferences, the admin, the JSON API.

``create_app(settings)`` builds it; ``paperalerts web`` serves it with uvicorn.
"""

from paperalerts.web.app import create_app

__all__ = ["create_app"]
