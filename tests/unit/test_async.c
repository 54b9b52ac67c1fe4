/* test_async.c: execs that finish later while other jobs run, execs on the thread pool, cancel,
 * deadlines, step limits, waiting for input, and closing the engine under running jobs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "support/harness.h"

static harness_t h;
static outcome_t out;

static void setup(void) {
    harness_init(&h, NULL);
}

static void teardown(void) {
    outcome_clear(&out);
    harness_close(&h);
}

static flow_def_t *one_node(const char *name, const flow_node_ops_t *ops, void *data, flow_node_t **node) {
    flow_node_t *root, *n;
    flow_def_t *def = def_new(name, &root);
    n = node_new(def, "node", FLOW_NODE, ops, data);
    flow_node_set_start(root, n);
    if (node != NULL)
        *node = n;
    return def;
}

/* ---- an exec that finishes later, while the loop runs other jobs ---- */

static json_t *order;

static void slow_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_sleep(ctx, 30, json_string("slow"));
}

static int note_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    json_array_append_new(order, json_string(flow_def_name(flow_job_def(flow_ctx_job(ctx)))));
    return 0;
}

static const flow_node_ops_t slow_ops = {.exec = slow_exec, .post = note_post};
static const flow_node_ops_t fast_ops = {.post = note_post};

START_TEST(test_an_exec_that_finishes_later_lets_other_jobs_run) {
    order = json_array();
    flow_def_t *slow = one_node("slow", &slow_ops, NULL, NULL);
    flow_def_t *fast = one_node("fast", &fast_ops, NULL, NULL);
    outcome_t fast_out;
    harness_start(&h, slow, NULL, NULL, &out);
    harness_start(&h, fast, NULL, NULL, &fast_out);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_str_eq(dumps(order), "[\"fast\",\"slow\"]");
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    outcome_clear(&fast_out);
    json_decref(order);
    flow_def_unref(slow);
    flow_def_unref(fast);
}
END_TEST

/* ---- the thread pool ---- */

static pthread_t loop_thread;
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;
static int work_started;

static void open_gate(void) {
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* Blocks until the gate opens, so tests control when the thread finishes. */
static void blocking_exec(flow_ctx_t *ctx, json_t *prep_res) {
    pthread_mutex_lock(&gate_lock);
    work_started = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    int on_loop = pthread_equal(pthread_self(), loop_thread);
    json_int_t n = json_integer_value(json_object_get(flow_ctx_params(ctx), "n"));
    flow_done(ctx, json_pack("{s:b, s:I, s:s}", "on_loop_thread", on_loop, "n", n, "input",
                             json_string_value(prep_res)));
}

static int text_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_string("from prep");
    return 0;
}

static int keep_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    json_object_set(shared, "result", exec_res);
    return 0;
}

static const flow_node_ops_t blocking_ops = {.prep = text_prep, .exec = blocking_exec, .post = keep_post};

static void open_gate_cb(uv_timer_t *t) {
    int *ticks = t->data;
    (*ticks)++;
    open_gate();
}

START_TEST(test_a_threaded_exec_runs_off_the_loop_thread_and_the_loop_goes_on) {
    loop_thread = pthread_self();
    gate_open = 0;
    flow_node_t *n;
    flow_def_t *def = one_node("threaded", &blocking_ops, NULL, &n);
    flow_node_set_threaded(n, 1);
    json_t *params = json_pack("{s:i}", "n", 7);
    /* The gate is opened by a timer on the loop: if exec blocked the loop, it would never fire. */
    int ticks = 0;
    uv_timer_t opener;
    uv_timer_init(&h.loop, &opener);
    opener.data = &ticks;
    uv_timer_start(&opener, open_gate_cb, 20, 0);
    harness_run(&h, def, NULL, &(flow_job_opts_t){.params = params}, &out);
    ck_assert_int_eq(ticks, 1);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(dumps(json_object_get(out.shared, "result")),
                     "{\"on_loop_thread\":false,\"n\":7,\"input\":\"from prep\"}");
    uv_close((uv_handle_t *)&opener, NULL);
    uv_run(&h.loop, UV_RUN_NOWAIT); /* opener lives on this stack */
    json_decref(params);
    flow_def_unref(def);
}
END_TEST

