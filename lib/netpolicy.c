/* netpolicy.c: the outbound policy of netpolicy.h: the table of special ranges, lists of entries,
 * the verdict on a connection and its message. Hand-written because none of our libraries decides
 * this: libcurl leaves it to CURLOPT_OPENSOCKETFUNCTION, glibc's inet_pton and inet_ntop only parse
 * and print addresses (they do that here too). */
#include "flow/netpolicy.h"
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define HOST_MAX 253 /* a DNS name, dots included */
#define LABEL_MAX 63

typedef struct netrule {
    char *text;         /* as written, spaces dropped */
    char *host;         /* a host-name entry: lowercase, no trailing dot, "*.x" kept as ".x"; NULL
                         * for an address entry */
    flow_netaddr_t net; /* an address entry: family and network (its port is unused) */
    unsigned prefix;    /* bits of net that count */
    uint16_t port;      /* 0: any */
} netrule_t;

struct flow_netrules {
    atomic_uint refs;
    netrule_t *rules;
    size_t count, cap;
};

/* ---- the special ranges ---------------------------------------------------------------------- */

typedef struct range {
    uint8_t net[16];
    unsigned prefix;
    const char *name; /* NULL: not refused for itself (an IPv6 prefix that only carries IPv4) */
    const char *text;
    int embed_at; /* -1, or the byte where an IPv4 address inside it starts */
    int inverted; /* Teredo keeps its client's address with every bit flipped */
} range_t;

/* First match wins: broadcast comes before the reserved block around it. */
static const range_t v4_ranges[] = {
    {{0}, 8, "unspecified", "0.0.0.0/8", -1, 0},
    {{10}, 8, "private", "10.0.0.0/8", -1, 0},
    {{100, 64}, 10, "carrier-grade NAT", "100.64.0.0/10", -1, 0},
    {{127}, 8, "loopback", "127.0.0.0/8", -1, 0},
    {{169, 254}, 16, "link-local", "169.254.0.0/16", -1, 0},
    {{172, 16}, 12, "private", "172.16.0.0/12", -1, 0},
    {{192, 0, 0}, 24, "reserved", "192.0.0.0/24", -1, 0},
    {{192, 0, 2}, 24, "documentation", "192.0.2.0/24", -1, 0},
    {{192, 88, 99}, 24, "reserved", "192.88.99.0/24", -1, 0},
    {{192, 168}, 16, "private", "192.168.0.0/16", -1, 0},
    {{198, 18}, 15, "benchmarking", "198.18.0.0/15", -1, 0},
    {{198, 51, 100}, 24, "documentation", "198.51.100.0/24", -1, 0},
    {{203, 0, 113}, 24, "documentation", "203.0.113.0/24", -1, 0},
    {{224}, 4, "multicast", "224.0.0.0/4", -1, 0},
    {{255, 255, 255, 255}, 32, "broadcast", "255.255.255.255/32", -1, 0},
    {{240}, 4, "reserved", "240.0.0.0/4", -1, 0},
};

/* :: and ::1 come before the IPv4-compatible block that holds them. */
static const range_t v6_ranges[] = {
    {{0}, 128, "unspecified", "::/128", -1, 0},
    {{[15] = 1}, 128, "loopback", "::1/128", -1, 0},
    {{[10] = 0xff, [11] = 0xff}, 96, NULL, "::ffff:0:0/96", 12, 0},        /* IPv4-mapped */
    {{[8] = 0xff, [9] = 0xff}, 96, NULL, "::ffff:0:0:0/96", 12, 0},        /* IPv4-translated */
    {{0}, 96, "reserved", "::/96", 12, 0},                                 /* IPv4-compatible */
    {{0, 0x64, 0xff, 0x9b}, 96, NULL, "64:ff9b::/96", 12, 0},              /* NAT64 */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "private", "64:ff9b:1::/48", -1, 0}, /* local NAT64 */
    {{1}, 64, "reserved", "100::/64", -1, 0},                              /* discard */
    {{0x20, 0x01}, 32, NULL, "2001::/32", 12, 1},                          /* Teredo */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation", "2001:db8::/32", -1, 0},
    {{0x20, 0x02}, 16, NULL, "2002::/16", 2, 0}, /* 6to4 */
    {{0xfc}, 7, "private", "fc00::/7", -1, 0},   /* unique local */
    {{0xfe, 0x80}, 10, "link-local", "fe80::/10", -1, 0},
    {{0xfe, 0xc0}, 10, "private", "fec0::/10", -1, 0}, /* site-local */
    {{0xff}, 8, "multicast", "ff00::/8", -1, 0},
};

