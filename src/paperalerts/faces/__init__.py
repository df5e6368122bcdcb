"""The faces: what people and schedulers talk to (CLI, web, Celery tasks, supervisor, demo)."""
