/*
 * Parsing the local CLI adapters' JSON event streams (see internal.h).
 * Unknown or malformed lines are ignored: the stream is also the run log, and
 * an agent's output must never fail its run here.
 */
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "run/internal.h"

#define LINE_MAX_BYTES (1024 * 1024)
#define SUMMARY_MAX 4096

void pc_adapter_stream_init(pc_adapter_stream *s, pc_adapter_cli_kind kind)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->line = pc_xmalloc(LINE_MAX_BYTES + 1);
}

void pc_adapter_stream_free(pc_adapter_stream *s)
{
    free(s->line);
    free(s->summary);
    json_decref(s->usage);
    memset(s, 0, sizeof *s);
}

bool pc_adapter_session_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

static void set_session(pc_adapter_stream *s, const char *id)
{
    if (pc_adapter_session_id_valid(id))
        snprintf(s->session, sizeof s->session, "%s", id);
}

static void set_model(pc_adapter_stream *s, const char *model)
{
    size_t n = model ? strlen(model) : 0;
    if (n == 0 || n >= sizeof s->model)
        return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)model[i] < 0x20 || (unsigned char)model[i] >= 0x7f)
            return;
    memcpy(s->model, model, n + 1);
}

static void set_summary(pc_adapter_stream *s, const char *text)
{
    if (!text)
        return;
    free(s->summary);
    s->summary = strndup(text, SUMMARY_MAX);
}

static void set_usage(pc_adapter_stream *s, json_t *u, const char *cached_key)
{
    if (!json_is_object(u))
        return;
    json_decref(s->usage);
    s->usage = json_pack("{s:I,s:I,s:I}", "inputTokens",
                         (json_int_t)pc_json_int(u, "input_tokens", 0), "cachedInputTokens",
                         (json_int_t)pc_json_int(u, cached_key, 0), "outputTokens",
                         (json_int_t)pc_json_int(u, "output_tokens", 0));
}

/* Codex's session events (`event_msg` payloads in its rollout format, `msg`
 * in the older exec stream): token_count carries the cumulative usage of the
 * session in info.total_token_usage, so the newest one wins. */
static void codex_event_msg(pc_adapter_stream *s, json_t *p)
{
    const char *pt = pc_json_str(p, "type");
    if (!pt)
        return;
    if (!strcmp(pt, "token_count")) {
        json_t *info = json_object_get(p, "info");
        json_t *total = json_object_get(info, "total_token_usage");
        set_usage(s, json_is_object(total) ? total : json_object_get(info, "last_token_usage"),
                  "cached_input_tokens");
    } else if (!strcmp(pt, "agent_message")) {
        set_summary(s, pc_json_str(p, "message"));
    }
}

static void handle_line(pc_adapter_stream *s, const char *line, size_t n)
{
    if (n == 0 || line[0] != '{')
        return;
    pc_error_t err = PC_ERROR_INIT;
    json_t *ev = pc_json_parse(line, n, &err);
    pc_error_clear(&err);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return;
    }
    const char *type = pc_json_str(ev, "type");
    if (!type && s->kind == PC_ADAPTER_CODEX && json_is_object(json_object_get(ev, "msg")))
        type = "msg";
    if (!type) {
        json_decref(ev);
        return;
    }
    if (s->kind == PC_ADAPTER_CLAUDE) {
        if (!strcmp(type, "system") || !strcmp(type, "result"))
            set_session(s, pc_json_str(ev, "session_id"));
        if (!strcmp(type, "system"))
            set_model(s, pc_json_str(ev, "model"));
        if (!strcmp(type, "result")) {
            set_usage(s, json_object_get(ev, "usage"), "cache_read_input_tokens");
            json_t *cost = json_object_get(ev, "total_cost_usd");
            if (json_is_number(cost)) {
                s->cost_usd = json_number_value(cost);
                s->has_cost = true;
            }
            s->is_error = pc_json_bool(ev, "is_error", false);
            set_summary(s, pc_json_str(ev, "result"));
        }
    } else {
        if (!strcmp(type, "thread.started"))
            set_session(s, pc_json_str(ev, "thread_id"));
        else if (!strcmp(type, "turn.completed"))
            set_usage(s, json_object_get(ev, "usage"), "cached_input_tokens");
        else if (!strcmp(type, "event_msg") || !strcmp(type, "msg"))
            codex_event_msg(s, json_object_get(ev, !strcmp(type, "msg") ? "msg" : "payload"));
        else if (!strcmp(type, "turn_context"))
            set_model(s, pc_json_str(json_object_get(ev, "payload"), "model"));
        else if (!strcmp(type, "item.completed")) {
            json_t *item = json_object_get(ev, "item");
            const char *it = pc_json_str(item, "type");
            if (it && !strcmp(it, "agent_message"))
                set_summary(s, pc_json_str(item, "text"));
        }
    }
    json_decref(ev);
}

void pc_adapter_stream_feed(pc_adapter_stream *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (!s->skipping)
                handle_line(s, s->line, s->len);
            s->len = 0;
            s->skipping = false;
        } else if (s->skipping) {
            continue;
        } else if (s->len < LINE_MAX_BYTES) {
            s->line[s->len++] = p[i];
        } else {
            s->skipping = true;
            s->len = 0;
        }
    }
}
