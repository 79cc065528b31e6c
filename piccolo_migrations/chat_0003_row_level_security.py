"""Row-level security: nothing to do here any more (kept so that the history stays whole).

This migration used to apply the live policy files, which broke fresh installs
as soon as a policy used a column of a later migration. Policies, their functions,
triggers and grants are now a repeatable step that ``python -m app db upgrade`` applies
after all migrations; migrations are frozen history that never read those files.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-25T13:42:26:000000"
VERSION = "1.38.0"
DESCRIPTION = "row-level security (now applied by db upgrade after the migrations)"


async def forwards() -> MigrationManager:
    return MigrationManager(migration_id=ID, app_name="chat", description=DESCRIPTION)
