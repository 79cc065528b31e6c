"""Row-level security: applies ``rls_policies/*.sql`` (ENABLE + FORCE, policies, grants).

It runs after the tables exist (Piccolo runs a migration's raw steps before its table
operations). ``python -m app db upgrade`` re-applies the same files after every
migration run, so editing a policy file and upgrading converges the live database.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.scripts import apply_policies

ID = "2026-11-25T13:42:26:000000"
VERSION = "1.38.0"
DESCRIPTION = "row-level security policies and grants from rls_policies/"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="chat", description=DESCRIPTION)
    manager.add_raw(apply_policies)
    return manager
