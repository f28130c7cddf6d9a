"""The dashboard page, its style sheet and script (a package only so that the wheel carries them as package data)."""