static void lazy_threaded_exec(flow_ctx_t *ctx, json_t *prep_res) {
    (void)ctx; /* returns without completing */
}

static const flow_node_ops_t lazy_ops = {.exec = lazy_threaded_exec};

START_TEST(test_a_threaded_exec_must_complete_before_it_returns) {
    flow_node_t *n;
    flow_def_t *def = one_node("lazy", &lazy_ops, NULL, &n);
    flow_node_set_threaded(n, 1);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "threaded exec returned without completing");
    flow_def_unref(def);
}
END_TEST

/* ---- cancel ---- */

static int cancels;

static void count_cancel(flow_ctx_t *ctx) {
    cancels++;
}

static void long_sleep_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_sleep(ctx, 60000, NULL);
}

static const flow_node_ops_t sleeper_ops = {.exec = long_sleep_exec, .post = keep_post, .cancel = count_cancel};


START_TEST(test_cancel_stops_a_sleeping_job) {
    cancels = 0;
    flow_def_t *def = one_node("sleeper", &sleeper_ops, NULL, NULL);
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    /* Let the job reach its sleep. */
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(flow_job_status(job), FLOW_RUNNING);
    ck_assert_str_eq(flow_job_current_node(job), "node");
    ck_assert_int_eq(flow_job_cancel(job), 0);
    ck_assert(!out.done); /* on_done comes later, never from inside flow_job_cancel */
    ck_assert_int_eq(cancels, 1);
    uv_run(&h.loop, UV_RUN_DEFAULT); /* returns at once: no timer is left */
    ck_assert(out.done);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    ck_assert_int_eq(out.error, FLOW_ECANCELED);
    ck_assert_str_eq(out.error_node, "node");
    ck_assert_ptr_null(json_object_get(out.shared, "result"));
    flow_def_unref(def);
}
END_TEST

static void cancel_in_done(flow_job_t *job, void *data) {
    int *rc = data;
    *rc = flow_job_cancel(job);
}

START_TEST(test_cancel_of_an_ended_job_is_refused) {
    flow_def_t *def = one_node("ended", &fast_ops, NULL, NULL);
    order = json_array();
    int rc = 0;
    flow_job_opts_t opts = {.on_done = cancel_in_done, .data = &rc};
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &opts, NULL), 0);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(rc, FLOW_ESTATE);
    json_decref(order);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_cancel_abandons_thread_pool_work_safely) {
    gate_open = 0;
    work_started = 0;
    loop_thread = pthread_self();
    flow_node_t *n;
    flow_def_t *def = one_node("abandon", &blocking_ops, NULL, &n);
    flow_node_set_threaded(n, 1);
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    pthread_mutex_lock(&gate_lock);
    while (!work_started)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    ck_assert_int_eq(flow_job_cancel(job), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    /* The thread is still inside exec; let it finish: its result is dropped, nothing leaks. */
    open_gate();
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_ptr_null(json_object_get(out.shared, "result"));
    flow_def_unref(def);
}
END_TEST

/* ---- time and step limits ---- */

START_TEST(test_a_job_past_its_deadline_fails) {
    cancels = 0;
    flow_def_t *def = one_node("late", &sleeper_ops, NULL, NULL);
    harness_run(&h, def, NULL, &(flow_job_opts_t){.deadline_ms = 20}, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EDEADLINE);
    ck_assert_str_eq(out.error_message, "job exceeded its deadline of 20 ms");
    ck_assert_str_eq(out.error_node, "node");
    ck_assert_int_eq(cancels, 1);
    flow_def_unref(def);
}
END_TEST

/* A sleep lasts at least its time on the clock the history uses (uv_hrtime), though libuv's timers
 * run on the loop's clock, cached in whole milliseconds (and coarse where the kernel's coarse clock
 * is fine enough). An idle handle keeps the loop busy, as other jobs' I/O would: the loop then never
 * sleeps past a timer, and short naps show any difference between the two clocks at once. */
static void busy(uv_idle_t *idle) {
    (void)idle;
}

static void nap_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_sleep(ctx, 1 + json_integer_value(prep_res) % 3, NULL);
}

