"""`paperalerts demo`: the whole mission offline, on invented papers served from this package.

`catalog` holds the invented world, `pages` makes (and ships) its pages, `servers` are the local
HTTP and SMTP servers, `run` plays scrape -> diff -> match -> digest -> SMTP through the real
pipeline steps.
"""
