/* test_outbound.c: what http and llm nodes may reach (issue 11, "What nodes may reach"), against a
 * running flowd. Every spelling of loopback is refused and never connected, the shipped scraper
 * flow with job data alone fetches nothing from loopback, link-local and cloud metadata addresses
 * are refused before a socket exists, an allow entry opens exactly its address and port (IPv6 too
 * where the machine has ::1), a host-name entry only its name, a flow's own "outbound" list only
 * its nodes, the LLM endpoint only llm nodes, and --deny-outbound narrows what flows may open.
 *
 * Everything listens on loopback. The counting listeners are sockets nobody serves: a connection
 * flowd made would wait in their backlog, so accepting what is there afterwards counts every
 * connection ever made. The test of link-local addresses first checks that loopback is refused:
 * a flowd that connected to loopback would connect there too, and no packet may leave this host. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e.h"
#include "support/mock.h"

static e2e_server_t srv;
static mock_t *mock;
static char dir[64];

/* One http node that fetches shared.url; three tries a minute apart, so that a retry would show as
 * a job still running when the test looks. */
static const char *get_flow =
    "{\"name\": \"get\", \"start\": \"call\", \"nodes\": {\"call\": {\"type\": \"http\","
    " \"params\": {\"url\": \"$shared/url\"}, \"out\": \"/got\", \"max_retries\": 3,"
    " \"wait\": 60000, \"timeout\": 10000}}}";

static const char *ask_flow =
    "{\"name\": \"ask\", \"start\": \"q\", \"nodes\": {\"q\": {\"type\": \"llm\","
    " \"params\": {\"prompt\": \"hello\"}, \"out\": \"/answer\"}}}";

static void setup(void) {
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    snprintf(dir, sizeof dir, "/tmp/flowd-outbound-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    e2e_write_file(dir, "get.json", get_flow);
    e2e_write_file(dir, "ask.json", ask_flow);
}

static void teardown(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/get.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ask.json", dir);
    unlink(path);
    rmdir(dir);
    mock_stop(mock);
    mock = NULL;
}

static void stop(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

static uint64_t mock_connections(void) {
    mock_stats_t st;
    mock_stats(mock, &st);
    return st.connections;
}

/* "127.0.0.1:PORT" of the mock, in a static buffer. */
static const char *mock_addr(void) {
    static char buf[32];
    snprintf(buf, sizeof buf, "127.0.0.1:%u", (unsigned)mock_port(mock));
    return buf;
}

/* ---- listeners that count ---- */

typedef struct listener {
    int fd;
    unsigned port;
    int accepted;
} listener_t;

/* ip is "127.0.0.1" or "::1"; -1 when it cannot be bound (no ::1 on this machine). */
static int listener_open(listener_t *l, const char *ip) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int v6 = strchr(ip, ':') != NULL;
    memset(l, 0, sizeof *l);
    memset(&ss, 0, sizeof ss);
    l->fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l->fd, 0);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    if (bind(l->fd, (struct sockaddr *)&ss,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0 ||
        listen(l->fd, 64) != 0) {
        close(l->fd);
        l->fd = -1;
        return -1;
    }
    ck_assert_int_eq(getsockname(l->fd, (struct sockaddr *)&ss, &len), 0);
    l->port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* Every connection made to it so far (the backlog holds them even though nobody served them). */
static int listener_accepted(listener_t *l) {
    for (;;) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            return l->accepted;
        close(c);
        l->accepted++;
    }
}

/* Waits up to timeout_ms for one connection, reads its request head and answers 200 {"ok":true}. */
static void listener_serve_one(listener_t *l, unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int c = -1;
    while (c < 0) {
        ck_assert_msg(e2e_now_ms() < deadline, "no connection came to port %u", l->port);
        poll(&p, 1, 50);
        c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    }
    l->accepted++;
    char head[8192];
    size_t n = 0;
    struct pollfd q = {.fd = c, .events = POLLIN};
    while (n < sizeof head - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        ck_assert_msg(e2e_now_ms() < deadline, "the request head did not come");
        if (poll(&q, 1, 50) <= 0)
            continue;
        ssize_t got = read(c, head + n, sizeof head - 1 - n);
        ck_assert_int_gt(got, 0);
        n += (size_t)got;
    }
    static const char answer[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        "Connection: close\r\n\r\n{\"ok\":true}";
    ck_assert_int_eq(write(c, answer, sizeof answer - 1), (ssize_t)(sizeof answer - 1));
    close(c);
}

static void listener_close(listener_t *l) {
    if (l->fd >= 0)
        close(l->fd);
}

/* ---- jobs ---- */

/* Starts a job (body: what POST /v1/jobs gets); returns its id (static buffer). */
static const char *start(const char *body) {
    static char id[64];
    json_t *job = e2e_start_job(&srv, body);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    return id;
}

/* Starts a job of flow get on url; returns its id (static buffer). */
static const char *start_get(const char *url) {
    char body[512];
    snprintf(body, sizeof body, "{\"flow\": \"get\", \"shared\": {\"url\": \"%s\"}}", url);
    return start(body);
}

/* The job's end (new reference): a refusal ends it at once, without retries. */
static json_t *ended(const char *id) {
    json_t *job = e2e_wait_status(&srv, id, NULL, 20000);
    ck_assert_msg(json_object_get(job, "finished_at") != NULL, "job %s did not end", id);
    return job;
}

static void assert_refused_job(json_t *job, const char *url, const char *words) {
    json_t *err = json_object_get(job, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *message = json_string_value(json_object_get(err, "message"));
    ck_assert_msg(strcmp(json_string_value(json_object_get(job, "status")), "failed") == 0 &&
                      code != NULL && strcmp(code, "outbound_refused") == 0,
                  "%s: not refused: %s", url, json_dumps(job, JSON_COMPACT));
    ck_assert_msg(strstr(message, words) != NULL, "%s: the message does not say '%s': %s", url,
                  words, message);
    ck_assert_msg(strstr(message, "(allow it with --allow-outbound ") != NULL, "%s: %s", url,
                  message);
}

/* GET url through flow get: refused with words in the message, tried once. */
static void refused(const char *url, const char *words) {
    const char *id = start_get(url);
    json_t *job = ended(id);
    assert_refused_job(job, url, words);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *h = e2e_get_json(&srv, path);
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_array_get(json_object_get(h, "steps"), 0), "tries")),
                     1);
    json_decref(h);
    json_decref(job);
}