static int nap_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_incref(json_object_get(shared, "n"));
    return 0;
}

static int nap_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                    const char **action) {
    json_int_t n = json_integer_value(prep_res) + 1;
    json_object_set_new(shared, "n", json_integer(n));
    *action = n < 60 ? "again" : "done";
    return 0;
}

static const flow_node_ops_t nap_ops = {.prep = nap_prep, .exec = nap_exec, .post = nap_post};

START_TEST(test_a_sleep_lasts_its_time_on_the_history_clock) {
    flow_node_t *n;
    flow_def_t *def = one_node("naps", &nap_ops, NULL, &n);
    flow_node_next(n, "again", n);
    flow_node_next(n, "done", NULL);
    static uv_idle_t idle; /* closed by the loop after the test: not on the stack */
    uv_idle_init(&h.loop, &idle);
    uv_idle_start(&idle, busy);
    uv_unref((uv_handle_t *)&idle);
    harness_run(&h, def, json_pack("{s:i}", "n", 0), NULL, &out);
    uv_close((uv_handle_t *)&idle, NULL);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(out.history_count, 60);
    for (size_t i = 0; i < 60; i++) {
        uint64_t ms = 1 + i % 3;
        const flow_step_t *st = &out.history[i];
        ck_assert_msg(st->end_us - st->start_us >= ms * 1000, "step %zu: %llu us for a %llu ms nap", i,
                      (unsigned long long)(st->end_us - st->start_us), (unsigned long long)ms);
    }
    flow_def_unref(def);
}
END_TEST

static int forever_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                        const char **action) {
    *action = "again";
    return 0;
}

static const flow_node_ops_t forever_ops = {.post = forever_post};

START_TEST(test_a_runaway_loop_stops_at_the_step_limit) {
    flow_node_t *n;
    flow_def_t *def = one_node("runaway", &forever_ops, NULL, &n);
    flow_node_next(n, "again", n);
    harness_run(&h, def, NULL, &(flow_job_opts_t){.max_steps = 1000}, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EMAXSTEPS);
    ck_assert_str_eq(out.error_message, "job stopped after 1000 steps (max_steps)");
    ck_assert_str_eq(out.error_node, "node");
    ck_assert_uint_eq(out.steps, 1000);
    flow_def_unref(def);
}
END_TEST

/* ---- waiting for input ---- */

static void ask_exec(flow_ctx_t *ctx, json_t *prep_res) {
    json_t *req = json_pack("{s:s}", "prompt", "Accept this recipe? (y/n)");
    flow_await_input(ctx, req);
    json_decref(req);
}

static int yes_or_no(flow_ctx_t *ctx, json_t *value) {
    const char *s = json_string_value(value);
    if (s == NULL || (strcmp(s, "y") != 0 && strcmp(s, "n") != 0))
        return flow_error(ctx, FLOW_EINVAL, "answer y or n");
    return 0;
}

static int answer_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                       const char **action) {
    json_object_set(shared, "answer", exec_res);
    *action = strcmp(json_string_value(exec_res), "y") == 0 ? "accept" : "retry";
    return 0;
}

static const flow_node_ops_t ask_ops = {.exec = ask_exec, .input = yes_or_no, .post = answer_post};

