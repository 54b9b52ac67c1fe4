/* flow/netpolicy.h: the outbound policy of http and llm nodes: which addresses and ports they may
 * connect to. The HTTP client (flow/http.h) asks it about every address it is about to connect to
 * (after name resolution, for each address happy eyeballs tries) and again about the connection a
 * request is about to use (a new one or one kept alive), so that what is checked is the address
 * really connected to, never the text of a URL, and a name that resolves differently a moment
 * later (DNS rebinding) gains nothing.
 *
 * By default public addresses may be reached and the special ranges may not: loopback,
 * unspecified, link-local (cloud metadata at 169.254.169.254 included), private, carrier-grade NAT,
 * multicast, broadcast, documentation, benchmarking and reserved ranges, and the same IPv4 ranges
 * inside IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo IPv6 addresses (the table is in
 * netpolicy.c and the README). Lists of entries change that:
 *
 *   127.0.0.1:8090      one address and port       10.0.0.0/8        a CIDR block, any port
 *   10.0.0.0/8:443      a CIDR block, one port      [::1]:9000        IPv6 in brackets, a port
 *   ::1   fd00::/8      IPv6 without a port         api.example.com   a host name, any port
 *   api.example.com:443 a host name and port        *.example.com     its subdomains
 *
 * An address entry matches the address connected to (an IPv4-mapped IPv6 address counts as its
 * IPv4 address). A host-name entry matches the host of the request's URL, whatever address that
 * name resolves to when the connection is made: it is how an operator lets nodes reach an internal
 * service by its name. IPv4 addresses are written as four decimal numbers: other spellings (127.1,
 * 0x7f000001, 2130706433) are refused, so that an entry cannot look like a name and be an address.
 *
 * Which entry decides, first match wins: the operator's allow list (flowd --allow-outbound), then
 * the operator's deny list (--deny-outbound), then the request's own allow list (a flow document's
 * "outbound", or the host and port of the LLM base URL for llm nodes), then the default above.
 *
 * Threads: a list is built on one thread and read-only once it is shared; matching reads only, so
 * any thread may match; references are atomic.
 *
 * Errors: 0 or a negative FLOW_E* code (flow.h). */
#ifndef FLOW_NETPOLICY_H
#define FLOW_NETPOLICY_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "flow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_netrules flow_netrules_t; /* a list of entries, reference-counted */

#define FLOW_NETRULES_MAX 1000    /* entries in one list: a connection is matched against each */
#define FLOW_NETRULE_MAX_LEN 300  /* characters of one entry */
#define FLOW_NET_MESSAGE_MAX 1024 /* a refusal message fits in this, NUL included */

/* An address connected to: family AF_INET (4 bytes) or AF_INET6 (16), and the port. */
typedef struct flow_netaddr {
    int family;
    uint8_t bytes[16];
    uint16_t port;
} flow_netaddr_t;

/* A new empty list in *out, with one reference. */
FLOW_EXPORT int flow_netrules_new(flow_netrules_t **out);
FLOW_EXPORT flow_netrules_t *flow_netrules_ref(flow_netrules_t *r); /* returns r; NULL is fine */
FLOW_EXPORT void flow_netrules_unref(flow_netrules_t *r); /* NULL is ignored; the last one frees */

/* Adds one entry of len bytes (spaces around it are dropped). FLOW_EINVAL when it is not an entry:
 * why (cap bytes, may be NULL) then says what is wrong, quoting it; FLOW_ETOOBIG past
 * FLOW_NETRULES_MAX entries; FLOW_ENOMEM. */
FLOW_EXPORT int flow_netrules_add(flow_netrules_t *r, const char *entry, size_t len, char *why,
                                  size_t cap);
/* Adds the entries of a comma-separated list (empty items are skipped), stopping at the first bad
 * one, with the same errors. */
FLOW_EXPORT int flow_netrules_add_list(flow_netrules_t *r, const char *list, char *why, size_t cap);
/* Adds the host and port of an http:// or https:// URL (the scheme's port when it has none), as
 * the entry "host:port". */
