-- Goals, projects, their workspaces (where the code lives), execution
-- workspaces (where a run works: the project's own directory or a git
-- worktree per issue) and the operations that prepared them for a run.
-- Enums follow upstream: goal level company|team|agent|task, status
-- planned|active|achieved|cancelled; project status backlog|planned|
-- in_progress|completed|cancelled; execution workspace mode
-- shared_workspace|isolated_workspace, strategy_type project_primary|
-- git_worktree, status active|idle|in_review|archived|cleanup_failed.
CREATE TABLE goals (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT,
    level TEXT NOT NULL DEFAULT 'task',
    status TEXT NOT NULL DEFAULT 'planned',
    parent_id TEXT REFERENCES goals(id) ON DELETE SET NULL,
    owner_agent_id TEXT REFERENCES agents(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX goals_company_idx ON goals(company_id);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    goal_id TEXT REFERENCES goals(id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL DEFAULT 'backlog',
    lead_agent_id TEXT REFERENCES agents(id) ON DELETE SET NULL,
    target_date TEXT,
    color TEXT,
    env TEXT,
    execution_workspace_policy TEXT,
    archived_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX projects_company_idx ON projects(company_id);

CREATE TABLE project_workspaces (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    source_type TEXT NOT NULL DEFAULT 'local_path',
    cwd TEXT,
    repo_url TEXT,
    repo_ref TEXT,
    default_ref TEXT,
    metadata TEXT,
    is_primary INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX project_workspaces_company_project_idx ON project_workspaces(company_id, project_id);

CREATE TABLE execution_workspaces (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    project_workspace_id TEXT REFERENCES project_workspaces(id) ON DELETE SET NULL,
    source_issue_id TEXT REFERENCES issues(id) ON DELETE SET NULL,
    mode TEXT NOT NULL,
    strategy_type TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    cwd TEXT,
    repo_url TEXT,
    base_ref TEXT,
    branch_name TEXT,
    provider_type TEXT NOT NULL DEFAULT 'local_fs',
    provider_ref TEXT,
    config TEXT,
    last_used_at TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    cleanup_eligible_at TEXT,
    cleanup_reason TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX execution_workspaces_company_project_status_idx
    ON execution_workspaces(company_id, project_id, status);
CREATE INDEX execution_workspaces_company_source_issue_idx
    ON execution_workspaces(company_id, source_issue_id);

CREATE TABLE workspace_operations (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    execution_workspace_id TEXT REFERENCES execution_workspaces(id) ON DELETE SET NULL,
    heartbeat_run_id TEXT REFERENCES heartbeat_runs(id) ON DELETE SET NULL,
    phase TEXT NOT NULL,
    command TEXT,
    cwd TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    exit_code INTEGER,
    stdout_excerpt TEXT,
    stderr_excerpt TEXT,
    log TEXT,
    metadata TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX workspace_operations_run_idx ON workspace_operations(heartbeat_run_id, started_at);
