/* test_netpolicy.c: the outbound policy (flow/netpolicy.h) without a network: every special range
 * and its edges, the IPv4 ranges inside IPv6 forms, the entries of allow and deny lists and their
 * errors, who wins, and the refusal messages (which never name the address a host name resolved
 * to). Link-local and cloud metadata addresses are proved refused here, with no packet sent. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "flow/netpolicy.h"
#include "support/harness.h"
#include "support/json_util.h"

static flow_netaddr_t addr(const char *ip, unsigned port) {
    flow_netaddr_t a;
    ck_assert_msg(flow_netaddr_parse(ip, port, &a) == 0, "%s is not an address", ip);
    return a;
}


/* ---- the special ranges ---- */

static const struct {
    const char *ip;
    const char *name; /* NULL: public */
    const char *via;  /* the IPv6 prefix an IPv4 address was found in, or NULL */
} ranges[] = {
    /* every spelling of loopback the issue names comes to these two */
    {"127.0.0.1", "loopback", NULL},
    {"127.255.255.254", "loopback", NULL},
    {"::1", "loopback", NULL},
    {"::ffff:127.0.0.1", "loopback", NULL}, /* IPv4-mapped: it is 127.0.0.1 */
    {"0.0.0.0", "unspecified", NULL},
    {"0.255.255.255", "unspecified", NULL},
    {"::", "unspecified", NULL},
    {"169.254.169.254", "link-local", NULL}, /* cloud metadata */
    {"169.254.0.0", "link-local", NULL},
    {"169.255.0.0", NULL, NULL},
    {"fe80::1", "link-local", NULL},
    {"febf:ffff::1", "link-local", NULL},
    {"fec0::1", "private", NULL},
    {"10.0.0.1", "private", NULL},
    {"10.255.255.255", "private", NULL},
    {"11.0.0.0", NULL, NULL},
    {"9.255.255.255", NULL, NULL},
    {"172.15.255.255", NULL, NULL},
    {"172.16.0.0", "private", NULL},
    {"172.31.255.255", "private", NULL},
    {"172.32.0.0", NULL, NULL},
    {"192.168.1.1", "private", NULL},
    {"192.169.0.0", NULL, NULL},
    {"fc00::1", "private", NULL},
    {"fdff:ffff::1", "private", NULL},
    {"100.63.255.255", NULL, NULL},
    {"100.64.0.0", "carrier-grade NAT", NULL},
    {"100.127.255.255", "carrier-grade NAT", NULL},
    {"100.128.0.0", NULL, NULL},
    {"224.0.0.1", "multicast", NULL},
    {"239.255.255.255", "multicast", NULL},
    {"ff02::1", "multicast", NULL},
    {"255.255.255.255", "broadcast", NULL},
    {"240.0.0.1", "reserved", NULL},
    {"192.0.0.170", "reserved", NULL},
    {"192.0.2.1", "documentation", NULL},
    {"198.18.0.1", "benchmarking", NULL},
    {"2001:db8::1", "documentation", NULL},
    {"100::1", "reserved", NULL},
    {"64:ff9b:1::1", "private", NULL},
    /* IPv4 inside IPv6: IPv4-compatible, NAT64, 6to4, Teredo (the client inverted) */
    {"::127.0.0.1", "loopback", "::/96"},
    {"::8.8.8.8", "reserved", NULL},
    {"64:ff9b::127.0.0.1", "loopback", "64:ff9b::/96"},
    {"64:ff9b::169.254.169.254", "link-local", "64:ff9b::/96"},
    {"64:ff9b::10.1.2.3", "private", "64:ff9b::/96"},
    {"64:ff9b::8.8.8.8", NULL, NULL},
    {"2002:7f00:1::1", "loopback", "2002::/16"},
    {"2002:a9fe:a9fe::", "link-local", "2002::/16"},
    {"2002:808:808::1", NULL, NULL},
    {"2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback", "2001::/32"}, /* ~80fffffe = 127.0.0.1 */
    {"::ffff:0:169.254.169.254", "link-local", "::ffff:0:0:0/96"},
    /* public */
    {"8.8.8.8", NULL, NULL},
    {"1.1.1.1", NULL, NULL},
    {"128.0.0.0", NULL, NULL},
    {"126.255.255.255", NULL, NULL},
    {"223.255.255.255", NULL, NULL},
    {"2606:4700:4700::1111", NULL, NULL},
    {"::ffff:8.8.8.8", NULL, NULL},
};