static void assert_succeeded(const char *id, const char *what) {
    json_t *job = ended(id);
    ck_assert_msg(strcmp(json_string_value(json_object_get(job, "status")), "succeeded") == 0,
                  "%s: %s", what, json_dumps(job, JSON_COMPACT));
    json_decref(job);
}

/* GET url through flow get: it succeeded (a 2xx). */
static void reached(const char *url) {
    assert_succeeded(start_get(url), url);
}

static const char *const json_header[] = {"Content-Type: application/json", NULL};

/* PUT /v1/flows/NAME of flow get's node with the mock's address in the document's own "outbound"
 * list; *r gets the answer (free it). */
static void put_allowing_mock(const char *name, e2e_resp_t *r) {
    char doc[1024], path[128];
    snprintf(doc, sizeof doc,
             "{\"name\": \"%s\", \"outbound\": {\"allow\": [\"%s\"]}, \"start\": \"call\","
             " \"nodes\": {\"call\": {\"type\": \"http\", \"params\": {\"url\": \"$shared/url\"},"
             " \"out\": \"/got\"}}}",
             name, mock_addr());
    snprintf(path, sizeof path, "/v1/flows/%s", name);
    e2e_request(&srv, "PUT", path, json_header, doc, r);
}

/* ---- the tests ---- */

