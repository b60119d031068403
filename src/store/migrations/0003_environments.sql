-- Environments (where runs execute), their leases, and encrypted company
-- secrets (SSH keys and provider credentials referenced from environment
-- config). JSON-valued columns hold JSON text; timestamps are ISO-8601 UTC.
CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    driver TEXT NOT NULL DEFAULT 'local',
    status TEXT NOT NULL DEFAULT 'active',
    config TEXT NOT NULL DEFAULT '{}',
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX environments_company_status_idx ON environments(company_id, status);
CREATE INDEX environments_company_name_idx ON environments(company_id, name);
-- One Local environment per company.
CREATE UNIQUE INDEX environments_company_local_idx ON environments(company_id, driver)
    WHERE driver = 'local';

-- A lease row is written (status active, provider_lease_id NULL, metadata
-- phase "acquiring") BEFORE the provider is asked for a lease, so a daemon
-- that dies mid-acquire leaves a trace that start-up reconciliation finds.
CREATE TABLE environment_leases (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    execution_workspace_id TEXT,
    issue_id TEXT,
    heartbeat_run_id TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    lease_policy TEXT NOT NULL DEFAULT 'ephemeral',
    provider TEXT,
    provider_lease_id TEXT,
    acquired_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    expires_at TEXT,
    released_at TEXT,
    failure_reason TEXT,
    cleanup_status TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX environment_leases_env_status_idx
    ON environment_leases(company_id, environment_id, status);
CREATE INDEX environment_leases_company_ew_idx
    ON environment_leases(company_id, execution_workspace_id);
CREATE INDEX environment_leases_company_issue_idx ON environment_leases(company_id, issue_id);
CREATE INDEX environment_leases_run_idx ON environment_leases(heartbeat_run_id);
CREATE INDEX environment_leases_company_last_used_idx
    ON environment_leases(company_id, last_used_at);
CREATE INDEX environment_leases_provider_lease_idx ON environment_leases(provider_lease_id);
CREATE INDEX environment_leases_status_idx ON environment_leases(status);

-- Values are sealed with libsodium secretbox under the instance master key
-- (<data-dir>/secrets/master.key); nonce and ciphertext are base64.
CREATE TABLE company_secrets (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT 'local_encrypted',
    description TEXT,
    latest_version INTEGER NOT NULL DEFAULT 1,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX company_secrets_company_name_idx ON company_secrets(company_id, name);