START_TEST(every_special_range_is_refused_and_public_addresses_are_not) {
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        flow_netaddr_t a = addr(ranges[i].ip, 80);
        flow_netverdict_t v;
        int special = flow_netaddr_special(&a, &v);
        if (ranges[i].name == NULL) {
            ck_assert_msg(!special && v.why == FLOW_NET_PUBLIC, "%s: public, not %s", ranges[i].ip,
                          v.rule);
            ck_assert_int_eq(flow_netpolicy_check(NULL, NULL, &a, NULL, &v), 1);
            continue;
        }
        ck_assert_msg(special && v.why == FLOW_NET_SPECIAL && strcmp(v.rule, ranges[i].name) == 0,
                      "%s: %s, not %s", ranges[i].ip, ranges[i].name, special ? v.rule : "public");
        ck_assert_ptr_nonnull(v.range);
        if (ranges[i].via != NULL)
            ck_assert_str_eq(v.via, ranges[i].via);
        else
            ck_assert_ptr_null(v.via);
        ck_assert_int_eq(flow_netpolicy_check(NULL, NULL, &a, "example.com", &v), 0);
    }
}
END_TEST

START_TEST(an_ipv4_mapped_socket_address_is_its_ipv4_address) {
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(8090)};
    ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:169.254.169.254", &in6.sin6_addr), 1);
    flow_netaddr_t a;
    ck_assert_int_eq(flow_netaddr_from_sockaddr((struct sockaddr *)&in6, sizeof in6, &a), 0);
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_uint_eq(a.port, 8090);
    char text[64];
    flow_netaddr_format(&a, text, sizeof text);
    ck_assert_str_eq(text, "169.254.169.254:8090");

    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(1)};
    ck_assert_int_eq(flow_netaddr_from_sockaddr((struct sockaddr *)&in, sizeof in - 1, &a),
                     FLOW_EINVAL);
    struct sockaddr un = {.sa_family = AF_UNIX};
    ck_assert_int_eq(flow_netaddr_from_sockaddr(&un, sizeof un, &a), FLOW_EINVAL);
    ck_assert_int_eq(flow_netaddr_parse("127.1", 80, &a), FLOW_EINVAL); /* numbers only as four */
    ck_assert_int_eq(flow_netaddr_parse("::1", 9000, &a), 0);
    flow_netaddr_format(&a, text, sizeof text);
    ck_assert_str_eq(text, "[::1]:9000");
}
END_TEST

START_TEST(numeric_host_names_are_recognised) {
    static const char *const numeric[] = {"127.1",        "0x7f000001", "0X7F000001", "2130706433",
                                          "017700000001", "127.0.0.1",  "127.0.0.1.", "::1",
                                          "a.b.123",      "0x",         "1.2.3.0x1f"};
    static const char *const names[] = {"localhost", "example.com", "a.localhost", "1a.example",
                                        "0xg",       "x.0xz",       "123.example."};
    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++)
        ck_assert_msg(flow_net_host_is_numeric(numeric[i]), "%s is numeric", numeric[i]);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(!flow_net_host_is_numeric(names[i]), "%s is a name", names[i]);
}
END_TEST

/* ---- entries ---- */

