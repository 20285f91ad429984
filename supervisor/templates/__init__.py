"""Jinja2 templates of server-rendered pages (no script, no external assets)."""
