-- Cost events: one row per reported spend (a run's usage or an external
-- report). Agents' and companies' spent_monthly_cents are derived from these
-- for the current UTC calendar month.
CREATE TABLE cost_events (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    issue_id TEXT,
    project_id TEXT,
    goal_id TEXT,
    heartbeat_run_id TEXT,
    billing_code TEXT,
    provider TEXT NOT NULL,
    biller TEXT NOT NULL,
    billing_type TEXT NOT NULL DEFAULT 'unknown',
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_cents INTEGER NOT NULL DEFAULT 0,
    occurred_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX cost_events_company_occurred_idx ON cost_events(company_id, occurred_at);
CREATE INDEX cost_events_agent_occurred_idx ON cost_events(company_id, agent_id, occurred_at);