START_TEST(entries_match_their_address_block_port_and_host) {
    flow_netrules_t *r = rules_of(
        " 127.0.0.1:8090 , 10.0.0.0/8, 192.168.0.0/16:443, [::1]:9000, fd00::/8, "
        "[fe80::/10]:22, Api.Example.COM:443, *.svc.local, internal., [::ffff:169.254.0.0/112]");
    ck_assert_uint_eq(flow_netrules_count(r), 10);
    ck_assert_str_eq(flow_netrules_entry(r, 0), "127.0.0.1:8090");
    static const struct {
        const char *ip;
        unsigned port;
        const char *host;
        const char *entry; /* NULL: none matches */
    } cases[] = {
        {"127.0.0.1", 8090, NULL, "127.0.0.1:8090"},
        {"::ffff:127.0.0.1", 8090, "localhost", "127.0.0.1:8090"},
        {"127.0.0.1", 8091, NULL, NULL},
        {"127.0.0.2", 8090, NULL, NULL},
        {"10.200.0.1", 1, NULL, "10.0.0.0/8"},
        {"11.0.0.1", 1, NULL, NULL},
        {"192.168.7.7", 443, NULL, "192.168.0.0/16:443"},
        {"192.168.7.7", 80, NULL, NULL},
        {"::1", 9000, NULL, "[::1]:9000"},
        {"::1", 9001, NULL, NULL},
        {"127.0.0.1", 9000, NULL, NULL},
        {"fd12::5", 5, NULL, "fd00::/8"},
        {"fe80::1", 22, NULL, "[fe80::/10]:22"},
        {"fe80::1", 23, NULL, NULL},
        {"10.9.9.9", 443, "api.example.com", "10.0.0.0/8"},
        {"192.0.2.1", 443, "api.example.com", "Api.Example.COM:443"},
        {"192.0.2.1", 443, "API.example.com.", "Api.Example.COM:443"},
        {"192.0.2.1", 80, "api.example.com", NULL},
        {"192.0.2.1", 443, "xapi.example.com", NULL},
        {"192.0.2.1", 443, "www.api.example.com", NULL},
        {"192.0.2.1", 5432, "db.svc.local", "*.svc.local"},
        {"192.0.2.1", 5432, "a.b.svc.local", "*.svc.local"},
        {"192.0.2.1", 5432, "svc.local", NULL},
        {"192.0.2.1", 1, "internal", "internal."},
        {"169.254.3.4", 1, NULL, "[::ffff:169.254.0.0/112]"},
        {"169.255.3.4", 1, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flow_netaddr_t a = addr(cases[i].ip, cases[i].port);
        const char *got = flow_netrules_match(r, &a, cases[i].host);
        if (cases[i].entry == NULL)
            ck_assert_msg(got == NULL, "%s port %u host %s: no entry, not %s", cases[i].ip,
                          cases[i].port, cases[i].host, got);
        else
            ck_assert_msg(got != NULL && strcmp(got, cases[i].entry) == 0,
                          "%s port %u host %s: %s, not %s", cases[i].ip, cases[i].port,
                          cases[i].host, cases[i].entry, got);
    }
    flow_netrules_unref(r);
}
END_TEST

START_TEST(bad_entries_are_refused_with_what_is_wrong) {
    static const struct {
        const char *entry;
        const char *why;
    } cases[] = {
        {"127.1", "'127.1': write an IPv4 address as four decimal numbers, such as 127.0.0.1"},
        {"0x7f000001:80",
         "'0x7f000001:80': write an IPv4 address as four decimal numbers, such as 127.0.0.1"},
        {"2130706433",
         "'2130706433': write an IPv4 address as four decimal numbers, such as 127.0.0.1"},
        {"017700000001",
         "'017700000001': write an IPv4 address as four decimal numbers, such as 127.0.0.1"},
        {"10.1.2.3/8", "'10.1.2.3/8': bits are set past the /8 prefix (the block is 10.0.0.0/8)"},
        {"10.0.0.0/33", "'10.0.0.0/33': the prefix length after '/' is 0 to 32"},
        {"fd00::/129", "'fd00::/129': the prefix length after '/' is 0 to 128"},
        {"10.0.0.0/", "'10.0.0.0/': the prefix length after '/' is 0 to 32"},
        {"127.0.0.1:0", "'127.0.0.1:0': the port after ':' is 1 to 65535"},
        {"127.0.0.1:65536", "'127.0.0.1:65536': the port after ':' is 1 to 65535"},
        {"127.0.0.1:", "'127.0.0.1:': the port after ':' is 1 to 65535"},
        {"127.0.0.1:-1", "'127.0.0.1:-1': the port after ':' is 1 to 65535"},
        {"example.com:http", "'example.com:http': the port after ':' is 1 to 65535"},
        {"[::1", "'[::1': a '[' without its ']'"},
        {"[::1]9000", "'[::1]9000': after ']' comes ':PORT' or nothing"},
        {"[127.0.0.1]:80", "'[127.0.0.1]:80': inside [ ] goes an IPv6 address"},
        {"::1::2", "'::1::2': inside [ ] goes an IPv6 address"},
        {"*", "'*': not an entry (0.0.0.0/0 and ::/0 are every address)"},
        {"exa mple.com",
         "'exa mple.com': not a host name, an address or a CIDR block (names are letters, "
         "digits, '-', '_' and dots; '*.' may start one)"},
        {"http://example.com", "'http://example.com': the port after ':' is 1 to 65535"},
        {"a..b", "'a..b': not a host name (a label is 1 to 63 characters)"},
        {"*.",
         "'*.': not a host name, an address or a CIDR block (names are letters, digits, "
         "'-', '_' and dots; '*.' may start one)"},
        {"$shared/host",
         "'$shared/host': not a host name, an address or a CIDR block (names are letters, digits, "
         "'-', '_' and dots; '*.' may start one)"},
    };
    flow_netrules_t *r = rules_of("");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "";
        int rc = flow_netrules_add(r, cases[i].entry, strlen(cases[i].entry), why, sizeof why);
        ck_assert_msg(rc == FLOW_EINVAL, "%s was taken", cases[i].entry);
        ck_assert_str_eq(why, cases[i].why);
    }
    ck_assert_uint_eq(flow_netrules_count(r), 0);
    char why[256] = "";
    ck_assert_int_eq(flow_netrules_add(r, "  ", 2, why, sizeof why), FLOW_EINVAL);
    ck_assert_str_eq(why, "an empty entry");
    ck_assert_int_eq(flow_netrules_add_list(r, " , ,", why, sizeof why),
                     0); /* blank items are skipped */
    ck_assert_int_eq(flow_netrules_add_list(r, "10.0.0.0/8,127.1,11.0.0.0/8", why, sizeof why),
                     FLOW_EINVAL);
    ck_assert_uint_eq(flow_netrules_count(r), 1); /* up to the bad one */
    flow_netrules_unref(r);
}
END_TEST

