/* recipe.c: the seed's recipe recommender run from a terminal. The flow (recipe_flow.c) waits for the
 * person's answer with flow_await_input; this program reads the answers from stdin through libuv, so
 * the loop keeps running (timers, other jobs) while nobody types.
 *   build/examples/recipe [ingredient] [--fast]      e.g. printf 'no\nyes\n' | build/examples/recipe tofu */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe_flow.h"

typedef struct app {
    uv_loop_t loop;
    uv_pipe_t in;
    flow_job_t *job;
    char line[256];
    size_t len;
    json_t *answers; /* lines read before they were asked for */
    int asked;       /* the job waits and has not been answered yet */
    int eof;
    int done;
    int status;
} app_t;

static void pump(app_t *app);

static void show_prompt(app_t *app) {
    json_t *req = flow_job_waiting_for(app->job);
    printf("%s\n%s ", json_string_value(json_object_get(req, "suggestion")),
           json_string_value(json_object_get(req, "prompt")));
    fflush(stdout);
}

static void on_event(flow_job_t *job, const flow_event_t *ev, void *data) {
    app_t *app = data;
    if (ev->type == FLOW_EVENT_STATUS && ev->status == FLOW_WAITING) {
        app->asked = 1;
        show_prompt(app);
        pump(app);
    }
    else if (ev->type == FLOW_EVENT_STEP && strcmp(ev->step->node, "fetch") == 0)
        printf("fetched recipes\n");
}

static void on_done(flow_job_t *job, void *data) {
    app_t *app = data;
    const flow_error_t *err = flow_job_error(job);
    app->done = 1;
    app->status = flow_job_status(job) == FLOW_SUCCEEDED ? 0 : 1;
    if (app->status == 0)
        printf("Final recipe: %s\n", json_string_value(json_object_get(flow_job_shared(job), "final")));
    else
        printf("job %s: %s\n", flow_status_name(flow_job_status(job)), err->message ? err->message : "");
    uv_close((uv_handle_t *)&app->in, NULL);
}

/* Answers the question with the lines read so far, one at a time; a rejected line asks again. */
static void pump(app_t *app) {
    while (app->asked && !app->done && json_array_size(app->answers) > 0) {
        json_t *value = json_incref(json_array_get(app->answers, 0));
        json_array_remove(app->answers, 0);
        printf("%s\n", json_string_value(value));
        flow_error_t err = {0};
        int rc = flow_job_input(app->job, value, &err);
        json_decref(value);
        if (rc == 0) {
            app->asked = 0;
        } else {
            printf("%s\n", err.message ? err.message : flow_strerror(rc));
            show_prompt(app);
        }
        flow_error_clear(&err);
    }
    if (app->asked && app->eof && !app->done && json_array_size(app->answers) == 0)
        flow_job_cancel(app->job); /* stdin has ended: nobody is left to answer */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    app_t *app = h->data;
    buf->base = app->line + app->len;
    buf->len = sizeof app->line - 1 - app->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    app_t *app = s->data;
    if (n < 0) {
        app->eof = 1;
        uv_read_stop(s);
        pump(app);
        return;
    }
    app->len += (size_t)n;
    app->line[app->len] = '\0';
    char *nl;
    while ((nl = strchr(app->line, '\n')) != NULL) {
        *nl = '\0';
        if (nl > app->line && nl[-1] == '\r')
            nl[-1] = '\0';
        json_array_append_new(app->answers, json_string(app->line));
        size_t rest = app->len - (size_t)(nl + 1 - app->line);
        memmove(app->line, nl + 1, rest + 1);
        app->len = rest;
    }
    if (app->len == sizeof app->line - 1)
        app->len = 0; /* an overlong line is dropped */
    pump(app);
}

int main(int argc, char **argv) {
    const char *ingredient = "chicken";
    int fast = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fast") == 0)
            fast = 1;
        else
            ingredient = argv[i];
    }
    static app_t app;
    app.answers = json_array();
    flow_engine_t *eng;
    flow_def_t *def;
    if (uv_loop_init(&app.loop) != 0 || flow_engine_new(&app.loop, NULL, &eng) < 0 ||
        recipe_flow_new(NULL, &def) < 0) {
        fprintf(stderr, "recipe: cannot start\n");
        return 1;
    }
    json_t *params = fast ? json_pack("{s:i, s:i}", "fetch_ms", 20, "suggest_ms", 15) : NULL;
    flow_job_opts_t opts = {.id = "recipe-1", .params = params, .on_event = on_event, .on_done = on_done, .data = &app};
    if (flow_job_start(eng, def, json_pack("{s:s}", "ingredient", ingredient), &opts, &app.job) < 0) {
        fprintf(stderr, "recipe: cannot start the job\n");
        return 1;
    }
    uv_pipe_init(&app.loop, &app.in, 0);
    app.in.data = &app;
    uv_pipe_open(&app.in, 0);
    uv_read_start((uv_stream_t *)&app.in, on_alloc, on_read);
    printf("Looking for %s recipes...\n", ingredient);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    json_decref(params);
    json_decref(app.answers);
    flow_def_unref(def);
    flow_engine_close(eng);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    return app.status;
}
