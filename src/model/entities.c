#include "model/entities.h"

const pc_field pc_company_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"description", "description", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"pauseReason", "pause_reason", PC_FIELD_COPY},
    {"pausedAt", "paused_at", PC_FIELD_COPY},
    {"issuePrefix", "issue_prefix", PC_FIELD_COPY},
    {"issueCounter", "issue_counter", PC_FIELD_COPY},
    {"budgetMonthlyCents", "budget_monthly_cents", PC_FIELD_COPY},
    {"spentMonthlyCents", "spent_monthly_cents", PC_FIELD_COPY},
    {"requireBoardApprovalForNewAgents", "require_board_approval_for_new_agents", PC_FIELD_BOOL},
    {"brandColor", "brand_color", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_company_from_row(json_t *row)
{
    return pc_row_map(pc_company_fields, row);
}

const pc_field pc_agent_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"role", "role", PC_FIELD_COPY},
    {"title", "title", PC_FIELD_COPY},
    {"icon", "icon", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"reportsTo", "reports_to", PC_FIELD_COPY},
    {"capabilities", "capabilities", PC_FIELD_COPY},
    {"adapterType", "adapter_type", PC_FIELD_COPY},
    {"adapterConfig", "adapter_config", PC_FIELD_JSON_TEXT},
    {"runtimeConfig", "runtime_config", PC_FIELD_JSON_TEXT},
    {"defaultEnvironmentId", "default_environment_id", PC_FIELD_COPY},
    {"budgetMonthlyCents", "budget_monthly_cents", PC_FIELD_COPY},
    {"spentMonthlyCents", "spent_monthly_cents", PC_FIELD_COPY},
    {"pauseReason", "pause_reason", PC_FIELD_COPY},
    {"pausedAt", "paused_at", PC_FIELD_COPY},
    {"errorReason", "error_reason", PC_FIELD_COPY},
    {"permissions", "permissions", PC_FIELD_JSON_TEXT},
    {"lastHeartbeatAt", "last_heartbeat_at", PC_FIELD_COPY},
    {"metadata", "metadata", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_agent_from_row(json_t *row)
{
    return pc_row_map(pc_agent_fields, row);
}

const pc_field pc_agent_key_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"lastUsedAt", "last_used_at", PC_FIELD_COPY},
    {"revokedAt", "revoked_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_agent_key_from_row(json_t *row)
{
    return pc_row_map(pc_agent_key_fields, row);
}

const pc_field pc_issue_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"projectId", "project_id", PC_FIELD_COPY},
    {"goalId", "goal_id", PC_FIELD_COPY},
    {"parentId", "parent_id", PC_FIELD_COPY},
    {"title", "title", PC_FIELD_COPY},
    {"description", "description", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"priority", "priority", PC_FIELD_COPY},
    {"assigneeAgentId", "assignee_agent_id", PC_FIELD_COPY},
    {"assigneeUserId", "assignee_user_id", PC_FIELD_COPY},
    {"checkoutRunId", "checkout_run_id", PC_FIELD_COPY},
    {"executionRunId", "execution_run_id", PC_FIELD_COPY},
    {"executionLockedAt", "execution_locked_at", PC_FIELD_COPY},
    {"createdByAgentId", "created_by_agent_id", PC_FIELD_COPY},
    {"createdByUserId", "created_by_user_id", PC_FIELD_COPY},
    {"issueNumber", "issue_number", PC_FIELD_COPY},
    {"identifier", "identifier", PC_FIELD_COPY},
    {"originKind", "origin_kind", PC_FIELD_COPY},
    {"requestDepth", "request_depth", PC_FIELD_COPY},
    {"billingCode", "billing_code", PC_FIELD_COPY},
    {"executionWorkspaceSettings", "execution_workspace_settings", PC_FIELD_JSON_TEXT},
    {"startedAt", "started_at", PC_FIELD_COPY},
    {"completedAt", "completed_at", PC_FIELD_COPY},
    {"cancelledAt", "cancelled_at", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_issue_from_row(json_t *row)
{
    return pc_row_map(pc_issue_fields, row);
}

const pc_field pc_issue_comment_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"issueId", "issue_id", PC_FIELD_COPY},
    {"authorAgentId", "author_agent_id", PC_FIELD_COPY},
    {"authorUserId", "author_user_id", PC_FIELD_COPY},
    {"runId", "run_id", PC_FIELD_COPY},
    {"body", "body", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_issue_comment_from_row(json_t *row)
{
    return pc_row_map(pc_issue_comment_fields, row);
}

const pc_field pc_activity_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"actorType", "actor_type", PC_FIELD_COPY},
    {"actorId", "actor_id", PC_FIELD_COPY},
    {"action", "action", PC_FIELD_COPY},
    {"entityType", "entity_type", PC_FIELD_COPY},
    {"entityId", "entity_id", PC_FIELD_COPY},
    {"agentId", "agent_id", PC_FIELD_COPY},
    {"runId", "run_id", PC_FIELD_COPY},
    {"details", "details", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_activity_from_row(json_t *row)
{
    return pc_row_map(pc_activity_fields, row);
}

const pc_field pc_run_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"agentId", "agent_id", PC_FIELD_COPY},
    {"invocationSource", "invocation_source", PC_FIELD_COPY},
    {"triggerDetail", "trigger_detail", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"startedAt", "started_at", PC_FIELD_COPY},
    {"finishedAt", "finished_at", PC_FIELD_COPY},
    {"error", "error", PC_FIELD_COPY},
    {"errorCode", "error_code", PC_FIELD_COPY},
    {"wakeupRequestId", "wakeup_request_id", PC_FIELD_COPY},
    {"exitCode", "exit_code", PC_FIELD_COPY},
    {"signal", "signal", PC_FIELD_COPY},
    {"usageJson", "usage_json", PC_FIELD_JSON_TEXT},
    {"resultJson", "result_json", PC_FIELD_JSON_TEXT},
    {"sessionIdBefore", "session_id_before", PC_FIELD_COPY},
    {"sessionIdAfter", "session_id_after", PC_FIELD_COPY},
    {"logStore", "log_store", PC_FIELD_COPY},
    {"logRef", "log_ref", PC_FIELD_COPY},
    {"logBytes", "log_bytes", PC_FIELD_COPY},
    {"logSha256", "log_sha256", PC_FIELD_COPY},
    {"logCompressed", "log_compressed", PC_FIELD_BOOL},
    {"stdoutExcerpt", "stdout_excerpt", PC_FIELD_COPY},
    {"stderrExcerpt", "stderr_excerpt", PC_FIELD_COPY},
    {"errorExcerpt", "error_excerpt", PC_FIELD_COPY},
    {"processPid", "process_pid", PC_FIELD_COPY},
    {"processGroupId", "process_group_id", PC_FIELD_COPY},
    {"lastOutputAt", "last_output_at", PC_FIELD_COPY},
    {"lastOutputSeq", "last_output_seq", PC_FIELD_COPY},
    {"lastOutputStream", "last_output_stream", PC_FIELD_COPY},
    {"retryOfRunId", "retry_of_run_id", PC_FIELD_COPY},
    {"processLossRetryCount", "process_loss_retry_count", PC_FIELD_COPY},
    {"environmentId", "environment_id", PC_FIELD_COPY},
    {"leaseId", "lease_id", PC_FIELD_COPY},
    {"contextSnapshot", "context_snapshot", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_run_from_row(json_t *row)
{
    return pc_row_map(pc_run_fields, row);
}

const pc_field pc_run_event_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"runId", "run_id", PC_FIELD_COPY},
    {"agentId", "agent_id", PC_FIELD_COPY},
    {"seq", "seq", PC_FIELD_COPY},
    {"eventType", "event_type", PC_FIELD_COPY},
    {"stream", "stream", PC_FIELD_COPY},
    {"level", "level", PC_FIELD_COPY},
    {"color", "color", PC_FIELD_COPY},
    {"message", "message", PC_FIELD_COPY},
    {"payload", "payload", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_run_event_from_row(json_t *row)
{
    return pc_row_map(pc_run_event_fields, row);
}

const pc_field pc_env_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"description", "description", PC_FIELD_COPY},
    {"driver", "driver", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"config", "config", PC_FIELD_JSON_OBJECT},
    {"metadata", "metadata", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_env_from_row(json_t *row)
{
    return pc_row_map(pc_env_fields, row);
}

const pc_field pc_lease_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"environmentId", "environment_id", PC_FIELD_COPY},
    {"executionWorkspaceId", "execution_workspace_id", PC_FIELD_COPY},
    {"issueId", "issue_id", PC_FIELD_COPY},
    {"heartbeatRunId", "heartbeat_run_id", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"leasePolicy", "lease_policy", PC_FIELD_COPY},
    {"provider", "provider", PC_FIELD_COPY},
    {"providerLeaseId", "provider_lease_id", PC_FIELD_COPY},
    {"acquiredAt", "acquired_at", PC_FIELD_COPY},
    {"lastUsedAt", "last_used_at", PC_FIELD_COPY},
    {"expiresAt", "expires_at", PC_FIELD_COPY},
    {"releasedAt", "released_at", PC_FIELD_COPY},
    {"failureReason", "failure_reason", PC_FIELD_COPY},
    {"cleanupStatus", "cleanup_status", PC_FIELD_COPY},
    {"cleanupAttempts", "cleanup_attempts", PC_FIELD_COPY},
    {"nextCleanupAt", "next_cleanup_at", PC_FIELD_COPY},
    {"metadata", "metadata", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_lease_from_row(json_t *row)
{
    return pc_row_map(pc_lease_fields, row);
}

const pc_field pc_goal_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"title", "title", PC_FIELD_COPY},
    {"description", "description", PC_FIELD_COPY},
    {"level", "level", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"parentId", "parent_id", PC_FIELD_COPY},
    {"ownerAgentId", "owner_agent_id", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_goal_from_row(json_t *row)
{
    return pc_row_map(pc_goal_fields, row);
}

const pc_field pc_project_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"goalId", "goal_id", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"description", "description", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"leadAgentId", "lead_agent_id", PC_FIELD_COPY},
    {"targetDate", "target_date", PC_FIELD_COPY},
    {"color", "color", PC_FIELD_COPY},
    {"env", "env", PC_FIELD_JSON_TEXT},
    {"executionWorkspacePolicy", "execution_workspace_policy", PC_FIELD_JSON_TEXT},
    {"archivedAt", "archived_at", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_project_from_row(json_t *row)
{
    json_t *p = pc_row_map(pc_project_fields, row);
    json_t *g = json_object_get(p, "goalId");
    json_object_set_new(p, "goalIds", json_is_string(g) ? json_pack("[O]", g) : json_array());
    return p;
}

const pc_field pc_project_workspace_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"projectId", "project_id", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"sourceType", "source_type", PC_FIELD_COPY},
    {"cwd", "cwd", PC_FIELD_COPY},
    {"repoUrl", "repo_url", PC_FIELD_COPY},
    {"repoRef", "repo_ref", PC_FIELD_COPY},
    {"defaultRef", "default_ref", PC_FIELD_COPY},
    {"metadata", "metadata", PC_FIELD_JSON_TEXT},
    {"isPrimary", "is_primary", PC_FIELD_BOOL},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_project_workspace_from_row(json_t *row)
{
    return pc_row_map(pc_project_workspace_fields, row);
}

