-- Companies, agents, the activity log and API keys.
-- JSON-valued columns hold JSON text; timestamps are ISO-8601 UTC text.
CREATE TABLE companies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    pause_reason TEXT,
    paused_at TEXT,
    issue_prefix TEXT NOT NULL,
    issue_counter INTEGER NOT NULL DEFAULT 0,
    budget_monthly_cents INTEGER NOT NULL DEFAULT 0,
    spent_monthly_cents INTEGER NOT NULL DEFAULT 0,
    require_board_approval_for_new_agents INTEGER NOT NULL DEFAULT 0,
    brand_color TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX companies_issue_prefix_idx ON companies(issue_prefix);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'general',
    title TEXT,
    icon TEXT,
    status TEXT NOT NULL DEFAULT 'idle',
    reports_to TEXT REFERENCES agents(id) ON DELETE SET NULL,
    capabilities TEXT,
    adapter_type TEXT NOT NULL DEFAULT 'process',
    adapter_config TEXT NOT NULL DEFAULT '{}',
    runtime_config TEXT NOT NULL DEFAULT '{}',
    default_environment_id TEXT,
    budget_monthly_cents INTEGER NOT NULL DEFAULT 0,
    spent_monthly_cents INTEGER NOT NULL DEFAULT 0,
    pause_reason TEXT,
    paused_at TEXT,
    error_reason TEXT,
    permissions TEXT NOT NULL DEFAULT '{}',
    last_heartbeat_at TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX agents_company_idx ON agents(company_id);

CREATE TABLE activity_log (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    agent_id TEXT,
    run_id TEXT,
    details TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX activity_company_idx ON activity_log(company_id, created_at);

CREATE TABLE board_api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE agent_api_keys (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    last_used_at TEXT,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX agent_api_keys_agent_idx ON agent_api_keys(agent_id);
