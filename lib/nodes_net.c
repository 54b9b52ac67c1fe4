/* nodes_net.c: the node types that call out over HTTP through the engine's libcurl client (flow/http.h):
 * http (any API) and llm (an OpenAI-compatible chat-completions endpoint). Both carry an
 * Idempotency-Key made of the job, the node, its visit and the item, the same on every try of a
 * visit, so an upstream that honours it never takes a retry for a new request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "decode.h"
#include "internal.h"
#include "nodes_int.h"
#include "flow/problems.h"
#include "schema.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", NULL};

/* ---- what both types share: sending, the key, the answer ---- */

enum parse { PARSE_NONE = 0, PARSE_JSON, PARSE_YAML };

typedef struct call {
    flow_ctx_t *ctx;
    flow_http_req_t *req;
    int llm;
    int parse;                   /* llm: enum parse, what the answer's text becomes in data */
    const flow_schema_t *schema; /* llm: what data must fit; borrowed from the node's cfg */
    json_t *expect;
    char what[160];  /* "GET http://..." for messages */
} call_t;

static const flow_nodes_env_t *env_of(flow_ctx_t *ctx) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    return n->env;
}

/* <job>:<node>:<visit>[:<item>]: the same on every try of one visit and when a resumed job runs the
 * visit again, different on each visit (flow_ctx_visit), so that an upstream that honours the key
 * never takes a retry for new work, nor a new visit for a retry. */
static void idempotency_key(flow_ctx_t *ctx, char *buf, size_t cap) {
    char visit[64];
    size_t item = flow_ctx_item(ctx);
    const char *job = flow_job_id(flow_ctx_job(ctx));
    const char *node = flow_node_name(flow_ctx_node(ctx));
    if (flow_ctx_visit(ctx, visit, sizeof visit) < 0)
        visit[0] = '\0';
    if (item == SIZE_MAX)
        snprintf(buf, cap, "Idempotency-Key: %s:%s:%s", job, node, visit);
    else
        snprintf(buf, cap, "Idempotency-Key: %s:%s:%s:%zu", job, node, visit, item);
}

/* "traceparent: 00-<the job's trace id>-<a new span id>-<its flags>" when the job has a trace
 * context (flow_job_opts_t), so that each call is a span of the trace of the request that made the
 * job; 0 with the header in buf (at least 70 bytes), -1 when there is none. */
