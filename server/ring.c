/* ring.c: the event ring of ring.h and the JSON of events. */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

void flowd_ring_init(flowd_ring_t *r, unsigned limit) {
    memset(r, 0, sizeof *r);
    r->limit = limit ? limit : 1;
    r->next_id = 1;
    r->ev = r->small;
    r->cap = r->limit < FLOWD_RING_INLINE ? r->limit : FLOWD_RING_INLINE;
}

static void event_free(flowd_event_t *e) {
    if (!e->is_static)
        free((char *)e->data);
}

void flowd_ring_free(flowd_ring_t *r) {
    for (uint32_t i = 0; i < r->len; i++)
        event_free(&r->ev[(r->head + i) % r->cap]);
    if (r->ev != r->small)
        free(r->ev);
    r->ev = r->small;
    r->len = r->head = 0;
}

int flowd_ring_push(flowd_ring_t *r, flow_event_type_t type, int final, uint64_t seq, const char *data,
                    size_t len, int is_static) {
    if (r->len == r->cap && r->cap < r->limit) {
        /* grow (unrolling the ring into the new array), up to the limit */
        uint32_t cap = r->cap * 2;
        if (cap > r->limit)
            cap = r->limit;
        flowd_event_t *ev = malloc(cap * sizeof *ev);
        if (ev == NULL) {
            if (!is_static)
                free((char *)data);
            return FLOW_ENOMEM;
        }
        for (uint32_t i = 0; i < r->len; i++)
            ev[i] = r->ev[(r->head + i) % r->cap];
        if (r->ev != r->small)
            free(r->ev);
        r->ev = ev;
        r->cap = cap;
        r->head = 0;
    }
    if (r->len == r->cap) { /* full at the limit: the oldest goes */
        event_free(&r->ev[r->head]);
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    flowd_event_t *e = &r->ev[(r->head + r->len) % r->cap];
    e->id = r->next_id++;
    e->seq = seq;
    e->data = data;
    e->len = (uint32_t)len;
    e->type = (uint8_t)type;
    e->final = (uint8_t)(final != 0);
    e->is_static = (uint8_t)(is_static != 0);
    r->len++;
    return 0;
}

int flowd_ring_steps(const flowd_ring_t *r, uint64_t count, flow_buf_t *b) {
    /* walk back from the newest event to the first of the last count step events */
    uint32_t i = r->len, found = 0;
    uint64_t want = count;
    while (i > 0 && found < want) {
        const flowd_event_t *e = &r->ev[(r->head + i - 1) % r->cap];
        if (e->type == FLOW_EVENT_STEP)
            found++;
        i--;
    }
    if (found < want)
        return 0;
    if (b == NULL)
        return 1;
    int first = 1;
    for (; i < r->len; i++) {
        const flowd_event_t *e = &r->ev[(r->head + i) % r->cap];
        if (e->type != FLOW_EVENT_STEP)
            continue;
        if (!first)
            flow_buf_addc(b, ',');
        flow_buf_add(b, e->data, e->len);
        first = 0;
    }
    return 1;
}

void flowd_sse_frame(flow_buf_t *b, uint64_t id, flow_event_type_t type, const char *data,
                     size_t len) {
    flow_buf_printf(b, "id: %llu\nevent: %s\ndata: ", (unsigned long long)id,
                    type == FLOW_EVENT_STEP ? "step" : "status");
    flow_buf_add(b, data, len);
    flow_buf_add(b, "\n\n", 2);
}

uint64_t flowd_ring_frames(const flowd_ring_t *r, uint64_t after, flow_buf_t *b, size_t max,
                           int *final) {
    *final = 0;
    if (r->len == 0)
        return after;
    uint64_t oldest = r->ev[r->head].id;
    if (after + 1 >= r->next_id)
        return after;
    uint32_t i = 0;
    if (after + 1 < oldest) {
        flow_buf_printf(b, ": %llu earlier events are no longer kept\n\n",
                         (unsigned long long)(oldest - after - 1));
    } else {
        i = (uint32_t)(after + 1 - oldest);
    }
    for (; i < r->len && b->len < max; i++) {
        const flowd_event_t *e = &r->ev[(r->head + i) % r->cap];
        flowd_sse_frame(b, e->id, e->type, e->data, e->len);
        after = e->id;
        *final = e->final;
    }
    return after;
}

static void write_error(flowd_jw_t *w, int code, const char *message, const char *node, int with_node) {
    if (code == 0) {
        flowd_jw_null(w);
        return;
    }
    flowd_jw_obj(w);
    flowd_jw_key(w, "code");
    flowd_jw_str(w, flow_err_name(code));
    flowd_jw_key(w, "message");
    flowd_jw_str(w, message ? message : flow_strerror(code));
    if (with_node) {
        flowd_jw_key(w, "node");
        flowd_jw_str(w, node);
    }
    flowd_jw_obj_end(w);
}

void flowd_step_write(flowd_jw_t *w, const flow_step_t *step) {
    flowd_step_write_patch(w, step, NULL, 0);
}

void flowd_step_write_patch(flowd_jw_t *w, const flow_step_t *step, const char *patch,
                            size_t patch_len) {
    flowd_jw_obj(w);
    flowd_jw_key(w, "seq");
    flowd_jw_uint(w, step->seq);
    flowd_jw_key(w, "node");
    flowd_jw_str(w, step->node);
    flowd_jw_key(w, "action");
    flowd_jw_str(w, step->action);
    flowd_jw_key(w, "tries");
    flowd_jw_uint(w, step->tries);
    flowd_jw_key(w, "started_at");
    flowd_jw_time(w, step->start_us);
    flowd_jw_key(w, "finished_at");
    flowd_jw_time(w, step->end_us);
    flowd_jw_key(w, "depth");
    flowd_jw_uint(w, step->depth);
    flowd_jw_key(w, "error");
    write_error(w, step->error, step->message, NULL, 0);
    if (step->logs != NULL) { /* what the node's Lua hooks logged */
        flowd_jw_key(w, "logs");
        flowd_jw_json(w, step->logs);
    }
    if (step->retries != NULL) { /* the failed tries that another followed, and the waits */
        flowd_jw_key(w, "retries");
        flowd_jw_json(w, step->retries);
    }
    if (patch != NULL) { /* what the step changed in the shared store (patch.h) */
        flowd_jw_key(w, "patch");
        flowd_jw_raw(w, patch, patch_len);
    }
    flowd_jw_obj_end(w);
}

char *flowd_event_step_json(const flow_step_t *step, const char *patch, size_t patch_len,
                            size_t *len) {
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 0);
    flowd_step_write_patch(&w, step, patch, patch_len);
    return flow_buf_take(&b, len);
}

