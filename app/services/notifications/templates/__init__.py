"""Jinja2 templates of notifications (a package only so that the wheel carries them as package data)."""