static int trace_header(flow_ctx_t *ctx, char *buf, size_t cap) {
    const char *tp = flow_job_traceparent(flow_ctx_job(ctx));
    unsigned char span[8];
    if (tp == NULL || uv_random(NULL, NULL, span, sizeof span, 0, NULL) != 0)
        return -1;
    int n = snprintf(buf, cap, "traceparent: %.36s", tp); /* "00-" and the trace id, and its '-' */
    for (size_t i = 0; i < sizeof span && (size_t)n + 2 < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%02x", span[i]);
    snprintf(buf + n, cap - (size_t)n, "-%.2s", tp + 53);
    return 0;
}

/* JSON strings must be UTF-8: bytes that are not become U+FFFD, so any body can be kept as text. */
static json_t *text_value(const char *s, size_t len) {
    json_t *v = json_stringn(s, len);
    if (v != NULL)
        return v;
    char *fixed = flow__malloc(len * 3 + 1);
    size_t n = 0;
    if (fixed == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = need > 0 && i + need <= len;
        for (size_t k = 1; ok && k < need; k++)
            ok = ((unsigned char)s[i + k] >> 6) == 2;
        json_t *probe = ok && need > 1 ? json_stringn(s + i, need) : NULL;
        if (ok && (need == 1 || probe != NULL)) {
            memcpy(fixed + n, s + i, need);
            n += need;
            i += need;
        } else {
            memcpy(fixed + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
        }
        json_decref(probe);
    }
    v = json_stringn(fixed, n);
    flow__free(fixed);
    return v;
}

static int is_json_type(json_t *headers) {
    const char *ct = json_string_value(json_object_get(headers, "content-type"));
    return ct != NULL && (strncasecmp(ct, "application/json", 16) == 0 || strstr(ct, "+json") != NULL);
}

static int status_ok(const call_t *c, long status) {
    if (c->expect == NULL)
        return status >= 200 && status < 300;
    size_t i;
    json_t *v;
    json_array_foreach(c->expect, i, v)
        if (json_integer_value(v) == status)
            return 1;
    return 0;
}

/* A short, one-line excerpt of a body for error messages. */
static void excerpt(const flow_http_response_t *res, char *buf, size_t cap) {
    size_t n = res->body_len < cap - 4 ? res->body_len : cap - 4;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        buf[k++] = (res->body[i] == '\n' || res->body[i] == '\r') ? ' ' : res->body[i];
    if (res->body_len > n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
}

static void llm_answer(call_t *c, const flow_http_response_t *res);

/* A 429 or 503 may say when to come back: Retry-After as seconds or as an HTTP date (RFC 9110
 * 10.2.3). The milliseconds from now, or 0 when it says nothing usable. */
static uint64_t retry_after_ms(const flow_http_response_t *res) {
    const char *v = json_string_value(json_object_get(res->headers, "retry-after"));
    if ((res->status != 429 && res->status != 503) || v == NULL)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (errno != 0 || *end != '\0')
            return 0;
        return s > 86400000ull ? UINT64_C(86400000) * 1000 : (uint64_t)s * 1000;
    }
    time_t at = curl_getdate(v, NULL);
    time_t now = time(NULL);
    return at > now ? (uint64_t)(at - now) * 1000 : 0;
}

static void on_answer(flow_http_req_t *req, int err, const char *message, const flow_http_response_t *res,
                      void *data) {
    call_t *c = data;
    flow_ctx_t *ctx = c->ctx;
    flow_ctx_set_data(ctx, NULL);
    if (err == FLOW_EOUTBOUND) { /* the same on every try: no retry */
        flow_fail_final(ctx, err, "%s: %s", c->what, message ? message : flow_strerror(err));
    } else if (err < 0) {
        flow_fail(ctx, err, "%s: %s", c->what, message ? message : flow_strerror(err));
    } else if (!status_ok(c, res->status)) {
        char body[200];
        excerpt(res, body, sizeof body);
        flow_retry_after(ctx, retry_after_ms(res));
        flow_fail(ctx, FLOW_EHTTP, "%s answered %ld: %s", c->what, res->status, body);
    } else if (c->llm) {
        llm_answer(c, res);
    } else {
        json_t *body = NULL;
        if (is_json_type(res->headers))
            body = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
        if (body == NULL)
            body = text_value(res->body, res->body_len);
        json_t *out = json_pack("{s:I, s:O, s:o}", "status", (json_int_t)res->status, "headers", res->headers,
                                "body", body);
        if (out != NULL)
            flow_done(ctx, out);
        else
            flow_fail(ctx, FLOW_ENOMEM, "out of memory");
    }
    json_decref(c->expect);
    flow__free(c);
}

static void call_cancel(flow_ctx_t *ctx) {
    call_t *c = flow_ctx_data(ctx);
    if (c == NULL)
        return;
    flow_ctx_set_data(ctx, NULL);
    flow_http_abort(c->req);
    json_decref(c->expect);
    flow__free(c);
}

static void send_call(flow_ctx_t *ctx, call_t *c, flow_http_request_t *r) {
    const flow_nodes_env_t *env = env_of(ctx);
    if (env == NULL || env->http == NULL) {
        flow_fail(ctx, FLOW_EINVAL, "%s: this server has no HTTP client", c->what);
        goto fail;
    }
    r->max_body = env->max_body;
    int rc = flow_http_send(env->http, r, on_answer, c, &c->req);
    if (rc < 0) {
        flow_fail(ctx, rc, "%s: %s", c->what, flow_strerror(rc));
        goto fail;
    }
    flow_ctx_set_data(ctx, c);
    return;
fail:
    json_decref(c->expect);
    flow__free(c);
}

/* ---- http ---- */

static int http_compile(const flow_type_args_t *a, void **cfg) {
    static const char *const names[] = {"method", "url", "headers", "query", "body", "text", "expect", NULL};
    int rc = flow__jknown(a, names);
    json_t *method = json_object_get(a->params, "method");
    json_t *url = json_object_get(a->params, "url");
    json_t *headers = json_object_get(a->params, "headers");
    json_t *query = json_object_get(a->params, "query");
    json_t *expect = json_object_get(a->params, "expect");
    if (url == NULL && json_object_get(a->node, "prep") != NULL) {
        /* a prep hook gives it */
    } else if (!json_is_string(url)) {
        rc = flow__jbad(a, "/params", "http needs a \"url\" (a string, may be a template)");
    } else if (!flow__jdynamic(url)) {
        CURLU *u = curl_url();
        if (u == NULL || curl_url_set(u, CURLUPART_URL, json_string_value(url), 0) != CURLUE_OK)
            rc = flow__jbad(a, "/params/url", "\"%s\" is not a URL", json_string_value(url));
        curl_url_cleanup(u);
    }
    if (method != NULL && !flow__jdynamic(method)) {
        int ok = 0;
        for (const char *const *m = methods; *m != NULL; m++)
            ok |= json_is_string(method) && strcmp(*m, json_string_value(method)) == 0;
        if (!ok)
            rc = flow__jbad(a, "/params/method",
                            "method is one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
    }
    if (headers != NULL && !json_is_object(headers))
        rc = flow__jbad(a, "/params/headers", "headers is an object of name: value");
    if (query != NULL && !json_is_object(query))
        rc = flow__jbad(a, "/params/query", "query is an object of name: value");
    if (json_object_get(a->params, "body") != NULL && json_object_get(a->params, "text") != NULL)
        rc = flow__jbad(a, "/params", "give a JSON \"body\" or a \"text\" body, not both");
    if (expect != NULL) {
        size_t i;
        json_t *v;
        int ok = json_is_array(expect) && json_array_size(expect) > 0;
        json_array_foreach(expect, i, v)
            ok &= json_is_integer(v) && json_integer_value(v) >= 100 && json_integer_value(v) <= 599;
        if (!ok)
            rc = flow__jbad(a, "/params/expect",
                            "expect is a list of HTTP status codes, such as [200, 404]");
    }
    *cfg = NULL;
    return rc;
}

/* The URL with the query members appended, %-encoded. */
static char *full_url(const char *url, json_t *query) {
    CURLU *u = curl_url();
    char *out = NULL, *copy = NULL;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto done;
    const char *key;
    json_t *v;
    json_object_foreach(query, key, v) {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        char *pair = flow__asprintf("%s=%s", key, text ? text : json_string_value(v));
        flow__json_free(text);
        if (pair == NULL || curl_url_set(u, CURLUPART_QUERY, pair, CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK) {
            flow__free(pair);
            goto done;
        }
        flow__free(pair);
    }
    if (curl_url_get(u, CURLUPART_URL, &copy, 0) == CURLUE_OK)
        out = flow__strdup(copy);
done:
    curl_free(copy);
    curl_url_cleanup(u);
    return out;
}

#define MAX_HEADERS 64

static void http_exec(flow_ctx_t *ctx, const void *cfg, json_t *in) {
    const char *method = json_string_value(json_object_get(in, "method"));
    const char *url = json_string_value(json_object_get(in, "url"));
    json_t *body = json_object_get(in, "body");
    const char *text = json_string_value(json_object_get(in, "text"));
    const char *headers[MAX_HEADERS + 4];
    char *owned[MAX_HEADERS + 4] = {0};
    size_t nh = 0;
    char key[512], trace[80];
    char *payload = NULL, *target = NULL;
    call_t *c = flow__calloc(1, sizeof *c);
    if (c == NULL) {
        flow_fail(ctx, FLOW_ENOMEM, "out of memory");
        return;
    }
    c->ctx = ctx;
    c->expect = json_incref(json_object_get(in, "expect"));
    if (method == NULL)
        method = body != NULL || text != NULL ? "POST" : "GET";
    target = url ? full_url(url, json_object_get(in, "query")) : NULL;
    snprintf(c->what, sizeof c->what, "%s %s", method, target ? target : url ? url : "(no url)");
    if (target == NULL) {
        flow_fail(ctx, FLOW_EINVAL, "%s: not a URL", c->what);
        goto fail;
    }
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(in, "headers"), name, v) {
        if (nh == MAX_HEADERS)
            break;
        char *line = json_is_string(v) ? flow__asprintf("%s: %s", name, json_string_value(v)) : NULL;
        if (line == NULL) {
            flow_fail(ctx, FLOW_EINVAL, "%s: header %s must be a string", c->what, name);
            goto fail;
        }
        owned[nh] = line;
        headers[nh++] = line;
    }
    if (body != NULL) {
        payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        headers[nh++] = "Content-Type: application/json";
    } else if (text != NULL) {
        headers[nh++] = "Content-Type: text/plain; charset=utf-8";
    }
    idempotency_key(ctx, key, sizeof key);
    headers[nh++] = key;
    if (trace_header(ctx, trace, sizeof trace) == 0)
        headers[nh++] = trace;
    headers[nh] = NULL;
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    flow_http_request_t r = {.method = method, .url = target, .headers = headers,
                             .body = payload ? payload : text,
                             .body_len = payload ? strlen(payload) : text ? strlen(text) : 0,
                             .allow = n->outbound};
    send_call(ctx, c, &r);
    c = NULL;
fail:
    if (c != NULL) {
        json_decref(c->expect);
        flow__free(c);
    }
    for (size_t i = 0; i < nh; i++)
        flow__free(owned[i]);
    flow__json_free(payload);
    flow__free(target);
}

const flow__jtype_t flow__http_type = {.name = "http", .flags = FLOW__JT_ITEMS | FLOW__JT_OUT,
                                       .compile = http_compile, .exec = http_exec, .cancel = call_cancel};

/* ---- llm ---- */

/* What an llm node knows when it is loaded: how to read the answer, and the schema it must fit. */
typedef struct llm_cfg {
    int parse;
    flow_schema_t *schema;
} llm_cfg_t;

static void llm_free(void *p) {
    llm_cfg_t *c = p;
    if (c == NULL)
        return;
    flow_schema_free(c->schema);
    flow__free(c);
}

/* "parse", "schema" and "json": how the answer becomes data. */
static int llm_compile_parse(const flow_type_args_t *a, llm_cfg_t *c) {
    json_t *parse = json_object_get(a->params, "parse");
    json_t *schema = json_object_get(a->params, "schema");
    json_t *j = json_object_get(a->params, "json");
    char where[512];
    int rc = 0;
    if (j != NULL && !json_is_boolean(j))
        rc = flow__jbad(a, "/params/json", "json is true or false");
    if (json_is_true(j))
        c->parse = PARSE_JSON;
    if (parse != NULL) {
        const char *p = json_string_value(parse);
        if (p != NULL && strcmp(p, "json") == 0)
            c->parse = PARSE_JSON;
        else if (p != NULL && strcmp(p, "yaml") == 0 && !json_is_true(j))
            c->parse = PARSE_YAML;
        else if (p != NULL && strcmp(p, "yaml") == 0)
            rc = flow__jbad(a, "/params/parse",
                            "json true asks the model for JSON: parse it as \"json\"");
        else
            rc = flow__jbad(a, "/params/parse", "parse is \"json\" or \"yaml\", written out");
    }
    if (schema != NULL) {
        snprintf(where, sizeof where, "%s/params/schema", a->where);
        if (c->parse == PARSE_NONE && rc == 0)
            rc = flow__jbad(a, "/params/schema",
                     "schema checks the parsed answer: give \"parse\" (\"json\" or \"yaml\")");
        else if (flow_schema_compile(schema, where, &c->schema, a->problems) < 0)
            rc = FLOW_ELOAD;
    }
    return rc;
}

static int llm_compile(const flow_type_args_t *a, void **cfg) {
    static const char *const names[] = {"prompt", "messages", "system", "model", "temperature",
                                        "max_tokens", "json", "parse", "schema", NULL};
    int rc = flow__jknown(a, names);
    json_t *prompt = json_object_get(a->params, "prompt");
    json_t *messages = json_object_get(a->params, "messages");
    int prep = json_object_get(a->node, "prep") != NULL; /* a prep hook may give them */
    if ((prompt == NULL) == (messages == NULL) && !(prep && prompt == NULL))
        rc = flow__jbad(a, "/params",
                        "llm needs a \"prompt\" (a string) or \"messages\" (a list), one of them");
    if (prompt != NULL && !json_is_string(prompt))
        rc = flow__jbad(a, "/params/prompt", "prompt is a string (may be a template)");
    if (messages != NULL && !flow__jdynamic(messages)) {
        size_t i;
        json_t *m;
        if (!json_is_array(messages) || json_array_size(messages) == 0)
            rc = flow__jbad(a, "/params/messages",
                            "messages is a list of {\"role\": ..., \"content\": ...}");
        json_array_foreach(messages, i, m) {
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role == NULL || (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0) ||
                !json_is_string(json_object_get(m, "content"))) {
                char sub[64];
                snprintf(sub, sizeof sub, "/params/messages/%zu", i);
                rc = flow__jbad(a, sub,
                                "a message is {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": \"...\"}");
            }
        }
    }
    json_t *t = json_object_get(a->params, "temperature");
    if (t != NULL && !flow__jdynamic(t) && (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2))
        rc = flow__jbad(a, "/params/temperature", "temperature is a number from 0 to 2");
    json_t *mt = json_object_get(a->params, "max_tokens");
    if (mt != NULL && !flow__jdynamic(mt) && (!json_is_integer(mt) || json_integer_value(mt) < 1))
        rc = flow__jbad(a, "/params/max_tokens", "max_tokens is a whole number above 0");
    llm_cfg_t *c = flow__calloc(1, sizeof *c);
    if (c == NULL)
        return FLOW_ENOMEM;
    if (llm_compile_parse(a, c) < 0)
        rc = FLOW_ELOAD;
    if (rc < 0) {
        llm_free(c);
        return rc;
    }
    *cfg = c;
    return 0;
}

static void llm_exec(flow_ctx_t *ctx, const void *cfg, json_t *in) {
    const flow_nodes_env_t *env = env_of(ctx);
    char auth[1100], key[512], trace[80];
    const char *headers[5];
    size_t nh = 0;
    char *url = NULL, *payload = NULL;
    json_t *req = NULL;
    if (env == NULL || env->llm_base_url == NULL || env->llm_base_url[0] == '\0') {
        flow_fail(ctx, FLOW_EINVAL, "llm: no model endpoint is configured (FLOWD_LLM_BASE_URL)");
        return;
    }
    const char *model = json_string_value(json_object_get(in, "model"));
    if (model == NULL)
        model = env->llm_model;
    if (model == NULL || model[0] == '\0') {
        flow_fail(ctx, FLOW_EINVAL, "llm: no model given (param \"model\" or FLOWD_LLM_MODEL)");
        return;
    }
    json_t *messages = json_array();
    const char *system = json_string_value(json_object_get(in, "system"));
    if (system != NULL)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "system", "content", system));
    if (json_object_get(in, "prompt") == NULL && json_object_get(in, "messages") == NULL) {
        flow_fail(ctx, FLOW_EINVAL, "llm: no prompt or messages (from its params or its prep hook)");
        json_decref(messages);
        return;
    }
    if (json_object_get(in, "messages") == NULL) { /* messages win: a prep hook may add them */
        json_t *p = json_object_get(in, "prompt");
        char *text = json_is_string(p) ? NULL : json_dumps(p, JSON_ENCODE_ANY);
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "user", "content", text ? text : json_string_value(p)));
        flow__json_free(text);
    } else {
        json_array_extend(messages, json_object_get(in, "messages"));
    }
    req = json_pack("{s:s, s:o}", "model", model, "messages", messages);
    if (req == NULL) {
        flow_fail(ctx, FLOW_ENOMEM, "out of memory");
        return;
    }
    if (json_object_get(in, "temperature") != NULL)
        json_object_set(req, "temperature", json_object_get(in, "temperature"));
    if (json_object_get(in, "max_tokens") != NULL)
        json_object_set(req, "max_tokens", json_object_get(in, "max_tokens"));
    if (json_is_true(json_object_get(in, "json")))
        json_object_set_new(req, "response_format", json_pack("{s:s}", "type", "json_object"));
    payload = json_dumps(req, JSON_COMPACT);
    size_t base = strlen(env->llm_base_url);
    while (base > 0 && env->llm_base_url[base - 1] == '/')
        base--;
    url = flow__asprintf("%.*s/chat/completions", (int)base, env->llm_base_url);
    call_t *c = flow__calloc(1, sizeof *c);
    if (payload == NULL || url == NULL || c == NULL) {
        flow__free(c);
        flow_fail(ctx, FLOW_ENOMEM, "out of memory");
        goto out;
    }
    c->ctx = ctx;
    c->llm = 1;
    c->parse = ((const llm_cfg_t *)cfg)->parse;
    c->schema = ((const llm_cfg_t *)cfg)->schema;
    /* The message names the model, never the key. */
    snprintf(c->what, sizeof c->what, "llm %s", model);
    headers[nh++] = "Content-Type: application/json";
    if (env->llm_api_key != NULL && env->llm_api_key[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", env->llm_api_key);
        headers[nh++] = auth;
    }
    idempotency_key(ctx, key, sizeof key);
    headers[nh++] = key;
    if (trace_header(ctx, trace, sizeof trace) == 0)
        headers[nh++] = trace;
    headers[nh] = NULL;
    flow_http_request_t r = {.method = "POST", .url = url, .headers = headers, .body = payload,
                             .body_len = strlen(payload), .allow = env->llm_allow};
    send_call(ctx, c, &r);
out:
    memset(auth, 0, sizeof auth);
    json_decref(req);
    flow__json_free(payload);
    flow__free(url);
}

