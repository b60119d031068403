-- Instance-wide settings: one row (singleton_key 'default') holding the
-- general and experimental settings as JSON objects. Only the keys a board
-- user has set are stored; defaults are filled in when read, so a new flag
-- needs no migration.
CREATE TABLE instance_settings (
    id TEXT PRIMARY KEY,
    singleton_key TEXT NOT NULL UNIQUE,
    general TEXT NOT NULL DEFAULT '{}',
    experimental TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
