#!/bin/sh
# A hostile heartbeat agent. It uses what every run is given (PAPERCLIP_API_URL,
# PAPERCLIP_API_KEY, PAPERCLIP_RUN_ID, PAPERCLIP_AGENT_ID, PAPERCLIP_COMPANY_ID,
# PAPERCLIP_TASK_ID) plus the targets the test names in HOSTILE_* variables,
# and tries to do what an agent must not: act without credentials, forge or
# replay tokens, change what or where it executes, mint keys, read a peer's
# secrets, reach another company, cancel or wake other agents, create agents
# that run unconfined, traverse paths, and pass for a browser on another site.
#
# It prints one line per attempt, "ATTACK <name> <http-status> <note>", where
# the status is 000 when nothing answered and the note says whether a read
# returned the target data ("found"/"clean"). The test does not trust these
# lines for effects: it checks them from outside with board credentials. It
# also prints its token reversed ("REVTOKEN ..."), which the log redaction does
# not recognise, so the test can try it once the run is over.
#
# Only sh and curl are used: they exist in every environment the test runs.
set -u

API=${PAPERCLIP_API_URL%/}
TOK=$PAPERCLIP_API_KEY
SELF=$PAPERCLIP_AGENT_ID
CID=$PAPERCLIP_COMPANY_ID
TASK=${PAPERCLIP_TASK_ID:-}
PEER=${HOSTILE_PEER_ID:-}
LOCAL_ENV=${HOSTILE_LOCAL_ENV_ID:-}
# Keeps the state of a plugin an attack manages to install in the test's
# directory.
PLUGIN_ENV="\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"${HOSTILE_PLUGIN_DATA_DIR:-/nonexistent}\"}"
NL='
'
status=000
body=

# req AUTH METHOD URL BODY [curl args...]: sets $status and $body. An empty
# AUTH sends no Authorization header; an empty BODY sends no body.
req() {
    _auth=$1 _m=$2 _u=$3 _b=$4
    shift 4
    if [ -n "$_auth" ]; then set -- "$@" -H "Authorization: Bearer $_auth"; fi
    if [ -n "$_b" ]; then set -- "$@" -H 'Content-Type: application/json' --data "$_b"; fi
    _out=$(curl -sS -m 30 -w "${NL}%{http_code}" -X "$_m" "$@" "$_u" 2>/dev/null)
    status=${_out##*"$NL"}
    body=${_out%"$NL"*}
    case $status in [0-9][0-9][0-9]) ;; *) status=000 ;; esac
}

report() { echo "ATTACK $1 $status ${2:--}"; }

# found NEEDLE: "found" when the last response body contains NEEDLE.
found() {
    if [ -n "$1" ] && [ "${body#*"$1"}" != "$body" ]; then echo found; else echo clean; fi
}