START_TEST(test_a_job_waits_for_input_and_resumes_with_the_answer) {
    flow_def_t *def = one_node("ask", &ask_ops, NULL, NULL);
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    flow_error_t err = {0};
    json_t *yes = json_string("y");
    ck_assert_int_eq(flow_job_input(job, yes, &err), FLOW_ESTATE); /* not waiting yet */
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(flow_job_status(job), FLOW_WAITING);
    ck_assert_str_eq(dumps(flow_job_waiting_for(job)), "{\"prompt\":\"Accept this recipe? (y/n)\"}");
    json_t *maybe = json_string("maybe");
    ck_assert_int_eq(flow_job_input(job, maybe, &err), FLOW_EINVAL);
    ck_assert_str_eq(err.message, "answer y or n");
    flow_error_clear(&err);
    ck_assert_int_eq(flow_job_status(job), FLOW_WAITING);
    ck_assert_int_eq(flow_job_input(job, yes, &err), 0);
    ck_assert(!out.done);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "answer")), "y");
    ck_assert_str_eq(out.last_action, "accept");
    ck_assert_str_eq(dumps(out.events),
                     "[\"status:running\",\"status:waiting\",\"status:running\",\"step:node:accept\","
                     "\"status:succeeded\"]");
    json_decref(yes);
    json_decref(maybe);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_cancel_of_a_waiting_job) {
    cancels = 0;
    flow_def_t *def = one_node("ask-cancel", &ask_ops, NULL, NULL);
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(flow_job_status(job), FLOW_WAITING);
    ck_assert_int_eq(flow_job_cancel(job), 0);
    ck_assert_ptr_null(flow_job_waiting_for(job));
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    flow_def_unref(def);
}
END_TEST

/* ---- the engine ---- */

START_TEST(test_closing_the_engine_cancels_its_jobs) {
    flow_def_t *def = one_node("close", &sleeper_ops, NULL, NULL);
    harness_start(&h, def, NULL, NULL, &out);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    flow_engine_close(h.eng);
    ck_assert(out.done);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    ck_assert_str_eq(out.error_message, "the engine was closed");
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
    flow_def_unref(def);
    outcome_clear(&out);
    /* The fixture's teardown closes a fresh engine. */
    harness_init(&h, NULL);
}
END_TEST

START_TEST(test_bad_arguments_are_refused_and_the_shared_store_is_taken) {
    flow_def_t *def = one_node("bad", &fast_ops, NULL, NULL);
    ck_assert_int_eq(flow_job_start(h.eng, def, json_array(), NULL, NULL), FLOW_EINVAL);
    ck_assert_int_eq(flow_job_start(h.eng, NULL, json_object(), NULL, NULL), FLOW_EINVAL);
    flow_def_t *rootless;
    flow_def_new("rootless", &rootless);
    ck_assert_int_eq(flow_job_start(h.eng, rootless, json_object(), NULL, NULL), FLOW_EINVAL);
    json_t *params = json_string("not an object");
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &(flow_job_opts_t){.params = params}, NULL), FLOW_EINVAL);
    ck_assert_uint_eq(flow_engine_job_count(h.eng), 0);
    json_decref(params);
    flow_def_unref(rootless);
    flow_def_unref(def);
}
END_TEST

/* Drain: the step in flight finishes (its post runs), no further step starts, and a job waiting
 * for a person does not count as busy. */
static void short_sleep_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_sleep(ctx, 20, NULL);
}

static int count_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                      const char **action) {
    json_object_set_new(shared, "posts", json_integer(json_integer_value(json_object_get(shared, "posts")) + 1));
    *action = "again";
    return 0;
}

static const flow_node_ops_t step_ops = {.exec = short_sleep_exec, .post = count_post};

