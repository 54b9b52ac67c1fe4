/* re.c: the regular expressions of re.h on PCRE2 (8-bit code units, UTF mode). PCRE2 allocates
 * through flow__malloc, so that the allocation-failure tests reach it too. */
#include "re.h"
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "flow.h"

#define COMPILE_OPTIONS (PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C)
#define FIRST_TRY 256      /* match-limit units a match is first allowed */
#define TRY_GROWTH 8       /* how much more each further try is allowed */
#define BYTES_PER_UNIT 8   /* a match is also charged one unit per this many bytes of its string */
#define JIT_STACK_START ((size_t)32 << 10)

/* PCRE2 10.45 checks the compiled size itself, while compiling. */
#if PCRE2_MAJOR > 10 || (PCRE2_MAJOR == 10 && PCRE2_MINOR >= 45)
#define HAVE_COMPILED_LENGTH_LIMIT 1
#else
#define HAVE_COMPILED_LENGTH_LIMIT 0
#endif

struct flow_re {
    pcre2_code *code;
    int jit;
    char *pattern; /* NUL-terminated copy, for messages */
};

/* What one evaluation's matches reuse. */
typedef struct scratch {
    pcre2_general_context *gctx;
    pcre2_match_context *mctx;
    pcre2_match_data *md;
    pcre2_jit_stack *stack; /* NULL until a JIT-compiled pattern runs */
} scratch_t;

static void *re_malloc(PCRE2_SIZE size, void *data) {
    (void)data;
    return flow__malloc(size);
}

static void re_free(void *p, void *data) {
    (void)data;
    flow__free(p);
}

static void resolve(flow_re_limits_t *out, const flow_re_limits_t *in) {
    flow_re_limits_t zero = {0};
    *out = in != NULL ? *in : zero;
    if (out->max_length == 0)
        out->max_length = FLOW_RE_MAX_LENGTH;
    if (out->max_nesting == 0)
        out->max_nesting = FLOW_RE_MAX_NESTING;
    if (out->max_compiled == 0)
        out->max_compiled = FLOW_RE_MAX_COMPILED;
    if (out->match_limit == 0)
        out->match_limit = FLOW_RE_MATCH_LIMIT;
    if (out->depth_limit == 0)
        out->depth_limit = FLOW_RE_DEPTH_LIMIT;
    if (out->heap_limit == 0)
        out->heap_limit = FLOW_RE_HEAP_LIMIT;
    if (out->budget == 0)
        out->budget = FLOW_RE_BUDGET;
}