/* The answer's text as data: the inside of its first ``` fence (or all of it), parsed. Fails the
 * try (and returns the error), so that max_retries asks again, when it does not parse or does not
 * fit the schema. */
static int answer_data(call_t *c, json_t *content, json_t **data) {
    const char *text = json_string_value(content);
    size_t start, len;
    flow_fence_inner(text, json_string_length(content), &start, &len);
    if (c->parse == PARSE_JSON) {
        json_error_t jerr;
        *data = json_loadb(text + start, len, JSON_DECODE_ANY, &jerr);
        if (*data == NULL) {
            flow_fail(c->ctx, FLOW_EINVAL, "%s: the answer is not the JSON asked for: line %d, "
                                           "column %d: %s",
                      c->what, jerr.line, jerr.column, jerr.text);
            return FLOW_EINVAL;
        }
    } else {
        flow_error_t err = {0};
        int rc = flow_yaml_decode(text + start, len, data, &err);
        if (rc < 0) {
            flow_fail(c->ctx, rc == FLOW_ENOMEM ? rc : FLOW_EINVAL, "%s: the answer is not the "
                                                                    "YAML asked for: %s",
                      c->what, err.message ? err.message : flow_strerror(rc));
            flow_error_clear(&err);
            return rc;
        }
    }
    if (c->schema == NULL)
        return 0;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    int rc = flow_schema_validate(c->schema, *data, &problems);
    if (rc < 0) {
        char *why = NULL;
        flow_problems_text(&problems, &why);
        flow_fail(c->ctx, rc == FLOW_ENOMEM ? rc : FLOW_EINVAL, "%s: the answer does not fit the "
                                                                "schema: %s", c->what,
                  why ? why : flow_strerror(rc));
        flow__free(why);
        json_decref(*data);
        *data = NULL;
    }
    flow_problems_clear(&problems);
    return rc;
}