START_TEST(test_every_spelling_of_loopback_is_refused_and_never_connected) {
    static const struct {
        const char *url; /* %u: the mock's port */
        const char *words;
    } cases[] = {
        {"http://127.0.0.1:%u/page/1", "127.0.0.1:%u refused: loopback"},
        {"http://127.1:%u/page/1", "127.0.0.1:%u refused: loopback"},
        {"http://0x7f000001:%u/page/1", "127.0.0.1:%u refused: loopback"},
        {"http://2130706433:%u/page/1", "127.0.0.1:%u refused: loopback"},
        {"http://017700000001:%u/page/1", "127.0.0.1:%u refused: loopback"},
        {"http://[::ffff:127.0.0.1]:%u/page/1", "127.0.0.1:%u refused: loopback"},
        {"http://[::1]:%u/page/1", "[::1]:%u refused: loopback"},
        {"http://0.0.0.0:%u/page/1", "0.0.0.0:%u refused: unspecified"},
        {"http://[::]:%u/page/1", "[::]:%u refused: unspecified"},
        {"http://localhost:%u/page/1",
         "localhost:%u refused: localhost resolves to a loopback address"},
        /* a name mapped to 127.0.0.1 with no /etc/hosts entry: curl resolves *.localhost itself */
        {"http://recipes.localhost:%u/page/1", "recipes.localhost resolves to a loopback address"},
    };
    listener_t v6;
    int have_v6 = listener_open(&v6, "::1") == 0;
    e2e_start(&srv, "--flows", dir, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char url[128], words[128];
        snprintf(url, sizeof url, cases[i].url, (unsigned)mock_port(mock));
        snprintf(words, sizeof words, cases[i].words, (unsigned)mock_port(mock));
        refused(url, words);
    }
    if (have_v6) {
        char url[128];
        snprintf(url, sizeof url, "http://[::1]:%u/", v6.port);
        refused(url, "refused: loopback");
        ck_assert_int_eq(listener_accepted(&v6), 0);
        listener_close(&v6);
    }
    ck_assert_uint_eq(mock_connections(), 0);
    stop();
}
END_TEST

START_TEST(test_the_scraper_with_job_data_alone_fetches_nothing_from_loopback) {
    char body[1024];
    unsigned p = mock_port(mock);
    e2e_start(&srv, "--flows", "examples/flows", NULL);
    snprintf(body, sizeof body,
             "{\"flow\": \"scraper\", \"shared\": {\"urls\": ["
             "\"http://127.0.0.1:%u/page/1\", \"http://127.1:%u/page/2\","
             " \"http://localhost:%u/page/3\", \"http://[::ffff:127.0.0.1]:%u/page/4\","
             " \"http://0x7f000001:%u/\"]}}",
             p, p, p, p, p);
    const char *id = start(body);
    json_t *end = ended(id);
    assert_refused_job(end, "scraper", "refused: ");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&srv, path);
    ck_assert_ptr_null(json_object_get(shared, "pages"));
    ck_assert_uint_eq(mock_connections(), 0);
    json_decref(shared);
    json_decref(end);
    stop();
}
END_TEST

