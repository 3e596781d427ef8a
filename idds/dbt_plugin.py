"""dbt-duckdb plugin: every dbt connection gets the idds macros, the pseudonym key and
the warehouse's memory bound.

The key is set as a DuckDB session variable, so it never appears in compiled SQL,
``target/`` artefacts or dbt logs.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from idds.pseudonym import load_key
from idds.settings import Settings
from idds.warehouse import bound_memory, install_functions


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict) -> None:
        self._key = load_key(Settings())

    def configure_connection(self, conn) -> None:
        bound_memory(conn)
        install_functions(conn, self._key)

    def configure_cursor(self, cursor) -> None:
        # session variables do not carry over from the connection to its cursors
        cursor.execute("set variable idds_pseudonym_key = ?", [self._key])