static int prefix_match(const uint8_t *net, const uint8_t *addr, unsigned bits) {
    size_t whole = bits / 8;
    unsigned rest = bits % 8;
    if (memcmp(net, addr, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net[whole] & mask) == (addr[whole] & mask);
}

static const range_t *find_range(const range_t *table, size_t n, const uint8_t *addr) {
    for (size_t i = 0; i < n; i++)
        if (prefix_match(table[i].net, addr, table[i].prefix))
            return &table[i];
    return NULL;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void set_special(flow_netverdict_t *v, const range_t *r, const char *via) {
    v->why = FLOW_NET_SPECIAL;
    v->rule = r->name;
    v->range = r->text;
    v->via = via;
}

int flow_netaddr_special(const flow_netaddr_t *a, flow_netverdict_t *v) {
    memset(v, 0, sizeof *v);
    v->why = FLOW_NET_PUBLIC;
    if (a->family == AF_INET) {
        const range_t *r = find_range(v4_ranges, COUNT(v4_ranges), a->bytes);
        if (r == NULL)
            return 0;
        set_special(v, r, NULL);
        return 1;
    }
    const range_t *r = find_range(v6_ranges, COUNT(v6_ranges), a->bytes);
    if (r == NULL)
        return 0;
    if (r->embed_at >= 0) {
        uint8_t v4[4];
        for (int i = 0; i < 4; i++)
            v4[i] = (uint8_t)(r->inverted ? ~a->bytes[r->embed_at + i] : a->bytes[r->embed_at + i]);
        const range_t *inner = find_range(v4_ranges, COUNT(v4_ranges), v4);
        if (inner != NULL) {
            set_special(v, inner, r->text);
            return 1;
        }
    }
    if (r->name == NULL)
        return 0;
    set_special(v, r, NULL);
    return 1;
}

/* ---- addresses ------------------------------------------------------------------------------- */

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An IPv4-mapped IPv6 address is its IPv4 address: connecting to one reaches the other. */
static void normalize(flow_netaddr_t *a) {
    if (a->family == AF_INET6 && memcmp(a->bytes, v4_mapped, 12) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = AF_INET;
    }
}

int flow_netaddr_from_sockaddr(const struct sockaddr *sa, size_t len, flow_netaddr_t *out) {
    memset(out, 0, sizeof *out);
    if (sa == NULL)
        return FLOW_EINVAL;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        out->family = AF_INET;
        memcpy(out->bytes, &in.sin_addr, 4);
        out->port = ntohs(in.sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        out->family = AF_INET6;
        memcpy(out->bytes, &in6.sin6_addr, 16);
        out->port = ntohs(in6.sin6_port);
        normalize(out);
        return 0;
    }
    return FLOW_EINVAL;
}

int flow_netaddr_parse(const char *ip, unsigned port, flow_netaddr_t *out) {
    memset(out, 0, sizeof *out);
    if (ip == NULL || port > 65535)
        return FLOW_EINVAL;
    out->port = (uint16_t)port;
    if (inet_pton(AF_INET, ip, out->bytes) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, out->bytes) == 1) {
        out->family = AF_INET6;
        normalize(out);
        return 0;
    }
    return FLOW_EINVAL;
}

void flow_netaddr_format(const flow_netaddr_t *a, char *buf, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->bytes, ip, sizeof ip);
    if (a->family == AF_INET)
        snprintf(buf, cap, "%s:%u", ip, (unsigned)a->port);
    else
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)a->port);
}

/* ---- host names ------------------------------------------------------------------------------ */

/* Without one trailing dot: "example.com." is "example.com". */
static size_t host_len(const char *host) {
    size_t n = strlen(host);
    return n > 1 && host[n - 1] == '.' ? n - 1 : n;
}

static int all_of(const char *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return 0;
    return 1;
}

/* WHATWG's "ends in a number": such a name is an IPv4 address to curl and to getaddrinfo. */
int flow_net_host_is_numeric(const char *host) {
    uint8_t bytes[16];
    if (host == NULL)
        return 0;
    if (strchr(host, ':') != NULL || inet_pton(AF_INET, host, bytes) == 1)
        return 1;
    size_t n = host_len(host);
    const char *last = host;
    for (size_t i = 0; i < n; i++)
        if (host[i] == '.')
            last = host + i + 1;
    size_t k = n - (size_t)(last - host);
    if (k == 0)
        return 0;
    if (all_of(last, k, "0123456789"))
        return 1;
    return k >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') &&
           all_of(last + 2, k - 2, "0123456789abcdefABCDEF");
}