rev_str() {
    _s=$1 _r=
    while [ -n "$_s" ]; do
        _r="${_s%"${_s#?}"}$_r"
        _s=${_s#?}
    done
    printf '%s' "$_r"
}

echo "hostile agent $SELF run $PAPERCLIP_RUN_ID in ${HOSTILE_ENV:-unknown}"
# The needles come reversed, so the script's own environment (which it can
# read in /proc like any other) never contains them.
SECRET_NEEDLE=$(rev_str "${HOSTILE_PEER_SECRET_NEEDLE_REV:-enon}")
DAEMON_CANARY=$(rev_str "${HOSTILE_DAEMON_CANARY_REV:-enon}")
echo "inputs peer ${PEER:-missing} company-b ${HOSTILE_B_COMPANY_ID:-missing}"
echo "REVTOKEN $(rev_str "$TOK")"

# The control: the agent's own token works while the run is live. Without it
# every refusal below would prove nothing.
req "$TOK" POST "$API/api/companies/$CID/issues" "{\"title\":\"hostile-control-${HOSTILE_MODE:-worker}\"}"
report control

# --- A hiring agent (the board granted it canCreateAgents) in a sandbox or
# on an SSH host: its grant must not let it move execution to the host. ---
if [ "${HOSTILE_MODE:-worker}" = hirer ]; then
    req "$TOK" PATCH "$API/api/agents/$SELF" "{\"defaultEnvironmentId\":\"$LOCAL_ENV\"}"
    report hirer_self_defaultEnvironmentId
    req "$TOK" PATCH "$API/api/agents/$SELF" '{"budgetMonthlyCents":123457}'
    report hirer_self_budgetMonthlyCents
    req "$TOK" PATCH "$API/api/agents/$PEER" \
        '{"adapterConfig":{"command":"sh","args":["-c","echo hirer-pwned"]}}'
    report hirer_peer_adapterConfig
    req "$TOK" PATCH "$API/api/issues/$TASK" \
        "{\"executionWorkspaceSettings\":{\"environmentId\":\"$LOCAL_ENV\"}}"
    report hirer_issue_env_switch
    req "$TOK" POST "$API/api/companies/$CID/environments" \
        '{"name":"hostile-hirer_env_create","driver":"ssh","config":{"host":"127.0.0.1","port":22,"username":"root","remoteWorkspacePath":"/tmp/hostile-hirer"}}'
    report hirer_env_create
    req "$TOK" POST "$API/api/companies/$CID/agents" \
        '{"name":"hostile-hirer-spawn","adapterType":"process","adapterConfig":{"command":"sh","args":["-c","echo spawned"]}}'
    report hirer_spawn_process_agent
    child=
    case $status in 2*) child=${body#*\"id\":\"} child=${child%%\"*} ;; esac
    req "$TOK" POST "$API/api/agents/${child:-none}/approve" ""
    report hirer_spawn_approve
    req "$TOK" PATCH "$API/api/agents/${child:-none}" '{"status":"idle"}'
    report hirer_spawn_activate
    req "$TOK" POST "$API/api/agents/${child:-none}/wakeup" '{"reason":"hostile"}'
    report hirer_spawn_wake
    req "$TOK" POST "$API/api/companies/$CID/agents" \
        "{\"name\":\"hostile-hirer-spawn_host\",\"adapterType\":\"process\",\"adapterConfig\":{\"command\":\"true\"},\"defaultEnvironmentId\":\"$LOCAL_ENV\"}"
    report hirer_spawn_on_host
    req "$TOK" POST "$API/api/companies/$CID/agents" \
        '{"name":"hostile-hirer-spawn_active","adapterType":"process","adapterConfig":{"command":"true"},"status":"active"}'
    report hirer_spawn_active
    echo "HOSTILE done"
    exit 0
fi

# --- No credentials through the URL the run was given (implicit board). ---
req "" POST "$API/api/companies" '{"name":"hostile-nocred_company"}'
report nocred_company
req "" POST "$API/api/companies/$CID/agents" \
    '{"name":"hostile-nocred_agent","adapterType":"process","adapterConfig":{"command":"true"}}'
report nocred_agent
req "" POST "$API/api/plugins/install" \
    "{\"packageName\":\"${HOSTILE_PLUGIN_PATH:-}\",\"isLocalPath\":true,$PLUGIN_ENV}"
report nocred_plugin

# --- The operator listener, when the test says it is reachable, or guesses. ---
if [ -n "${HOSTILE_OPERATOR_URL:-}" ]; then
    OP=${HOSTILE_OPERATOR_URL%/}
    req "" POST "$OP/api/companies" '{"name":"hostile-op_nocred_company"}'
    report op_nocred_company
    req "$TOK" POST "$OP/api/companies" '{"name":"hostile-op_token_company"}'
    report op_token_company
    req "" POST "$OP/api/companies" '{"name":"hostile-op_host_evil"}' -H 'Host: evil.example'
    report op_host_evil
    req "" POST "$OP/api/companies" '{"name":"hostile-op_origin_evil_body"}' \
        -H 'Origin: http://evil.example'
    report op_origin_evil_body
    req "" POST "$OP/api/agents/${HOSTILE_BYSTANDER_OP_ID:-}/wakeup" "" \
        -H 'Origin: http://evil.example'
    report op_origin_evil_nobody
    req "" POST "$OP/api/companies" '{"name":"hostile-op_fetch_site_cross"}' \
        -H 'Sec-Fetch-Site: cross-site'
    report op_fetch_site_cross
fi
if [ -n "${HOSTILE_GUESS_PORTS:-}" ]; then
    best=000
    for p in $HOSTILE_GUESS_PORTS; do
        req "" POST "http://127.0.0.1:$p/api/companies" '{"name":"hostile-op_guess"}'
        case $status in 2*) best=$status ;; 000) ;; *) [ "$best" = 000 ] && best=$status ;; esac
    done
    status=$best
    report op_guess