static int say(char *why, size_t whylen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int say(char *why, size_t whylen, int rc, const char *fmt, ...) {
    va_list ap;
    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* PCRE2's message for an error code. */
static const char *pcre2_text(int code, char *buf, size_t size) {
    if (pcre2_get_error_message(code, (PCRE2_UCHAR *)buf, size) < 0)
        snprintf(buf, size, "PCRE2 error %d", code);
    return buf;
}

void flow_re_free(flow_re_t *re) {
    if (re == NULL)
        return;
    pcre2_code_free(re->code);
    flow__free(re->pattern);
    flow__free(re);
}

int flow_re_compile(const char *pattern, size_t len, const flow_re_limits_t *limits, flow_re_t **out, char *why,
                    size_t whylen) {
    flow_re_limits_t lim;
    pcre2_general_context *gctx = NULL;
    pcre2_compile_context *cctx = NULL;
    flow_re_t *re = NULL;
    char text[256];
    int err = 0, rc = 0;
    PCRE2_SIZE off = 0;
    size_t size = 0;

    if (out != NULL)
        *out = NULL;
    if (pattern == NULL || out == NULL)
        return say(why, whylen, FLOW_EINVAL, "no pattern");
    resolve(&lim, limits);
    if (len > lim.max_length)
        return say(why, whylen, FLOW_EINVAL, "longer than %zu bytes (the regex length limit)", lim.max_length);
    gctx = pcre2_general_context_create(re_malloc, re_free, NULL);
    cctx = gctx != NULL ? pcre2_compile_context_create(gctx) : NULL;
    re = flow__calloc(1, sizeof *re);
    if (re != NULL)
        re->pattern = flow__malloc(len + 1);
    if (cctx == NULL || re == NULL || re->pattern == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    memcpy(re->pattern, pattern, len);
    re->pattern[len] = '\0';
    pcre2_set_parens_nest_limit(cctx, lim.max_nesting);
#if HAVE_COMPILED_LENGTH_LIMIT
    pcre2_set_max_pattern_compiled_length(cctx, lim.max_compiled);
#endif
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, COMPILE_OPTIONS, &err, &off, cctx);
    if (re->code == NULL) {
        if (err == PCRE2_ERROR_NOMEMORY || err == PCRE2_ERROR_HEAP_FAILED)
            rc = FLOW_ENOMEM;
        else if (err == PCRE2_ERROR_PARENTHESES_NEST_TOO_DEEP)
            rc = say(why, whylen, FLOW_EINVAL, "parentheses nested deeper than %u (the regex nesting limit)",
                     lim.max_nesting);
        else if (err == PCRE2_ERROR_PATTERN_TOO_LARGE)
            rc = say(why, whylen, FLOW_EINVAL, "its compiled form would be larger than PCRE2 allows");
        else
            rc = say(why, whylen, FLOW_EINVAL, "%s at offset %zu", pcre2_text(err, text, sizeof text),
                     (size_t)off);
        goto out;
    }
    pcre2_pattern_info(re->code, PCRE2_INFO_SIZE, &size);
    if (size > lim.max_compiled) {
        rc = say(why, whylen, FLOW_EINVAL, "its compiled form takes %zu bytes, more than %zu (the regex compiled "
                 "size limit)", size, lim.max_compiled);
        goto out;
    }
    /* Any failure (no JIT for this machine, no executable memory) leaves the interpreter. */
    re->jit = !lim.no_jit && pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    re = NULL;
out:
    flow_re_free(re);
    pcre2_compile_context_free(cctx);
    pcre2_general_context_free(gctx);
    return rc;
}

const char *flow_re_pattern(const flow_re_t *re) {
    return re->pattern;
}

int flow_re_jit(const flow_re_t *re) {
    return re->jit;
}

void flow_re_run_init(flow_re_run_t *run, const flow_re_limits_t *limits) {
    resolve(&run->limits, limits);
    run->left = run->limits.budget;
    run->scratch = NULL;
}

static void scratch_free(scratch_t *s) {
    if (s == NULL)
        return;
    pcre2_jit_stack_free(s->stack);
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_general_context_free(s->gctx);
    flow__free(s);
}

void flow_re_run_end(flow_re_run_t *run) {
    scratch_free(run->scratch);
    run->scratch = NULL;
}

/* The match context, match data and (for a JIT-compiled pattern) JIT stack of run. */
static int scratch_of(flow_re_run_t *run, int jit, scratch_t **out) {
    scratch_t *s = run->scratch;
    if (s == NULL) {
        s = flow__calloc(1, sizeof *s);
        if (s != NULL)
            s->gctx = pcre2_general_context_create(re_malloc, re_free, NULL);
        if (s != NULL && s->gctx != NULL)
            s->mctx = pcre2_match_context_create(s->gctx);
        if (s != NULL && s->mctx != NULL)
            s->md = pcre2_match_data_create(1, s->gctx); /* one pair: only whether it matches is wanted */
        if (s == NULL || s->md == NULL) {
            scratch_free(s);
            return FLOW_ENOMEM;
        }
        size_t kib = run->limits.heap_limit / 1024;
        pcre2_set_depth_limit(s->mctx, run->limits.depth_limit);
        pcre2_set_heap_limit(s->mctx, (uint32_t)(kib > UINT32_MAX ? UINT32_MAX : kib > 0 ? kib : 1));
        run->scratch = s;
    }
    if (jit && s->stack == NULL) {
        size_t start = JIT_STACK_START < run->limits.heap_limit ? JIT_STACK_START : run->limits.heap_limit;
        s->stack = pcre2_jit_stack_create(start, run->limits.heap_limit, s->gctx);
        if (s->stack == NULL)
            return FLOW_ENOMEM;
        pcre2_jit_stack_assign(s->mctx, NULL, s->stack);
    }
    *out = s;
    return 0;
}

static uint64_t min64(uint64_t a, uint64_t b) {
    return a < b ? a : b;
}

int flow_re_match(flow_re_run_t *run, const flow_re_t *re, const char *s, size_t len, char *why, size_t whylen) {
    const flow_re_limits_t *lim = &run->limits;
    scratch_t *sc;
    char text[256];
    int rc;

    if (s == NULL)
        s = "";
    uint64_t length_charge = len / BYTES_PER_UNIT;
    if (length_charge >= run->left)
        return say(why, whylen, FLOW_ETOOBIG, "the regex budget of this check (%llu) is spent",
                   (unsigned long long)lim->budget);
    run->left -= length_charge;
    rc = scratch_of(run, re->jit, &sc);
    if (rc < 0)
        return rc;
    /* Tries with more units until it is enough, the match limit is reached or the budget spent. */
    uint64_t allowed = min64(FIRST_TRY, min64(lim->match_limit, run->left));
    for (;;) {
        pcre2_set_match_limit(sc->mctx, (uint32_t)allowed);
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, sc->md, sc->mctx);
        run->left -= allowed;
        if (rc != PCRE2_ERROR_MATCHLIMIT || allowed == lim->match_limit || run->left == 0)
            break;
        allowed = min64(allowed * TRY_GROWTH, min64(lim->match_limit, run->left));
    }
    if (rc >= 0)
        return 1; /* 0 too: it matched, with more groups than the match data holds */
    switch (rc) {
    case PCRE2_ERROR_NOMATCH:
        return 0;
    case PCRE2_ERROR_MATCHLIMIT:
        if (allowed < lim->match_limit)
            return say(why, whylen, FLOW_ETOOBIG, "the regex budget of this check (%llu) is spent",
                       (unsigned long long)lim->budget);
        return say(why, whylen, FLOW_ETOOBIG, "the regex match limit (%lu) was reached",
                   (unsigned long)lim->match_limit);
    case PCRE2_ERROR_DEPTHLIMIT:
        return say(why, whylen, FLOW_ETOOBIG, "the regex depth limit (%lu) was reached",
                   (unsigned long)lim->depth_limit);
    case PCRE2_ERROR_HEAPLIMIT:
    case PCRE2_ERROR_JIT_STACKLIMIT:
        return say(why, whylen, FLOW_ETOOBIG, "the regex heap limit (%zu bytes) was reached", lim->heap_limit);
    case PCRE2_ERROR_NOMEMORY:
        return FLOW_ENOMEM;
    default:
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            return say(why, whylen, FLOW_EINVAL, "the string is not valid UTF-8 (%s)", pcre2_text(rc, text, sizeof text));
        return say(why, whylen, FLOW_EINVAL, "%s", pcre2_text(rc, text, sizeof text));
    }
}