static int host_matches(const char *pattern, const char *host) {
    size_t n = host_len(host), p = strlen(pattern);
    if (pattern[0] == '.') /* "*.example.com": a subdomain, not the name itself */
        return n > p && strncasecmp(host + n - p, pattern, p) == 0;
    return n == p && strncasecmp(host, pattern, p) == 0;
}

/* ---- entries --------------------------------------------------------------------------------- */

static int bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t cap, const char *fmt, ...) {
    if (why != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return FLOW_EINVAL;
}

static int parse_number(const char *s, size_t n, unsigned long max, unsigned long *out) {
    unsigned long v = 0;
    if (n == 0 || n > 6 || !all_of(s, n, "0123456789"))
        return FLOW_EINVAL;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > max)
        return FLOW_EINVAL;
    *out = v;
    return 0;
}

/* An address with an optional "/prefix" of one family (0: either), into rule. */
static int parse_net(const char *s, size_t n, int family, netrule_t *rule, const char *entry,
                     char *why, size_t cap) {
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = memchr(s, '/', n);
    size_t ip_len = slash ? (size_t)(slash - s) : n;
    unsigned long prefix = 0;
    if (ip_len == 0 || ip_len >= sizeof ip)
        return bad(why, cap, "'%s': not an address", entry);
    memcpy(ip, s, ip_len);
    ip[ip_len] = '\0';
    if (family != AF_INET6 && inet_pton(AF_INET, ip, rule->net.bytes) == 1)
        rule->net.family = AF_INET;
    else if (family != AF_INET && inet_pton(AF_INET6, ip, rule->net.bytes) == 1)
        rule->net.family = AF_INET6;
    else if (family == AF_INET6)
        return bad(why, cap, "'%s': inside [ ] goes an IPv6 address", entry);
    else
        return bad(why, cap,
                   "'%s': write an IPv4 address as four decimal numbers, such as 127.0.0.1", entry);
    unsigned bits = rule->net.family == AF_INET ? 32 : 128;
    if (slash != NULL && parse_number(slash + 1, n - ip_len - 1, bits, &prefix) < 0)
        return bad(why, cap, "'%s': the prefix length after '/' is 0 to %u", entry, bits);
    rule->prefix = slash != NULL ? (unsigned)prefix : bits;
    flow_netaddr_t masked = rule->net;
    for (unsigned i = rule->prefix; i < bits; i++)
        masked.bytes[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    if (memcmp(masked.bytes, rule->net.bytes, sizeof masked.bytes) != 0) {
        char net[INET6_ADDRSTRLEN] = "?";
        inet_ntop(masked.family, masked.bytes, net, sizeof net);
        return bad(why, cap, "'%s': bits are set past the /%u prefix (the block is %s/%u)", entry,
                   rule->prefix, net, rule->prefix);
    }
    if (rule->net.family == AF_INET6 && rule->prefix >= 96 &&
        memcmp(rule->net.bytes, v4_mapped, 12) == 0) {
        normalize(&rule->net);
        rule->prefix -= 96;
    }
    return 0;
}

static int parse_host(const char *s, size_t n, netrule_t *rule, const char *entry, char *why,
                      size_t cap) {
    char name[HOST_MAX + 2];
    int wildcard = n > 2 && s[0] == '*' && s[1] == '.';
    if (n > 1 && s[n - 1] == '.')
        n--;
    if (wildcard) {
        s += 1; /* keep the dot: ".example.com" matches the names that end in it */
        n -= 1;
    }
    if (n == 0 || n > HOST_MAX)
        return bad(why, cap, "'%s': not a host name", entry);
    memcpy(name, s, n);
    name[n] = '\0';
    size_t label = 0;
    for (size_t i = wildcard ? 1 : 0; i <= n; i++) {
        char c = name[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > LABEL_MAX)
                return bad(why, cap, "'%s': not a host name (a label is 1 to %d characters)", entry,
                           LABEL_MAX);
            label = 0;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            name[i] = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return bad(why, cap,
                       "'%s': not a host name, an address or a CIDR block (names are letters, "
                       "digits, '-', '_' and dots; '*.' may start one)",
                       entry);
        label++;
    }
    if (flow_net_host_is_numeric(name + (wildcard ? 1 : 0)))
        return bad(why, cap,
                   "'%s': write an IPv4 address as four decimal numbers, such as 127.0.0.1", entry);
    rule->host = flow__strdup(name);
    return rule->host != NULL ? 0 : FLOW_ENOMEM;
}

static int parse_entry(const char *s, size_t n, netrule_t *rule, const char *entry, char *why,
                       size_t cap) {
    const char *port = NULL;
    size_t port_len = 0, colons = 0;
    unsigned long p = 0;
    int rc;
    for (size_t i = 0; i < n; i++)
        colons += s[i] == ':';
    if (n == 1 && s[0] == '*')
        return bad(why, cap, "'*': not an entry (0.0.0.0/0 and ::/0 are every address)");
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return bad(why, cap, "'%s': a '[' without its ']'", entry);
        size_t after = n - (size_t)(close + 1 - s);
        if (after > 0 && close[1] != ':')
            return bad(why, cap, "'%s': after ']' comes ':PORT' or nothing", entry);
        if (after > 0) {
            port = close + 2;
            port_len = after - 1;
        }
        rc = parse_net(s + 1, (size_t)(close - s - 1), AF_INET6, rule, entry, why, cap);
    } else if (colons >= 2) { /* IPv6 without brackets: no port */
        rc = parse_net(s, n, AF_INET6, rule, entry, why, cap);
    } else {
        const char *colon = memchr(s, ':', n);
        size_t host_n = colon ? (size_t)(colon - s) : n;
        if (colon != NULL) {
            port = colon + 1;
            port_len = n - host_n - 1;
        }
        uint8_t probe[4];
        char head[INET6_ADDRSTRLEN + 8] = "";
        if (host_n < sizeof head) {
            memcpy(head, s, host_n);
            head[host_n] = '\0';
        }
        const char *slash = memchr(s, '/', host_n);
        if ((slash != NULL && all_of(s, (size_t)(slash - s), "0123456789.")) ||
            inet_pton(AF_INET, head, probe) == 1)
            rc = parse_net(s, host_n, AF_INET, rule, entry, why, cap);
        else
            rc = parse_host(s, host_n, rule, entry, why, cap);
    }
    if (rc < 0)
        return rc;
    if (port != NULL && (parse_number(port, port_len, 65535, &p) < 0 || p == 0))
        return bad(why, cap, "'%s': the port after ':' is 1 to 65535", entry);
    rule->port = (uint16_t)p;
    return 0;
}