START_TEST(test_link_local_and_metadata_are_refused_before_connecting) {
    char url[128];
    e2e_start(&srv, "--flows", dir, NULL);
    /* the guard: loopback is refused, so this flowd has the policy and sends nothing below */
    snprintf(url, sizeof url, "http://%s/page/1", mock_addr());
    refused(url, "refused: loopback");
    ck_assert_uint_eq(mock_connections(), 0);
    /* the open-socket callback refuses them: no socket, so no SYN */
    refused("http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "outbound connection to 169.254.169.254:80 refused: link-local (allow it with "
            "--allow-outbound 169.254.169.254:80)");
    refused("http://[fe80::1]:8080/", "outbound connection to [fe80::1]:8080 refused: link-local");
    refused("http://[::ffff:169.254.169.254]/", "169.254.169.254:80 refused: link-local");
    refused("http://[64:ff9b::a9fe:a9fe]/", "refused: link-local inside 64:ff9b::/96");
    refused("http://10.0.0.1:9/", "10.0.0.1:9 refused: private");
    stop();
}
END_TEST

START_TEST(test_an_allow_entry_lets_exactly_that_address_and_port_through) {
    listener_t other, v6;
    int have_v6 = listener_open(&v6, "::1") == 0;
    char url[128];
    ck_assert_int_eq(listener_open(&other, "127.0.0.1"), 0);
    e2e_start(&srv, "--flows", dir, "--allow-outbound", mock_addr(), NULL);
    snprintf(url, sizeof url, "http://%s/page/1", mock_addr());
    reached(url);
    snprintf(url, sizeof url, "http://localhost:%u/page/1", (unsigned)mock_port(mock));
    reached(url); /* ::1 is refused, then 127.0.0.1 is allowed */
    snprintf(url, sizeof url, "http://127.1:%u/page/1", (unsigned)mock_port(mock));
    reached(url);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", other.port);
    refused(url, "refused: loopback");
    snprintf(url, sizeof url, "http://127.0.0.2:%u/page/1", (unsigned)mock_port(mock));
    refused(url, "127.0.0.2");
    if (have_v6) {
        snprintf(url, sizeof url, "http://[::1]:%u/", v6.port);
        refused(url, "refused: loopback");
        ck_assert_int_eq(listener_accepted(&v6), 0);
        listener_close(&v6);
    }
    ck_assert_int_eq(listener_accepted(&other), 0);
    listener_close(&other);
    stop();
}
END_TEST

START_TEST(test_ipv6_loopback_is_reached_only_on_the_allowed_port) {
    listener_t v6, v6b;
    char allow[64], url[128];
    if (listener_open(&v6, "::1") != 0) {
        fprintf(stderr,
                "test_ipv6_loopback_is_reached_only_on_the_allowed_port: no ::1 here, skipped\n");
        return;
    }
    ck_assert_int_eq(listener_open(&v6b, "::1"), 0);
    snprintf(allow, sizeof allow, "[::1]:%u", v6.port);
    e2e_start(&srv, "--flows", dir, "--allow-outbound", allow, NULL);
    snprintf(url, sizeof url, "http://[::1]:%u/v6", v6.port);
    const char *id = start_get(url);
    listener_serve_one(&v6, 20000);
    assert_succeeded(id, url);
    snprintf(url, sizeof url, "http://[::1]:%u/v6", v6b.port);
    refused(url, "refused: loopback");
    ck_assert_int_eq(listener_accepted(&v6b), 0);
    ck_assert_int_eq(listener_accepted(&v6), 1);
    listener_close(&v6);
    listener_close(&v6b);
    stop();
}
END_TEST

/* A host-name entry allows what that name resolves to, for that name only. */
START_TEST(test_a_host_name_entry_allows_that_name_only) {
    char allow[64], url[128];
    snprintf(allow, sizeof allow, "recipes.localhost:%u", (unsigned)mock_port(mock));
    e2e_start(&srv, "--flows", dir, "--allow-outbound", allow, NULL);
    snprintf(url, sizeof url, "http://recipes.localhost:%u/page/1", (unsigned)mock_port(mock));
    reached(url);
    snprintf(url, sizeof url, "http://other.localhost:%u/page/1", (unsigned)mock_port(mock));
    refused(url, "outbound connection to other.localhost:");
    json_t *job = ended(start_get(url));
    /* a name is named, never the address it resolved to */
    ck_assert_ptr_null(strstr(
        json_string_value(json_object_get(json_object_get(job, "error"), "message")), "127.0.0.1"));
    json_decref(job);
    snprintf(url, sizeof url, "http://%s/page/1", mock_addr());
    refused(url, "refused: loopback");
    ck_assert_uint_eq(mock_connections(), 1);
    stop();
}
END_TEST

/* A flow's own "outbound" list lets its nodes through, and only its nodes; a bad entry is a 422
 * with its place; --flow-outbound off refuses such flows. */
START_TEST(test_a_flows_own_allow_list_applies_to_its_nodes_only) {
    char url[128];
    e2e_resp_t r;
    e2e_start(&srv, "--flows", dir, NULL);
    put_allowing_mock("mine", &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    e2e_resp_free(&r);
    snprintf(url, sizeof url, "http://%s/page/1", mock_addr());
    char body[512];
    snprintf(body, sizeof body, "{\"flow\": \"mine\", \"shared\": {\"url\": \"%s\"}}", url);
    assert_succeeded(start(body), "flow mine");
    refused(url, "refused: loopback"); /* flow get has no list of its own */
    ck_assert_uint_eq(mock_connections(), 1);

    e2e_request(&srv, "PUT", "/v1/flows/bad", json_header,
                "{\"name\": \"bad\", \"outbound\": {\"allow\": [\"127.1:80\"]}, \"start\": \"a\","
                " \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
                &r);
    e2e_assert_error(&r, 422, "invalid_flow", NULL);
    json_t *problem =
        json_array_get(json_object_get(json_object_get(r.json, "error"), "problems"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(problem, "where")), "/outbound/allow/0");
    ck_assert_str_eq(
        json_string_value(json_object_get(problem, "message")),
        "'127.1:80': write an IPv4 address as four decimal numbers, such as 127.0.0.1");
    e2e_resp_free(&r);
    stop();

    e2e_start(&srv, "--flows", dir, "--flow-outbound", "off", NULL);
    put_allowing_mock("mine", &r);
    e2e_assert_error(&r, 422, "invalid_flow", NULL);
    ck_assert_ptr_nonnull(strstr(r.body, "--flow-outbound off"));
    e2e_resp_free(&r);
    stop();
}
END_TEST

/* The LLM endpoint is allowed by configuration (--llm-base-url), for llm nodes only. */
START_TEST(test_the_llm_endpoint_is_allowed_for_llm_nodes_only) {
    char llm[128], url[128];
    snprintf(llm, sizeof llm, "http://%s/v1", mock_addr());
    e2e_start(&srv, "--flows", dir, "--llm-base-url", llm, "--llm-model", "mock", NULL);
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, "llm nodes also ") != NULL, "%s", log);
    free(log);
    assert_succeeded(start("{\"flow\": \"ask\"}"), "flow ask");
    snprintf(url, sizeof url, "http://%s/v1/chat/completions", mock_addr());
    refused(url, "refused: loopback");
    ck_assert_uint_eq(mock_connections(), 1);
    stop();
}
END_TEST

