"""The edges: each side effect in one module named for it (environment,
HTTP, SMTP, mailbox, database, broker)."""
