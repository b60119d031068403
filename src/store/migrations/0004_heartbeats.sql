-- Issues, comments, heartbeat runs, their events and wakeup requests.
-- Enums follow upstream: issue status backlog|todo|in_progress|in_review|done|
-- blocked|cancelled; run status queued|scheduled_retry|running|succeeded|
-- interrupted|failed|cancelled|timed_out; wakeup status queued|
-- deferred_issue_execution|claimed|coalesced|skipped|completed|failed.
CREATE TABLE issues (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    project_id TEXT,
    goal_id TEXT,
    parent_id TEXT REFERENCES issues(id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL DEFAULT 'backlog',
    priority TEXT NOT NULL DEFAULT 'medium',
    assignee_agent_id TEXT REFERENCES agents(id) ON DELETE SET NULL,
    assignee_user_id TEXT,
    checkout_run_id TEXT,
    execution_run_id TEXT,
    execution_locked_at TEXT,
    created_by_agent_id TEXT,
    created_by_user_id TEXT,
    issue_number INTEGER NOT NULL,
    identifier TEXT NOT NULL,
    origin_kind TEXT NOT NULL DEFAULT 'manual',
    request_depth INTEGER NOT NULL DEFAULT 0,
    billing_code TEXT,
    execution_workspace_settings TEXT,
    started_at TEXT,
    completed_at TEXT,
    cancelled_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX issues_company_status_idx ON issues(company_id, status);
CREATE INDEX issues_assignee_idx ON issues(company_id, assignee_agent_id, status);
CREATE UNIQUE INDEX issues_identifier_idx ON issues(identifier);

CREATE TABLE issue_comments (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    issue_id TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    author_agent_id TEXT,
    author_user_id TEXT,
    run_id TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX issue_comments_issue_idx ON issue_comments(issue_id, created_at);

CREATE TABLE agent_wakeup_requests (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    trigger_detail TEXT,
    reason TEXT,
    payload TEXT,
    status TEXT NOT NULL DEFAULT 'queued',
    coalesced_count INTEGER NOT NULL DEFAULT 0,
    requested_by_actor_type TEXT,
    requested_by_actor_id TEXT,
    idempotency_key TEXT,
    run_id TEXT,
    requested_at TEXT NOT NULL,
    claimed_at TEXT,
    finished_at TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX wakeup_agent_status_idx ON agent_wakeup_requests(agent_id, status);
CREATE UNIQUE INDEX wakeup_idempotency_idx ON agent_wakeup_requests(agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE heartbeat_runs (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    invocation_source TEXT NOT NULL DEFAULT 'on_demand',
    trigger_detail TEXT,
    status TEXT NOT NULL DEFAULT 'queued',
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    error_code TEXT,
    wakeup_request_id TEXT,
    exit_code INTEGER,
    signal TEXT,
    usage_json TEXT,
    result_json TEXT,
    session_id_before TEXT,
    session_id_after TEXT,
    log_store TEXT,
    log_ref TEXT,
    log_bytes INTEGER,
    log_sha256 TEXT,
    log_compressed INTEGER NOT NULL DEFAULT 0,
    stdout_excerpt TEXT,
    stderr_excerpt TEXT,
    error_excerpt TEXT,
    process_pid INTEGER,
    process_group_id INTEGER,
    last_output_at TEXT,
    last_output_seq INTEGER NOT NULL DEFAULT 0,
    last_output_stream TEXT,
    retry_of_run_id TEXT,
    process_loss_retry_count INTEGER NOT NULL DEFAULT 0,
    environment_id TEXT,
    lease_id TEXT,
    task_key TEXT,
    context_snapshot TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX heartbeat_runs_company_idx ON heartbeat_runs(company_id, created_at);
CREATE INDEX heartbeat_runs_agent_status_idx ON heartbeat_runs(agent_id, status);
CREATE INDEX heartbeat_runs_status_idx ON heartbeat_runs(status);

CREATE TABLE heartbeat_run_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES heartbeat_runs(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    stream TEXT,
    level TEXT,
    color TEXT,
    message TEXT,
    payload TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX heartbeat_run_events_run_idx ON heartbeat_run_events(run_id, seq);