START_TEST(a_list_holds_at_most_its_cap) {
    flow_netrules_t *r = rules_of("");
    char why[256] = "";
    for (int i = 0; i < FLOW_NETRULES_MAX; i++) {
        char entry[32];
        snprintf(entry, sizeof entry, "10.%d.%d.0/24", i / 256, i % 256);
        ck_assert_int_eq(flow_netrules_add(r, entry, strlen(entry), why, sizeof why), 0);
    }
    ck_assert_int_eq(flow_netrules_add(r, "8.8.8.8", 7, why, sizeof why), FLOW_ETOOBIG);
    ck_assert_str_eq(why, "more than 1000 entries");
    flow_netrules_t *r2 = flow_netrules_ref(r);
    flow_netrules_unref(r);
    ck_assert_uint_eq(flow_netrules_count(r2),
                      FLOW_NETRULES_MAX); /* still alive: one reference left */
    flow_netrules_unref(r2);
}
END_TEST

START_TEST(a_url_gives_its_host_and_port) {
    flow_netrules_t *r = rules_of("");
    char why[256] = "";
    ck_assert_int_eq(flow_netrules_add_url(r, "http://127.0.0.1:8090/v1", why, sizeof why), 0);
    ck_assert_int_eq(flow_netrules_add_url(r, "https://API.openai.com/v1", why, sizeof why), 0);
    ck_assert_int_eq(flow_netrules_add_url(r, "http://[::1]/v1", why, sizeof why), 0);
    ck_assert_int_eq(flow_netrules_add_url(r, "http://127.1:9/", why, sizeof why),
                     0); /* curl makes it 127.0.0.1 */
    ck_assert_str_eq(flow_netrules_entry(r, 0), "127.0.0.1:8090");
    ck_assert_str_eq(flow_netrules_entry(r, 1), "API.openai.com:443");
    ck_assert_str_eq(flow_netrules_entry(r, 2), "[::1]:80");
    ck_assert_str_eq(flow_netrules_entry(r, 3), "127.0.0.1:9");
    ck_assert_int_eq(flow_netrules_add_url(r, "ftp://example.com/", why, sizeof why), FLOW_EINVAL);
    ck_assert_str_eq(why, "'ftp://example.com/': not an http:// or https:// URL");
    ck_assert_int_eq(flow_netrules_add_url(r, "not a url", why, sizeof why), FLOW_EINVAL);
    ck_assert_str_eq(why, "'not a url': not a URL");
    flow_netrules_unref(r);
}
END_TEST