const pc_field pc_exec_workspace_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"projectId", "project_id", PC_FIELD_COPY},
    {"projectWorkspaceId", "project_workspace_id", PC_FIELD_COPY},
    {"sourceIssueId", "source_issue_id", PC_FIELD_COPY},
    {"mode", "mode", PC_FIELD_COPY},
    {"strategyType", "strategy_type", PC_FIELD_COPY},
    {"name", "name", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"cwd", "cwd", PC_FIELD_COPY},
    {"repoUrl", "repo_url", PC_FIELD_COPY},
    {"baseRef", "base_ref", PC_FIELD_COPY},
    {"branchName", "branch_name", PC_FIELD_COPY},
    {"providerType", "provider_type", PC_FIELD_COPY},
    {"providerRef", "provider_ref", PC_FIELD_COPY},
    {"config", "config", PC_FIELD_JSON_TEXT},
    {"lastUsedAt", "last_used_at", PC_FIELD_COPY},
    {"openedAt", "opened_at", PC_FIELD_COPY},
    {"closedAt", "closed_at", PC_FIELD_COPY},
    {"cleanupEligibleAt", "cleanup_eligible_at", PC_FIELD_COPY},
    {"cleanupReason", "cleanup_reason", PC_FIELD_COPY},
    {"metadata", "metadata", PC_FIELD_JSON_TEXT},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_exec_workspace_from_row(json_t *row)
{
    return pc_row_map(pc_exec_workspace_fields, row);
}

const pc_field pc_workspace_op_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"executionWorkspaceId", "execution_workspace_id", PC_FIELD_COPY},
    {"heartbeatRunId", "heartbeat_run_id", PC_FIELD_COPY},
    {"phase", "phase", PC_FIELD_COPY},
    {"command", "command", PC_FIELD_COPY},
    {"cwd", "cwd", PC_FIELD_COPY},
    {"status", "status", PC_FIELD_COPY},
    {"exitCode", "exit_code", PC_FIELD_COPY},
    {"stdoutExcerpt", "stdout_excerpt", PC_FIELD_COPY},
    {"stderrExcerpt", "stderr_excerpt", PC_FIELD_COPY},
    {"metadata", "metadata", PC_FIELD_JSON_TEXT},
    {"startedAt", "started_at", PC_FIELD_COPY},
    {"finishedAt", "finished_at", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {"updatedAt", "updated_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

json_t *pc_workspace_op_from_row(json_t *row)
{
    return pc_row_map(pc_workspace_op_fields, row);
}