START_TEST(test_drain_lets_steps_in_flight_finish_and_starts_no_more) {
    flow_node_t *n;
    flow_def_t *def = one_node("drain", &step_ops, NULL, &n);
    flow_node_next(n, "again", n);
    flow_def_t *ask = one_node("drain-ask", &ask_ops, NULL, NULL);
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    outcome_t ask_out;
    harness_start(&h, ask, NULL, NULL, &ask_out);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_uint_eq(flow_engine_busy(h.eng), 1); /* the sleeper; the asker only waits */
    flow_engine_drain(h.eng);
    while (flow_engine_busy(h.eng) > 0)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(json_integer_value(json_object_get(flow_job_shared(job), "posts")), 1);
    ck_assert_int_eq(flow_job_status(job), FLOW_RUNNING);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(json_integer_value(json_object_get(flow_job_shared(job), "posts")), 1);
    flow_engine_close(h.eng); /* what is left is canceled */
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    ck_assert_int_eq(ask_out.status, FLOW_CANCELED);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
    outcome_clear(&ask_out);
    flow_def_unref(def);
    flow_def_unref(ask);
    harness_init(&h, NULL);
}
END_TEST

/* Hold: while the engine is held no job starts a step (a looping job stops at a step boundary, a
 * sleeper's post runs when its timer fires but its next step waits), a job canceled meanwhile still
 * ends, and once let go the steps go on. */
static const flow_node_ops_t count_ops = {.post = count_post};

static json_int_t posts_of(flow_job_t *job) {
    return json_integer_value(json_object_get(flow_job_shared(job), "posts"));
}