static void llm_answer(call_t *c, const flow_http_response_t *res) {
    json_error_t jerr;
    json_t *body = json_loadb(res->body, res->body_len, 0, &jerr);
    json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "message"), "content");
    if (!json_is_string(content)) {
        flow_fail(c->ctx, FLOW_EHTTP, "%s: the answer has no choices[0].message.content", c->what);
        json_decref(body);
        return;
    }
    json_t *out = json_pack("{s:O, s:O*, s:O*, s:O*}", "text", content, "model", json_object_get(body, "model"),
                            "usage", json_object_get(body, "usage"), "finish_reason",
                            json_object_get(choice, "finish_reason"));
    if (out != NULL && c->parse != PARSE_NONE) {
        json_t *data = NULL;
        if (answer_data(c, content, &data) < 0) {
            json_decref(out);
            json_decref(body);
            return;
        }
        json_object_set_new(out, "data", data);
    }
    json_decref(body);
    if (out != NULL)
        flow_done(c->ctx, out);
    else
        flow_fail(c->ctx, FLOW_ENOMEM, "out of memory");
}

static const char *const llm_literal[] = {"schema", NULL};

const flow__jtype_t flow__llm_type = {.name = "llm", .flags = FLOW__JT_ITEMS | FLOW__JT_OUT,
                                      .literal = llm_literal, .compile = llm_compile,
                                      .free = llm_free, .exec = llm_exec, .cancel = call_cancel};
