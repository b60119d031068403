-- Installed plugins (upstream's `plugins` table plus the enabled flag, the
-- worker path resolved at install time, and per-plugin config and env).
-- manifest_json, categories, config and env hold JSON text; timestamps are
-- ISO-8601 UTC text. status is the persisted registry status
-- (installed | ready | error | disabled); the live worker state comes from
-- the plugin host and is merged in by the API.
CREATE TABLE plugins (
    id TEXT PRIMARY KEY,
    plugin_key TEXT NOT NULL,
    package_name TEXT NOT NULL,
    version TEXT NOT NULL,
    api_version INTEGER NOT NULL DEFAULT 1,
    categories TEXT NOT NULL DEFAULT '[]',
    manifest_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'installed',
    enabled INTEGER NOT NULL DEFAULT 1,
    install_order INTEGER,
    package_path TEXT NOT NULL,
    worker_path TEXT NOT NULL,
    worker_is_js INTEGER NOT NULL DEFAULT 0,
    config TEXT NOT NULL DEFAULT '{}',
    env TEXT NOT NULL DEFAULT '{}',
    last_error TEXT,
    installed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX plugins_plugin_key_idx ON plugins(plugin_key);
CREATE INDEX plugins_status_idx ON plugins(status);