START_TEST(test_a_held_engine_starts_no_step_until_let_go) {
    flow_node_t *n, *m;
    flow_def_t *loop = one_node("hold-loop", &count_ops, NULL, &n);
    flow_node_next(n, "again", n);
    flow_def_t *sleeper = one_node("hold-sleep", &step_ops, NULL, &m);
    flow_node_next(m, "again", m);
    flow_def_t *ask = one_node("hold-ask", &ask_ops, NULL, NULL);
    flow_job_t *job = harness_start(&h, loop, NULL, &(flow_job_opts_t){.max_steps = 100000000}, &out);
    outcome_t sleep_out, ask_out;
    flow_job_t *sleeping = harness_start(&h, sleeper, NULL, NULL, &sleep_out);
    flow_job_t *asking = harness_start(&h, ask, NULL, NULL, &ask_out);
    while (posts_of(job) < 1000)
        uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(flow_engine_held(h.eng), 0);
    flow_engine_hold(h.eng, 1);
    ck_assert_int_eq(flow_engine_held(h.eng), 1);
    json_int_t at = posts_of(job), slept = posts_of(sleeping);
    uint64_t until = uv_now(&h.loop) + 100; /* five of the sleeper's 20 ms naps */
    while (uv_now(&h.loop) < until) {
        uv_run(&h.loop, UV_RUN_NOWAIT);
        uv_update_time(&h.loop);
    }
    /* the looping job ran out its turn at most; the sleeper's nap in flight ended, no other began */
    ck_assert_int_le(posts_of(job), at + 256);
    json_int_t parked = posts_of(job);
    ck_assert_int_le(posts_of(sleeping), slept + 1);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(posts_of(job), parked);
    ck_assert_int_eq(flow_job_status(job), FLOW_RUNNING);
    flow_job_cancel(asking); /* ends while held */
    while (!ask_out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(ask_out.status, FLOW_CANCELED);
    flow_engine_hold(h.eng, 0);
    while (posts_of(job) < parked + 1000 || posts_of(sleeping) < slept + 3)
        uv_run(&h.loop, UV_RUN_ONCE);
    flow_job_cancel(job);
    flow_job_cancel(sleeping);
    while (!out.done || !sleep_out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    ck_assert_int_eq(sleep_out.status, FLOW_CANCELED);
    outcome_clear(&sleep_out);
    outcome_clear(&ask_out);
    flow_def_unref(loop);
    flow_def_unref(sleeper);
    flow_def_unref(ask);
}
END_TEST

/* ---- resuming after a stop ---- */

static int note_retry_events(flow_job_t *job, const flow_event_t *ev, json_t *log);

static void resume_event(flow_job_t *job, const flow_event_t *ev, void *data) {
    note_retry_events(job, ev, data);
}

static int note_retry_events(flow_job_t *job, const flow_event_t *ev, json_t *log) {
    if (ev->type == FLOW_EVENT_RETRY)
        json_array_append_new(log, json_sprintf("retry %s #%u: %s", ev->node, ev->attempt, ev->error->message));
    else if (ev->type == FLOW_EVENT_STEP)
        json_array_append_new(log, json_sprintf("step %llu %s -> %s", (unsigned long long)ev->step->seq,
                                                ev->step->node, ev->step->next ? ev->step->next : "end"));
    return 0;
}

static void flaky_exec(flow_ctx_t *ctx, json_t *prep_res) {
    if (flow_ctx_attempt(ctx) < 3)
        flow_fail(ctx, FLOW_EIO, "try %u failed", flow_ctx_attempt(ctx));
    else
        flow_done(ctx, NULL);
}

static const flow_node_ops_t flaky4_ops = {.exec = flaky_exec};

START_TEST(test_a_job_resumes_at_a_node_with_its_tries_and_steps) {
    flow_node_t *root;
    flow_def_t *def = def_new("resume", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, NULL, NULL);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &flaky4_ops, NULL);
    flow_node_t *c = node_new(def, "c", FLOW_NODE, NULL, NULL);
    flow_node_next(a, NULL, b);
    flow_node_next(b, NULL, c);
    flow_node_set_retry(b, 4, 0);
    flow_node_set_start(root, a);
    json_t *log = json_array();
    /* from the start: a, then b fails three times before its fourth try works */
    flow_job_opts_t opts = {.on_event = resume_event, .data = log};
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &opts, NULL), 0);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_str_eq(dumps(log), "[\"step 1 a -> b\",\"retry b #0: try 0 failed\",\"retry b #1: try 1 failed\","
                                 "\"retry b #2: try 2 failed\",\"step 2 b -> c\",\"step 3 c -> end\"]");
    json_array_clear(log);
    /* resumed at b after two failed tries and one step: two tries are left, and seq goes on */
    opts.resume_node = "b";
    opts.resume_tries = 2;
    opts.resume_steps = 1;
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &opts, NULL), 0);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ck_assert_str_eq(dumps(log), "[\"retry b #2: try 2 failed\",\"step 2 b -> c\",\"step 3 c -> end\"]");
    opts.resume_node = "nowhere";
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &opts, NULL), FLOW_ENOTFOUND);
    json_decref(log);
    flow_def_unref(def);
}
END_TEST

/* Fails its first four tries; the first says when to come back (as a 429 with Retry-After would). */
static void busy_exec(flow_ctx_t *ctx, json_t *prep_res) {
    unsigned a = flow_ctx_attempt(ctx);
    if (a == 0)
        ck_assert_int_eq(flow_retry_after(ctx, 18), 0);
    if (a < 4)
        flow_fail(ctx, FLOW_EIO, "busy %u", a);
    else
        flow_done(ctx, NULL);
}

static const flow_node_ops_t busy_ops = {.exec = busy_exec};

static void note_waits(flow_job_t *job, const flow_event_t *ev, void *data) {
    json_t *log = data;
    if (ev->type == FLOW_EVENT_RETRY)
        json_array_append_new(json_array_get(log, 0), json_integer((json_int_t)ev->wait_ms));
    else if (ev->type == FLOW_EVENT_STEP && ev->step->retries != NULL)
        json_array_append(log, ev->step->retries);
}