/* ---- who wins ---- */

START_TEST(the_operator_allow_list_wins_then_its_deny_list_then_the_request_list) {
    flow_netrules_t *allow = rules_of("127.0.0.1:8090, 203.0.113.7");
    flow_netrules_t *deny = rules_of("203.0.113.0/24, 8.8.8.0/24, 127.0.0.0/8, blocked.example");
    flow_netrules_t *extra = rules_of("127.0.0.1:9000, 8.8.8.8, 10.0.0.0/8");
    flow_netpolicy_t p = {.allow = allow, .deny = deny};
    flow_netverdict_t v;
    flow_netaddr_t a;

    a = addr("127.0.0.1", 8090); /* the operator's allow beats its deny */
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 1);
    ck_assert_int_eq(v.why, FLOW_NET_ALLOWED);
    ck_assert_str_eq(v.rule, "127.0.0.1:8090");
    a = addr("203.0.113.7", 1);
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 1);
    a = addr("203.0.113.8", 1); /* a documentation address, but the deny entry says it first */
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 0);
    ck_assert_int_eq(v.why, FLOW_NET_DENIED);
    ck_assert_str_eq(v.rule, "203.0.113.0/24");
    a = addr("127.0.0.1", 9000); /* the request's list cannot undo the operator's deny */
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 0);
    ck_assert_str_eq(v.rule, "127.0.0.0/8");
    a = addr("8.8.8.8", 53);
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 0);
    a = addr("8.8.4.4", 53); /* public, not denied */
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 1);
    ck_assert_int_eq(v.why, FLOW_NET_PUBLIC);
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, "blocked.example", &v), 0);
    ck_assert_str_eq(v.rule, "blocked.example");
    a = addr("10.1.1.1", 80); /* the request's list opens a private block */
    ck_assert_int_eq(flow_netpolicy_check(&p, extra, &a, NULL, &v), 1);
    ck_assert_str_eq(v.rule, "10.0.0.0/8");
    ck_assert_int_eq(flow_netpolicy_check(&p, NULL, &a, NULL, &v), 0);
    ck_assert_int_eq(v.why, FLOW_NET_SPECIAL);
    ck_assert_str_eq(v.rule, "private");
    ck_assert_str_eq(v.range, "10.0.0.0/8");

    flow_netrules_t *all = rules_of("0.0.0.0/0, ::/0"); /* deny everything but what is allowed */
    p.deny = all;
    a = addr("1.1.1.1", 443);
    ck_assert_int_eq(flow_netpolicy_check(&p, NULL, &a, NULL, &v), 0);
    a = addr("2606:4700::1", 443);
    ck_assert_int_eq(flow_netpolicy_check(&p, NULL, &a, NULL, &v), 0);
    a = addr("::ffff:1.1.1.1", 443);
    ck_assert_int_eq(flow_netpolicy_check(&p, NULL, &a, NULL, &v), 0);
    a = addr("203.0.113.7", 443);
    ck_assert_int_eq(flow_netpolicy_check(&p, NULL, &a, NULL, &v), 1);
    flow_netrules_unref(all);
    flow_netrules_unref(allow);
    flow_netrules_unref(deny);
    flow_netrules_unref(extra);
}
END_TEST

/* ---- messages ---- */