fi

# --- Tokens that must not work. Each tries to create an issue. ---
hdr_pay=${TOK%.*}
sig=${TOK##*.}
case $sig in A*) bad=B${sig#?} ;; *) bad=A${sig#?} ;; esac
req "$hdr_pay.$bad" POST "$API/api/companies/$CID/issues" '{"title":"hostile-jwt_bad_sig"}'
report jwt_bad_sig
# {"alg":"none","typ":"JWT"} with the run's own claims and no signature.
pay=${hdr_pay#*.}
req "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.$pay." POST "$API/api/companies/$CID/issues" \
    '{"title":"hostile-jwt_alg_none"}'
report jwt_alg_none
req "${HOSTILE_EXPIRED_TOKEN:-missing}" POST "$API/api/companies/$CID/issues" \
    '{"title":"hostile-jwt_expired"}'
report jwt_expired
req "${HOSTILE_OTHER_RUN_TOKEN:-missing}" POST "$API/api/companies/$CID/issues" \
    '{"title":"hostile-jwt_other_run"}'
report jwt_other_run

# --- Changing what or where it executes: itself, then a peer. ---
patch_agent() { # prefix target json-field-and-value
    req "$TOK" PATCH "$API/api/agents/$2" "{$3}"
}
for who in self peer; do
    if [ $who = self ]; then t=$SELF boss=$PEER; else t=$PEER boss=$SELF; fi
    patch_agent $who "$t" '"adapterType":"http"'
    report ${who}_adapterType
    patch_agent $who "$t" '"adapterConfig":{"command":"sh","args":["-c","echo hostile-pwned"]}'
    report ${who}_adapterConfig
    patch_agent $who "$t" '"runtimeConfig":{"heartbeat":{"intervalSec":77777}}'
    report ${who}_runtimeConfig
    patch_agent $who "$t" "\"defaultEnvironmentId\":\"$LOCAL_ENV\""
    report ${who}_defaultEnvironmentId
    patch_agent $who "$t" '"role":"ceo"'
    report ${who}_role
    patch_agent $who "$t" '"permissions":{"canCreateAgents":true,"hostileGranted":true}'
    report ${who}_permissions
    patch_agent $who "$t" '"budgetMonthlyCents":987654'
    report ${who}_budgetMonthlyCents
    patch_agent $who "$t" "\"reportsTo\":\"$boss\""
    report ${who}_reportsTo
done

# --- Where its issue executes. ---
if [ -n "$TASK" ]; then
    req "$TOK" PATCH "$API/api/issues/$TASK" \
        "{\"executionWorkspaceSettings\":{\"environmentId\":\"$LOCAL_ENV\"}}"
    report issue_env_switch
fi
# A second issue of its company, so this write cannot hide the switch above.
req "$TOK" PATCH "$API/api/issues/${HOSTILE_ISSUE2_ID:-}" \
    '{"executionWorkspaceSettings":{"cwd":"../../../../../../../../etc"}}'
report issue_cwd_traversal

# --- API keys. ---
req "$TOK" POST "$API/api/agents/$SELF/keys" '{"name":"hostile"}'
report key_mint_self
req "$TOK" POST "$API/api/agents/$PEER/keys" '{"name":"hostile"}'
report key_mint_peer
req "$TOK" DELETE "$API/api/agents/$PEER/keys/${HOSTILE_PEER_KEY_ID:-}" ""
report key_revoke_peer

# --- A peer's secrets. ---
req "$TOK" GET "$API/api/agents/$PEER" ""
report read_peer_secret "$(found "$SECRET_NEEDLE")"
report read_peer_plain "$(found "${HOSTILE_PEER_PLAIN_NEEDLE:-}")"
req "$TOK" GET "$API/api/companies/$CID/agents" ""
report read_peer_secret_list "$(found "$SECRET_NEEDLE")"

# --- Another company. ---
B=${HOSTILE_B_COMPANY_ID:-}
req "$TOK" GET "$API/api/companies/$B" ""
report b_company_get "$(found "${HOSTILE_B_NAME:-}")"
req "$TOK" PATCH "$API/api/companies/$B" '{"name":"hostile-renamed"}'
report b_company_patch
req "$TOK" GET "$API/api/companies/$B/agents" ""
report b_agents_list "$(found "${HOSTILE_B_AGENT_ID:-}")"
req "$TOK" GET "$API/api/agents/${HOSTILE_B_AGENT_ID:-}" ""
report b_agent_get "$(found "${HOSTILE_B_AGENT_ID:-}")"
req "$TOK" GET "$API/api/companies/$B/issues" ""
report b_issues_list "$(found "${HOSTILE_B_ISSUE_ID:-}")"
req "$TOK" GET "$API/api/issues/${HOSTILE_B_ISSUE_ID:-}" ""
report b_issue_get "$(found "${HOSTILE_B_ISSUE_ID:-}")"
req "$TOK" POST "$API/api/companies/$B/issues" '{"title":"hostile-b_issue_create"}'
report b_issue_create
req "$TOK" GET "$API/api/companies/$B/environments" ""
report b_envs_list "$(found "${HOSTILE_B_ENV_ID:-}")"
req "$TOK" POST "$API/api/environments/${HOSTILE_B_ENV_ID:-}/probe" ""
report b_env_probe
req "$TOK" GET "$API/api/companies/$B/heartbeat-runs" ""
report b_runs_list "$(found "${HOSTILE_B_RUN_ID:-}")"
req "$TOK" GET "$API/api/heartbeat-runs/${HOSTILE_B_RUN_ID:-}/log" ""
report b_run_log
req "$TOK" POST "$API/api/heartbeat-runs/${HOSTILE_B_RUN_ID:-}/cancel" ""
report b_run_cancel
req "$TOK" GET "$API/api/companies/$B/activity" ""
report b_activity "$(found "${HOSTILE_B_AGENT_ID:-}")"

req "$TOK" POST "$API/api/issues/${HOSTILE_B_ISSUE_ID:-}/comments" '{"body":"hostile-b_comment"}'
report b_comment
req "$TOK" DELETE "$API/api/agents/${HOSTILE_B_DOOMED_ID:-}" ""
report b_agent_delete
req "$TOK" DELETE "$API/api/companies/${HOSTILE_C_COMPANY_ID:-}" ""
report c_company_delete

# --- Other agents' work. ---
req "$TOK" POST "$API/api/companies/$CID/issues" \
    "{\"title\":\"hostile-assign_peer\",\"assigneeAgentId\":\"$PEER\"}"
report assign_peer
req "$TOK" PATCH "$API/api/issues/${HOSTILE_ISSUE2_ID:-}" "{\"assigneeAgentId\":\"$PEER\"}"
report reassign_peer
req "$TOK" DELETE "$API/api/agents/${HOSTILE_DOOMED_ID:-}" ""
report peer_delete
req "$TOK" DELETE "$API/api/environments/${HOSTILE_DOOMED_ENV_ID:-}" ""
report env_delete

# --- Other agents' runs. ---
req "$TOK" POST "$API/api/heartbeat-runs/${HOSTILE_PEER_RUN_ID:-}/cancel" ""
report peer_run_cancel
req "$TOK" POST "$API/api/agents/$PEER/wakeup" '{"reason":"hostile"}'
report peer_wakeup

# --- An agent that would run unconfined, and its first run. ---
req "$TOK" POST "$API/api/companies/$CID/agents" \
    '{"name":"hostile-spawn","adapterType":"process","adapterConfig":{"command":"sh","args":["-c","echo spawned"]}}'
report spawn_process_agent
child=
case $status in 2*) child=${body#*\"id\":\"} child=${child%%\"*} ;; esac
req "$TOK" POST "$API/api/agents/${child:-none}/wakeup" '{"reason":"hostile"}'
report spawn_wake
req "$TOK" POST "$API/api/companies/$CID/agents" \
    '{"name":"hostile-spawn_cwd","adapterType":"process","adapterConfig":{"command":"sh","args":["-c","pwd"],"cwd":"../../../../../../../../tmp"}}'
report spawn_cwd_traversal

# --- Paths that climb out. ---
up=../../../../../../../../../../../../../../../..
req "" POST "$API/api/plugins/install" \
    "{\"packageName\":\"$up${HOSTILE_PLUGIN_PATH:-}\",\"isLocalPath\":true,$PLUGIN_ENV}"
report plugin_traversal
req "$TOK" POST "$API/api/plugins/install" \
    "{\"packageName\":\"$up${HOSTILE_PLUGIN_PATH:-}\",\"isLocalPath\":true,$PLUGIN_ENV}"
report plugin_traversal_token
req "$TOK" POST "$API/api/companies/$CID/environments" \
    '{"name":"hostile-env_traversal","driver":"ssh","config":{"host":"127.0.0.1","port":22,"username":"root","remoteWorkspacePath":"../../../../../../../../etc"}}'
report env_traversal

# --- A browser on another site, through the run's URL, without credentials. ---
req "" POST "$API/api/companies" '{"name":"hostile-host_evil"}' -H 'Host: evil.example'
report host_evil
req "" POST "$API/api/companies" '{"name":"hostile-origin_evil_body"}' \
    -H 'Origin: http://evil.example'
report origin_evil_body
req "" POST "$API/api/agents/${HOSTILE_BYSTANDER_ID:-}/wakeup" "" -H 'Origin: http://evil.example'
report origin_evil_nobody
req "" POST "$API/api/companies" '{"name":"hostile-fetch_site_cross"}' \
    -H 'Sec-Fetch-Site: cross-site'
report fetch_site_cross

# The same with the run's token: the guards hold on every listener, whatever
# the credentials.
req "$TOK" POST "$API/api/companies/$CID/issues" '{"title":"hostile-host_evil_token"}' \
    -H 'Host: evil.example'
report host_evil_token
req "$TOK" POST "$API/api/companies/$CID/issues" '{"title":"hostile-origin_evil_token"}' \
    -H 'Origin: http://evil.example'
report origin_evil_token
req "$TOK" POST "$API/api/companies/$CID/issues" '{"title":"hostile-fetch_site_token"}' \
    -H 'Sec-Fetch-Site: same-site'
report fetch_site_token

# A board key the agent got hold of: the URL a run is given takes agent
# credentials only.
req "${HOSTILE_BOARD_KEY:-pcb_missing}" POST "$API/api/companies" '{"name":"hostile-leaked_board_key"}'
report leaked_board_key

# --- The host from inside: other processes' environments and the daemon's
# data dir (a sandbox must show neither). The status is 200 when something
# was read, 000 when nothing could be. ---
status=000 note=clean
for f in /proc/[0-9]*/environ; do
    [ -r "$f" ] || continue
    if grep -aq -e "$SECRET_NEEDLE" -e "$DAEMON_CANARY" "$f" 2>/dev/null; then
        status=200 note=found
        break
    fi
done
report proc_environ $note
status=000 note=clean
if [ -n "${HOSTILE_DATA_DIR:-}" ] && [ -r "$HOSTILE_DATA_DIR/agent-jwt-secret" ]; then
    secret=$(cat "$HOSTILE_DATA_DIR/agent-jwt-secret" 2>/dev/null)
    if [ -n "$secret" ]; then status=200 note=found; fi
fi
report read_jwt_secret $note

# Status last: pausing itself or the peer may end what runs.
patch_agent peer "$PEER" '"status":"paused"'
report peer_status
patch_agent self "$SELF" '"status":"paused"'
report self_status

echo "HOSTILE done"