START_TEST(test_retries_back_off_up_to_max_wait_with_jitter_and_retry_after) {
    flow_node_t *root;
    flow_def_t *def = def_new("backoff", &root);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &busy_ops, NULL);
    flow_node_set_start(root, b);
    ck_assert_int_eq(flow_node_set_retry(b, 5, 10), 0);
    ck_assert_int_eq(flow_node_set_backoff(b, 0.5, 0, FLOW_JITTER_NONE), FLOW_EINVAL);
    ck_assert_int_eq(flow_node_set_backoff(b, 2, 0, (flow_jitter_t)7), FLOW_EINVAL);
    ck_assert_int_eq(flow_node_set_backoff(b, 2, 25, FLOW_JITTER_NONE), 0);
    json_t *log = json_pack("[[]]");
    flow_job_opts_t opts = {.on_event = note_waits, .data = log};
    uint64_t t0 = uv_hrtime();
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &opts, NULL), 0);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    /* 10 raised to the Retry-After's 18, then 20, 40 capped to 25, 80 capped to 25 */
    ck_assert_str_eq(dumps(json_array_get(log, 0)), "[18,20,25,25]");
    ck_assert_uint_ge((uv_hrtime() - t0) / 1000000, 18 + 20 + 25 + 25);
    json_t *retries = json_array_get(log, 1);
    ck_assert_uint_eq(json_array_size(retries), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(retries, 3), "try")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(retries, 3), "wait_ms")), 25);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(retries, 0), "error"),
                                                       "message")), "busy 0");
    json_decref(log);
    flow_def_unref(def);

    /* full jitter: each wait a random part of 200 ms (a Retry-After still sets the least) */
    def = def_new("jitter", &root);
    b = node_new(def, "b", FLOW_NODE, &busy_ops, NULL);
    flow_node_set_start(root, b);
    flow_node_set_retry(b, 5, 200);
    ck_assert_int_eq(flow_node_set_backoff(b, 1, 0, FLOW_JITTER_FULL), 0);
    log = json_pack("[[]]");
    opts.data = log;
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &opts, NULL), 0);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    json_t *waits = json_array_get(log, 0);
    ck_assert_uint_eq(json_array_size(waits), 4);
    ck_assert_int_ge(json_integer_value(json_array_get(waits, 0)), 18);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_le(json_integer_value(json_array_get(waits, i)), 200);
    json_decref(log);
    flow_def_unref(def);
}
END_TEST

static Suite *async_suite(void) {
    Suite *s = suite_create("async");
    TCase *tc = tcase_create("async");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_an_exec_that_finishes_later_lets_other_jobs_run);
    tcase_add_test(tc, test_retries_back_off_up_to_max_wait_with_jitter_and_retry_after);
    tcase_add_test(tc, test_a_threaded_exec_runs_off_the_loop_thread_and_the_loop_goes_on);
    tcase_add_test(tc, test_a_threaded_exec_must_complete_before_it_returns);
    tcase_add_test(tc, test_cancel_stops_a_sleeping_job);
    tcase_add_test(tc, test_cancel_of_an_ended_job_is_refused);
    tcase_add_test(tc, test_cancel_abandons_thread_pool_work_safely);
    tcase_add_test(tc, test_a_job_past_its_deadline_fails);
    tcase_add_test(tc, test_a_runaway_loop_stops_at_the_step_limit);
    tcase_add_test(tc, test_a_sleep_lasts_its_time_on_the_history_clock);
    tcase_add_test(tc, test_a_job_waits_for_input_and_resumes_with_the_answer);
    tcase_add_test(tc, test_cancel_of_a_waiting_job);
    tcase_add_test(tc, test_closing_the_engine_cancels_its_jobs);
    tcase_add_test(tc, test_bad_arguments_are_refused_and_the_shared_store_is_taken);
    tcase_add_test(tc, test_drain_lets_steps_in_flight_finish_and_starts_no_more);
    tcase_add_test(tc, test_a_held_engine_starts_no_step_until_let_go);
    tcase_add_test(tc, test_a_job_resumes_at_a_node_with_its_tries_and_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(async_suite());
}
