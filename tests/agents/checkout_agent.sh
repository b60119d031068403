#!/bin/sh
# A minimal heartbeat agent for the end-to-end tests. It uses only what the
# runtime gives every run — PAPERCLIP_API_URL, PAPERCLIP_API_KEY (the run
# JWT), PAPERCLIP_RUN_ID, PAPERCLIP_AGENT_ID, PAPERCLIP_TASK_ID — to check out
# its issue, comment on it and mark it done, as a real agent would.
#
# It also prints its token (the run log must show it redacted), and writes
# its environment to $PAPERCLIP_WORKSPACE_CWD/env-<run>.txt so a test can
# check exactly what reached it.
set -eu

api() {
    method=$1 path=$2
    if [ $# -ge 3 ]; then
        curl -sS -f -X "$method" -H "Authorization: Bearer $PAPERCLIP_API_KEY" \
            -H "X-Paperclip-Run-Id: $PAPERCLIP_RUN_ID" -H 'Content-Type: application/json' \
            --data "$3" "$PAPERCLIP_API_URL$path"
    else
        curl -sS -f -X "$method" -H "Authorization: Bearer $PAPERCLIP_API_KEY" \
            -H "X-Paperclip-Run-Id: $PAPERCLIP_RUN_ID" "$PAPERCLIP_API_URL$path"
    fi
}

env > "$PAPERCLIP_WORKSPACE_CWD/env-$PAPERCLIP_RUN_ID.txt"
echo "agent $PAPERCLIP_AGENT_ID run $PAPERCLIP_RUN_ID task ${PAPERCLIP_TASK_ID:-none} reason ${PAPERCLIP_WAKE_REASON:-none}"
echo "token $PAPERCLIP_API_KEY"
echo "secret ${AGENT_SECRET_TOKEN:-none}"
echo "to stderr" >&2
# A variable only the daemon has must never get here.
echo "canary ${PC_TEST_CANARY:-absent}"

api GET /api/agents/me > /dev/null
[ -n "${PAPERCLIP_TASK_ID:-}" ] || exit 0
api POST "/api/issues/$PAPERCLIP_TASK_ID/checkout" \
    "{\"agentId\":\"$PAPERCLIP_AGENT_ID\",\"expectedStatuses\":[\"todo\",\"backlog\"]}" > /dev/null
api POST "/api/issues/$PAPERCLIP_TASK_ID/comments" "{\"body\":\"done by run $PAPERCLIP_RUN_ID\"}" > /dev/null
api PATCH "/api/issues/$PAPERCLIP_TASK_ID" '{"status":"done"}' > /dev/null
echo "finished"
