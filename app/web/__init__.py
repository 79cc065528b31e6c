"""The session sidebar web page served at ``/`` and its development-only sign-in helpers."""
