"""Piccolo app registration: the tables and where their migrations live."""

import os

from piccolo.conf.apps import AppConfig, table_finder

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="chat",
    migrations_folder_path=os.path.join(os.path.dirname(CURRENT_DIRECTORY), "piccolo_migrations"),
    table_classes=table_finder(modules=["app.tables"], exclude_imported=True),
    migration_dependencies=[],
    commands=[],
)