char *flowd_event_status_json(flow_status_t status, const char *waiting_for, const flow_error_t *err,
                              size_t *len) {
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 0);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "status");
    flowd_jw_str(&w, flow_status_name(status));
    flowd_jw_key(&w, "waiting_for");
    flowd_jw_raw(&w, waiting_for, waiting_for ? strlen(waiting_for) : 0);
    flowd_jw_key(&w, "error");
    if (err != NULL)
        write_error(&w, err->code, err->message, err->node, 1);
    else
        flowd_jw_null(&w);
    flowd_jw_obj_end(&w);
    return flow_buf_take(&b, len);
}

const char *flowd_event_status_static(flow_status_t status, size_t *len) {
    static const char *const texts[] = {
        "{\"status\":\"queued\",\"waiting_for\":null,\"error\":null}",
        "{\"status\":\"running\",\"waiting_for\":null,\"error\":null}",
        NULL,
        "{\"status\":\"succeeded\",\"waiting_for\":null,\"error\":null}",
        "{\"status\":\"failed\",\"waiting_for\":null,\"error\":null}",
        "{\"status\":\"canceled\",\"waiting_for\":null,\"error\":null}"};
    if ((unsigned)status >= sizeof texts / sizeof texts[0] || texts[status] == NULL)
        return NULL;
    *len = strlen(texts[status]);
    return texts[status];
}