START_TEST(a_refusal_names_the_address_the_rule_and_the_flag) {
    flow_netrules_t *deny = rules_of("198.51.100.0/24");
    flow_netpolicy_t p = {.deny = deny};
    flow_netverdict_t v;
    char msg[FLOW_NET_MESSAGE_MAX];
    static const struct {
        const char *ip;
        unsigned port;
        const char *host;
        const char *msg;
    } cases[] = {
        {"127.0.0.1", 8090, "127.0.0.1",
         "outbound connection to 127.0.0.1:8090 refused: loopback (allow it with --allow-outbound "
         "127.0.0.1:8090)"},
        {"127.0.0.1", 8090, "0x7f000001", /* typed as a number: its address is no secret */
         "outbound connection to 127.0.0.1:8090 refused: loopback (allow it with --allow-outbound "
         "127.0.0.1:8090)"},
        {"::1", 9000, "::1",
         "outbound connection to [::1]:9000 refused: loopback (allow it with --allow-outbound "
         "[::1]:9000)"},
        {"169.254.169.254", 80, "169.254.169.254",
         "outbound connection to 169.254.169.254:80 refused: link-local (allow it with "
         "--allow-outbound 169.254.169.254:80)"},
        {"fe80::1", 80, "fe80::1",
         "outbound connection to [fe80::1]:80 refused: link-local (allow it with --allow-outbound "
         "[fe80::1]:80)"},
        {"64:ff9b::a00:1", 80, NULL,
         "outbound connection to [64:ff9b::a00:1]:80 refused: private inside 64:ff9b::/96 (allow "
         "it with --allow-outbound [64:ff9b::a00:1]:80)"},
        {"198.51.100.7", 443, "198.51.100.7",
         "outbound connection to 198.51.100.7:443 refused: --deny-outbound 198.51.100.0/24 (allow "
         "it with --allow-outbound 198.51.100.7:443)"},
        /* a name: never the address it resolved to */
        {"10.1.2.3", 5432, "db.internal",
         "outbound connection to db.internal:5432 refused: db.internal resolves to a private "
         "address (allow it with --allow-outbound db.internal:5432)"},
        {"0.0.0.0", 80, "zero.example.",
         "outbound connection to zero.example:80 refused: zero.example resolves to an unspecified "
         "address (allow it with --allow-outbound zero.example:80)"},
        {"198.51.100.9", 443, "api.example",
         "outbound connection to api.example:443 refused: api.example resolves to an address that "
         "--deny-outbound refuses (allow it with --allow-outbound api.example:443)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flow_netaddr_t a = addr(cases[i].ip, cases[i].port);
        ck_assert_int_eq(flow_netpolicy_check(&p, NULL, &a, cases[i].host, &v), 0);
        flow_netpolicy_message(&v, &a, cases[i].host, msg, sizeof msg);
        ck_assert_str_eq(msg, cases[i].msg);
        if (cases[i].host != NULL && !flow_net_host_is_numeric(cases[i].host))
            ck_assert_ptr_null(strstr(msg, cases[i].ip));
    }
    flow_netrules_unref(deny);
}
END_TEST

static Suite *netpolicy_suite(void) {
    Suite *s = suite_create("netpolicy");
    TCase *tc = tcase_create("netpolicy");
    tcase_add_test(tc, every_special_range_is_refused_and_public_addresses_are_not);
    tcase_add_test(tc, an_ipv4_mapped_socket_address_is_its_ipv4_address);
    tcase_add_test(tc, numeric_host_names_are_recognised);
    tcase_add_test(tc, entries_match_their_address_block_port_and_host);
    tcase_add_test(tc, bad_entries_are_refused_with_what_is_wrong);
    tcase_add_test(tc, a_list_holds_at_most_its_cap);
    tcase_add_test(tc, a_url_gives_its_host_and_port);
    tcase_add_test(tc, the_operator_allow_list_wins_then_its_deny_list_then_the_request_list);
    tcase_add_test(tc, a_refusal_names_the_address_the_rule_and_the_flag);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(netpolicy_suite());
}
