/* mock.h: a scripted HTTP server (libmicrohttpd, 127.0.0.1 only) that tests run in-process, and
 * build/flowd-mock runs standalone, to drive HTTP clients and nodes against: slow, failing,
 * resetting or huge answers, a recipe API, a search engine and an OpenAI-compatible chat API
 * whose stand-in model plays the example flows (support/mock_model.h has its rules).
 *
 * Paths (every body is JSON unless said otherwise; unknown paths answer 404 {"error":...}):
 *   /recipes?ingredient=X 200 {"ingredient":"X","recipes":["X pasta","grilled X","X soup"]};
 *                         400 without ingredient.
 *   /v1/chat/completions  POST {"model":M,"messages":[{"role":..,"content":..},..]} answers 200
 *                         {"id":"mock-1","object":"chat.completion","model":M,"choices":[{
 *                         "index":0,"message":{"role":"assistant","content":"mock answer to:
 *                         <last user message>"},"finish_reason":"stop"}],"usage":{
 *                         "prompt_tokens":N,"completion_tokens":K,"total_tokens":N+K}} where N
 *                         and K count the words of all the messages and of the answer. When the
 *                         last user message holds a JSON array of strings, the content is instead
 *                         the first of them that does not appear again after the array (a model
 *                         asked to pick one of a list, not the ones named after it); when it is a
 *                         prompt of an example flow, mock_model_answer's answer; and while
 *                         scripted answers are left (mock_script), the next of them. 401 when
 *                         the mock has an api_key and the Authorization header is not "Bearer
 *                         <api_key>"; 400 for a body without a model or messages; 405 for another
 *                         method.
 *   /search?q=TEXT        200 mock_search(TEXT): {"query","results":[{"title","url","snippet"}]};
 *                         400 without q.
 *   /delay/MS[/rest]      waits MS milliseconds (at most 600000) without holding a server thread,
 *                         then answers as /rest would, or {"ok":true,"path":<the whole path>}
 *                         without rest. A client that went away meanwhile gets no answer.
 *   /gate/N[/rest]        waits until N requests wait at gates at once, then all the waiting ones
 *                         go on as /rest would (or {"ok":true,...}): a test that all N requests are
 *                         in flight together. N at most 100000.
 *   /status/CODE          that status (200..599) with {"status":CODE}.
 *   /flaky/KEY/N[/rest]   the first N requests for KEY get 500 {"error":"flaky","key":KEY,
 *                         "attempt":k}; later ones 200 {"key":KEY,"attempts":k}, or go on as /rest.
 *                         ?status=CODE (400..599) fails with that status instead, and
 *                         ?retry_after=VALUE adds "Retry-After: VALUE" to the failures.
 *   /reset                closes the connection without an answer.
 *   /huge/BYTES           200 with a text/plain body of BYTES bytes ("abc..z" repeated), made as it
 *                         is sent; with ?chunked=1 sent chunked, without a Content-Length.
 *   /echo                 200 {"method":..,"path":..,"query":{name:value},"headers":{lowercase
 *                         name:value},"body":<the body parsed as JSON, else as a string, null when
 *                         empty>}; of a repeated name, the last value.
 *   /page/N               200 text/html "<html>...Page N...</html>".
 *   /headers?NAME=VALUE&.. 200 {} with each query argument as a response header, in order
 *                         (repeats too; MHD leaves out empty values).
 * Request bodies over 1 MiB get 413.
 *
 * Threads: the server runs on its own threads; every function here may be called from any thread.
 * Functions return 0, or -1 with a message on stderr.
 */
#ifndef MOCK_H
#define MOCK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct mock mock_t;

typedef struct mock_opts {
    uint16_t port;          /* 0: any free port (see mock_port) */
    const char *api_key;    /* copied; NULL: the chat API takes any Authorization */
    unsigned threads;       /* server threads; 0: 2 */
} mock_opts_t;

typedef enum mock_route {
    MOCK_RECIPES = 0,
    MOCK_CHAT,
    MOCK_DELAY,
    MOCK_GATE,
    MOCK_STATUS,
    MOCK_FLAKY,
    MOCK_RESET,
    MOCK_HUGE,
    MOCK_ECHO,
    MOCK_PAGE,
    MOCK_SEARCH,
    MOCK_OTHER,
    MOCK_ROUTES
} mock_route_t;

#define MOCK_HEADER_MAX 256 /* the recorded header values are cut to this, NUL included */

typedef struct mock_stats {
    uint64_t requests;        /* requests whose headers arrived */
    uint64_t completed;       /* answered in full */
    uint64_t aborted;         /* ended otherwise: the client went away, /reset, a send error */
    uint64_t in_flight;       /* arrived and not yet ended */
    uint64_t max_in_flight;   /* the most in flight at once since the start or the last reset */
    uint64_t connections;     /* TCP connections accepted */
    uint64_t open_connections;
    uint64_t routes[MOCK_ROUTES]; /* answers by kind; /delay/1/echo counts a delay and an echo */
    uint64_t huge_bytes;      /* body bytes /huge made, sent or not */
    uint64_t idempotency_keys;    /* distinct Idempotency-Key values seen */
    char last_authorization[MOCK_HEADER_MAX]; /* "" when none came yet */
    char last_idempotency_key[MOCK_HEADER_MAX];
} mock_stats_t;

int mock_start(const mock_opts_t *opts, mock_t **out); /* opts may be NULL */
uint16_t mock_port(const mock_t *m);
/* "http://127.0.0.1:PORT" followed by path; a new string to free(), NULL when out of memory. */
char *mock_url(const mock_t *m, const char *path);
void mock_stats(mock_t *m, mock_stats_t *out);
/* Zeroes the counters (in_flight and open_connections stay: they are states), the recorded
 * headers, the Idempotency-Key counts and the /flaky attempts. */
void mock_reset_stats(mock_t *m);
/* Scripted model answers: the next n chat completions answered (in the order they arrive) have
 * these contents (copied), whatever they ask; then the mock answers as above again. A new script
 * replaces what is left of the last one. */
int mock_script(mock_t *m, const char *const *answers, size_t n);
/* The body of the last request to /v1/chat/completions that parsed as JSON: a copy (the caller
 * decrefs it; no other thread holds a reference to it), NULL when none came yet. */
json_t *mock_last_chat(mock_t *m);
/* How many requests carried this Idempotency-Key. */
uint64_t mock_idempotency_count(mock_t *m, const char *key);
/* Blocks until no request is in flight (every one answered or ended), or timeout_ms passed: -1. */
int mock_wait_idle(mock_t *m, unsigned timeout_ms);
/* Ends the requests still waiting (no answer) and stops the server. NULL is ignored. */
void mock_stop(mock_t *m);

#endif
