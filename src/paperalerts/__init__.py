"""paperalerts: research-paper alerting."""

__version__ = "0.1.0"
