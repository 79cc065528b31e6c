"""Piccolo's configuration: the engine (owner DSN from ``DATABASE_URL``) and the app registry.

The API server starts this engine's pool on the runtime role instead (``APP_DATABASE_URL``),
see ``app/db/transaction.py``.
"""

import os

from piccolo.conf.apps import AppRegistry

from app.db.engine import TenantEngine

DB = TenantEngine(config={"dsn": os.environ.get("DATABASE_URL", "")})

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
