"""The local demo: `./dev demo` (see __main__.py)."""
