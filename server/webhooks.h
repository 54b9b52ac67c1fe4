/* webhooks.h: callbacks when jobs change. A job made with "callback": {"url", "events"} has a
 * delivery made for each event it asked for (succeeded, failed, canceled by default; waiting too
 * when asked): a POST of {"type": "job.<event>", "timestamp", "data": the Job object as GET
 * /v1/jobs/{id} shows it} to its URL, signed as the Standard Webhooks specification says
 * (webhook-id, webhook-timestamp, webhook-signature: "v1,<base64 of HMAC-SHA256 over
 * id.timestamp.body>", a signature per secret of the job's tenant, space-separated).
 *
 * Deliveries go out on the loop through the HTTP client of http and llm nodes (flow/http.h), so
 * the outbound policy decides what they may reach, as it does for nodes. A 2xx answer delivers; 410
 * Gone stops (the receiver wants no more); anything else (another status, no answer, a refused
 * address) is tried again after a random wait between 0 and --webhook-wait doubled at each try,
 * at most --webhook-max-wait (exponential backoff with full jitter), until --webhook-max-age after
 * the event: then it has failed.
 *
 * With PostgreSQL a delivery has an owner of its own (store_postgres.c): the instance that made it
 * tries it, and when that instance dies another claims it once its lease has run out, so one
 * instance at a time makes it.
 *
 * Durable: a delivery is handed to the store when it is owed, before the job's checkpoint or finish
 * of the same change, and again after each try; at start the store gives back the deliveries still
 * owed, which go on where they were. The webhook-id is made from the job, its step count and the
 * event, so it is the same at every try, after a restart, and when a job runs its last node again
 * after a crash (at least once, with a stable id: receivers drop repeats by it).
 *
 * Secrets: --webhook-secrets names a file of lines `<tenant> whsec_<base64 of 24 to 64 bytes>`
 * (`#` starts a comment); every secret of the tenant signs (during a rotation the old and the new
 * one); read at start and again on SIGHUP (a file that does not read keeps the secrets before it).
 * A job may have a callback only when its tenant has a secret.
 *
 * Threads: HTTP threads parse callbacks, ask for secrets and render deliveries; the loop makes,
 * sends and retries them; a reload of the secrets runs on libuv's pool. A delivery's state is
 * under its job's record lock (jobs.h); the secrets under a lock of their own. */
#ifndef FLOWD_WEBHOOKS_H
#define FLOWD_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "flow.h"
#include "jobs.h"
#include "jsonw.h"
#include "store.h"

/* The events a callback may ask for, a bit each. */
#define FLOWD_HOOK_SUCCEEDED 1u
#define FLOWD_HOOK_FAILED 2u
#define FLOWD_HOOK_CANCELED 4u
#define FLOWD_HOOK_WAITING 8u
#define FLOWD_HOOK_DEFAULT (FLOWD_HOOK_SUCCEEDED | FLOWD_HOOK_FAILED | FLOWD_HOOK_CANCELED)

#define FLOWD_CALLBACK_URL_MAX 2048   /* bytes of a callback's URL */
#define FLOWD_WEBHOOK_SECRETS_MAX 1000 /* secrets in the file */
#define FLOWD_WEBHOOK_TRIES_KEPT 10    /* tries of a delivery it shows (the last ones) */

typedef struct flowd_webhooks flowd_webhooks_t;
typedef struct flowd_delivery flowd_delivery_t;
struct flowd_server;

/* Reads --webhook-secrets (when set). FLOW_EINVAL with "file:line: why" in err, FLOW_EIO when it
 * cannot be read, FLOW_ENOMEM. Before the loop runs; srv is borrowed for w's life. */
int flowd_webhooks_new(struct flowd_server *srv, flowd_webhooks_t **out, char *err, size_t errlen);
/* After flowd_webhooks_stop and once the loop has run dry. NULL is ignored. */
void flowd_webhooks_free(flowd_webhooks_t *w);
/* Reads the secrets file again (blocks on it: never on the loop); 0, or the error after logging it
 * (the old secrets stay). 0 without a file. */
int flowd_webhooks_reload(flowd_webhooks_t *w);
/* Whether tenant (a name) has at least one secret. Any thread. */
int flowd_webhooks_has_secret(flowd_webhooks_t *w, const char *tenant);

/* POST /v1/jobs: checks a body's "callback" value (borrowed). 0 with *text (its compact JSON, URL
 * and events as given or defaulted), *url and *events (malloc'd strings, the caller's), or -1 with
 * why (cap bytes) saying what is wrong. */
int flowd_callback_parse(const json_t *cb, char **text, char **url, unsigned *events, char *why,
                         size_t cap);

/* Loop: job has reached status; a delivery is made (and handed to the store) when its callback asks
 * for it. Call it before the store's checkpoint or finish of that change. */
void flowd_webhooks_job_changed(flowd_webhooks_t *w, flowd_job_t *job, flow_status_t status);
/* At start, after the store gave back the jobs and before the loop runs: the deliveries it keeps
 * (those still owed are tried again at their time). 0 or the store's error. */
int flowd_webhooks_load(flowd_webhooks_t *w);
/* Loop: a delivery this instance claimed from a shared store (its maker died): tried from now on
 * (d borrowed). 0 or FLOW_ENOMEM. */
int flowd_webhooks_adopt(flowd_webhooks_t *w, const flowd_stored_delivery_t *d);
/* Any thread: how many more deliveries may be owed here (--webhook-max-pending less those owed). */
uint64_t flowd_webhooks_room(flowd_webhooks_t *w);

/* Loop, at shutdown before the HTTP client closes: tries in flight are dropped (the store keeps
 * them owed), timers close. */
void flowd_webhooks_stop(flowd_webhooks_t *w);

/* GET /v1/jobs/{id}/deliveries: the Deliveries object of job into jw (takes the record's lock). */
void flowd_webhooks_render(flowd_jw_t *jw, flowd_job_t *job);
/* The same from a shared store (store_cluster.h read_deliveries): begin with the job's id and
 * callback (compact JSON or NULL), then each delivery as the store gave it, then end. */
void flowd_webhooks_render_begin(flowd_jw_t *jw, const char *job_id, const char *callback);
void flowd_webhooks_render_stored(flowd_jw_t *jw, const flowd_stored_delivery_t *d);
void flowd_webhooks_render_end(flowd_jw_t *jw);

/* The webhook-signature header's value for n secrets (each lens[i] bytes): "v1,<base64>" each,
 * space-separated, into out (cap bytes; 100 per secret is enough). 0, or FLOW_ETOOBIG / FLOW_EIO.
 * Exposed for the unit tests. */
int flowd_webhook_sign(const unsigned char *const *secrets, const size_t *lens, size_t n,
                       const char *id, uint64_t timestamp, const char *body, size_t len, char *out,
                       size_t cap);
/* A secret's bytes from its text "whsec_<base64>" into out (64 bytes); 0 and *len, or -1 when it
 * is not one (24 to 64 bytes). */
int flowd_webhook_secret_decode(const char *text, unsigned char out[64], size_t *len);

#endif