int flow_netrules_new(flow_netrules_t **out) {
    if (out == NULL)
        return FLOW_EINVAL;
    *out = flow__calloc(1, sizeof **out);
    if (*out == NULL)
        return FLOW_ENOMEM;
    atomic_init(&(*out)->refs, 1);
    return 0;
}

flow_netrules_t *flow_netrules_ref(flow_netrules_t *r) {
    if (r != NULL)
        atomic_fetch_add(&r->refs, 1);
    return r;
}

void flow_netrules_unref(flow_netrules_t *r) {
    if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    for (size_t i = 0; i < r->count; i++) {
        flow__free(r->rules[i].text);
        flow__free(r->rules[i].host);
    }
    flow__free(r->rules);
    flow__free(r);
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int flow_netrules_add(flow_netrules_t *r, const char *entry, size_t len, char *why, size_t cap) {
    char text[FLOW_NETRULE_MAX_LEN + 1];
    netrule_t rule = {0};
    if (r == NULL || entry == NULL)
        return FLOW_EINVAL;
    while (len > 0 && is_space(entry[0])) {
        entry++;
        len--;
    }
    while (len > 0 && is_space(entry[len - 1]))
        len--;
    if (len == 0)
        return bad(why, cap, "an empty entry");
    if (len > FLOW_NETRULE_MAX_LEN || memchr(entry, '\0', len) != NULL)
        return bad(why, cap, "'%.40s...': an entry is at most %d characters", entry,
                   FLOW_NETRULE_MAX_LEN);
    if (r->count >= FLOW_NETRULES_MAX) {
        bad(why, cap, "more than %d entries", FLOW_NETRULES_MAX);
        return FLOW_ETOOBIG;
    }
    memcpy(text, entry, len);
    text[len] = '\0';
    int rc = parse_entry(text, len, &rule, text, why, cap);
    if (rc == 0) {
        netrule_t *rules = flow__grow(r->rules, r->count, &r->cap, sizeof *rules, 8, 0);
        if (rules == NULL)
            rc = FLOW_ENOMEM;
        else
            r->rules = rules;
    }
    if (rc == 0) {
        rule.text = flow__strdup(text);
        rc = rule.text != NULL ? 0 : FLOW_ENOMEM;
    }
    if (rc < 0) {
        flow__free(rule.host);
        if (rc == FLOW_ENOMEM)
            bad(why, cap, "out of memory");
        return rc;
    }
    r->rules[r->count++] = rule;
    return 0;
}

int flow_netrules_add_list(flow_netrules_t *r, const char *list, char *why, size_t cap) {
    if (r == NULL || list == NULL)
        return FLOW_EINVAL;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int blank = 1;
        for (size_t i = 0; i < n; i++)
            blank &= is_space(p[i]);
        if (!blank) {
            int rc = flow_netrules_add(r, p, n, why, cap);
            if (rc < 0)
                return rc;
        }
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int flow_netrules_add_url(flow_netrules_t *r, const char *url, char *why, size_t cap) {
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    char entry[FLOW_NETRULE_MAX_LEN + 8];
    int rc = FLOW_EINVAL;
    if (r == NULL || url == NULL) {
        curl_url_cleanup(u);
        return FLOW_EINVAL;
    }
    if (u == NULL)
        return FLOW_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        bad(why, cap, "'%.200s': not a URL", url);
    } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        bad(why, cap, "'%.200s': not an http:// or https:// URL", url);
    } else {
        size_t n = host_len(host);
        snprintf(entry, sizeof entry, "%.*s:%s", (int)n, host, port);
        rc = flow_netrules_add(r, entry, strlen(entry), why, cap);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

size_t flow_netrules_count(const flow_netrules_t *r) {
    return r != NULL ? r->count : 0;
}

const char *flow_netrules_entry(const flow_netrules_t *r, size_t i) {
    return r != NULL && i < r->count ? r->rules[i].text : NULL;
}

static int rule_matches(const netrule_t *rule, const flow_netaddr_t *a, const char *host) {
    if (rule->port != 0 && rule->port != a->port)
        return 0;
    if (rule->host != NULL)
        return host != NULL && host_matches(rule->host, host);
    return rule->net.family == a->family && prefix_match(rule->net.bytes, a->bytes, rule->prefix);
}

const char *flow_netrules_match(const flow_netrules_t *r, const flow_netaddr_t *a,
                                const char *host) {
    for (size_t i = 0; r != NULL && i < r->count; i++)
        if (rule_matches(&r->rules[i], a, host))
            return r->rules[i].text;
    return NULL;
}

/* ---- the verdict ----------------------------------------------------------------------------- */

static int decided(flow_netverdict_t *v, flow_netwhy_t why, const char *rule) {
    v->why = why;
    v->rule = rule;
    return why == FLOW_NET_ALLOWED;
}

int flow_netpolicy_check(const flow_netpolicy_t *p, const flow_netrules_t *extra,
                         const flow_netaddr_t *a, const char *host, flow_netverdict_t *v) {
    flow_netverdict_t scratch;
    const char *rule;
    if (v == NULL)
        v = &scratch;
    memset(v, 0, sizeof *v);
    rule = flow_netrules_match(p ? p->allow : NULL, a, host);
    if (rule != NULL)
        return decided(v, FLOW_NET_ALLOWED, rule);
    rule = flow_netrules_match(p ? p->deny : NULL, a, host);
    if (rule != NULL)
        return decided(v, FLOW_NET_DENIED, rule);
    rule = flow_netrules_match(extra, a, host);
    if (rule != NULL)
        return decided(v, FLOW_NET_ALLOWED, rule);
    return !flow_netaddr_special(a, v);
}

void flow_netpolicy_message(const flow_netverdict_t *v, const flow_netaddr_t *a, const char *host,
                            char *buf, size_t cap) {
    char target[HOST_MAX + 16], reason[HOST_MAX + 128];
    int named = host != NULL && host[0] != '\0' && !flow_net_host_is_numeric(host);
    if (named)
        snprintf(target, sizeof target, "%.*s:%u", (int)host_len(host), host, (unsigned)a->port);
    else
        flow_netaddr_format(a, target, sizeof target);
    if (v->why == FLOW_NET_DENIED && named)
        snprintf(reason, sizeof reason, "%.*s resolves to an address that --deny-outbound refuses",
                 (int)host_len(host), host);
    else if (v->why == FLOW_NET_DENIED)
        snprintf(reason, sizeof reason, "--deny-outbound %s", v->rule);
    else if (v->why == FLOW_NET_SPECIAL && named)
        snprintf(reason, sizeof reason, "%.*s resolves to %s %s address", (int)host_len(host), host,
                 strchr("aeiou", v->rule[0]) ? "an" : "a", v->rule);
    else if (v->why == FLOW_NET_SPECIAL)
        snprintf(reason, sizeof reason, "%s%s%s", v->rule, v->via ? " inside " : "",
                 v->via ? v->via : "");
    else
        snprintf(reason, sizeof reason, "not allowed");
    snprintf(buf, cap, "outbound connection to %s refused: %s (allow it with --allow-outbound %s)",
             target, reason, target);
}