FLOW_EXPORT int flow_netrules_add_url(flow_netrules_t *r, const char *url, char *why, size_t cap);
FLOW_EXPORT size_t flow_netrules_count(const flow_netrules_t *r); /* 0 for NULL */
/* The i-th entry as written (borrowed from r), in the order they were added. */
FLOW_EXPORT const char *flow_netrules_entry(const flow_netrules_t *r, size_t i);

/* The first entry of r (NULL: none) that a connection to a matches for a request whose URL's host
 * is host (NULL when unknown): the entry as written, borrowed from r; NULL when none matches. */
FLOW_EXPORT const char *flow_netrules_match(const flow_netrules_t *r, const flow_netaddr_t *a,
                                            const char *host);

/* From a socket address (an IPv4-mapped IPv6 address becomes its IPv4 address). FLOW_EINVAL for
 * another family or a short length. */
FLOW_EXPORT int flow_netaddr_from_sockaddr(const struct sockaddr *sa, size_t len,
                                           flow_netaddr_t *out);
/* From a numeric address (IPv4 as four decimal numbers, or IPv6, without brackets) and a port. */
FLOW_EXPORT int flow_netaddr_parse(const char *ip, unsigned port, flow_netaddr_t *out);
/* "127.0.0.1:8090" or "[::1]:9000", cut to cap bytes. */
FLOW_EXPORT void flow_netaddr_format(const flow_netaddr_t *a, char *buf, size_t cap);

/* Whether a host name is a number in disguise: an IPv4 or IPv6 address, or a name whose last label
 * is a number (127.1, 0x7f000001, 2130706433 and 017700000001 are all 127.0.0.1 to a resolver). */
FLOW_EXPORT int flow_net_host_is_numeric(const char *host);

typedef enum flow_netwhy {
    FLOW_NET_PUBLIC = 0, /* may connect: a public address that nothing refuses */
    FLOW_NET_ALLOWED,    /* may connect: an allow entry (rule) matched */
    FLOW_NET_DENIED,     /* refused: an entry of the operator's deny list (rule) matched */
    FLOW_NET_SPECIAL     /* refused: a special range (rule: its name, such as "loopback") */
} flow_netwhy_t;

typedef struct flow_netverdict {
    flow_netwhy_t why;
    const char *rule;  /* the entry as written, or the range's name; NULL for FLOW_NET_PUBLIC */
    const char *range; /* FLOW_NET_SPECIAL: the range, "127.0.0.0/8" */
    const char *via;   /* FLOW_NET_SPECIAL: NULL, or the IPv6 prefix the IPv4 address was found
                        * inside ("64:ff9b::/96") */
} flow_netverdict_t;

/* The special range a is in, into v (FLOW_NET_SPECIAL); 0 when a is public (v->why is then
 * FLOW_NET_PUBLIC). Static strings. */
FLOW_EXPORT int flow_netaddr_special(const flow_netaddr_t *a, flow_netverdict_t *v);

/* What the operator says: both lists borrowed, either NULL. */
typedef struct flow_netpolicy {
    const flow_netrules_t *allow; /* wins over everything */
    const flow_netrules_t *deny;  /* refuses public addresses, and what extra would allow */
} flow_netpolicy_t;

/* Decides a connection to a for a request whose URL's host is host (NULL: unknown), with the
 * request's own allow list extra (NULL: none). Returns 1 when it may connect, 0 when it is refused;
 * v (may be NULL) says why. Strings in v are borrowed from the lists or static. */
FLOW_EXPORT int flow_netpolicy_check(const flow_netpolicy_t *p, const flow_netrules_t *extra,
                                     const flow_netaddr_t *a, const char *host,
                                     flow_netverdict_t *v);

/* The refusal for people, into buf (FLOW_NET_MESSAGE_MAX is enough): "outbound connection to
 * 127.0.0.1:8090 refused: loopback (allow it with --allow-outbound 127.0.0.1:8090)".
 * A host that is a name is named instead of the address it resolved to, which the caller may have
 * had no way to learn (an internal name): "outbound connection to db.internal:5432 refused:
 * db.internal resolves to a private address (allow it with --allow-outbound db.internal:5432)". */
FLOW_EXPORT void flow_netpolicy_message(const flow_netverdict_t *v, const flow_netaddr_t *a,
                                        const char *host, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