/* --deny-outbound narrows what a flow's own list may open; --allow-outbound wins over it. */
START_TEST(test_the_deny_list_beats_a_flows_list_but_not_the_operators) {
    char url[128];
    e2e_resp_t r;
    e2e_start(&srv, "--flows", dir, "--deny-outbound", "127.0.0.0/8", NULL);
    put_allowing_mock("get", &r); /* flow get, now with the mock in its own list */
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    e2e_resp_free(&r);
    snprintf(url, sizeof url, "http://%s/page/1", mock_addr());
    refused(url, "refused: --deny-outbound 127.0.0.0/8");
    stop();
    e2e_start(&srv, "--flows", dir, "--deny-outbound", "127.0.0.0/8, ::/0", "--allow-outbound",
              mock_addr(), NULL);
    reached(url);
    ck_assert_uint_eq(mock_connections(), 1);
    stop();
}
END_TEST

START_TEST(test_bad_outbound_flags_stop_the_start) {
    static const struct {
        const char *args[4];
        int status;
        const char *words;
    } cases[] = {
        {{"--allow-outbound", "127.1", NULL},
         2,
         "--allow-outbound: '127.1': write an IPv4 address as four decimal numbers, such as "
         "127.0.0.1"},
        {{"--deny-outbound", "10.1.0.0/8", NULL},
         2,
         "--deny-outbound: '10.1.0.0/8': bits are set past the /8 prefix (the block is "
         "10.0.0.0/8)"},
        {{"--flow-outbound", "maybe", NULL},
         2,
         "--flow-outbound: 'maybe' is not valid: expected on or off"},
        {{"--llm-base-url", "ftp://example.com/v1", NULL},
         1,
         "--llm-base-url: 'ftp://example.com/v1': not an http:// or https:// URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        ck_assert_int_eq(e2e_run(cases[i].args, &out), cases[i].status);
        ck_assert_msg(strstr(out, cases[i].words) != NULL, "%s", out);
        free(out);
    }
}
END_TEST

static Suite *outbound_suite(void) {
    Suite *s = suite_create("outbound");
    TCase *tc = tcase_create("outbound");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_spelling_of_loopback_is_refused_and_never_connected);
    tcase_add_test(tc, test_the_scraper_with_job_data_alone_fetches_nothing_from_loopback);
    tcase_add_test(tc, test_link_local_and_metadata_are_refused_before_connecting);
    tcase_add_test(tc, test_an_allow_entry_lets_exactly_that_address_and_port_through);
    tcase_add_test(tc, test_ipv6_loopback_is_reached_only_on_the_allowed_port);
    tcase_add_test(tc, test_a_host_name_entry_allows_that_name_only);
    tcase_add_test(tc, test_a_flows_own_allow_list_applies_to_its_nodes_only);
    tcase_add_test(tc, test_the_llm_endpoint_is_allowed_for_llm_nodes_only);
    tcase_add_test(tc, test_the_deny_list_beats_a_flows_list_but_not_the_operators);
    tcase_add_test(tc, test_bad_outbound_flags_stop_the_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(outbound_suite());
}
