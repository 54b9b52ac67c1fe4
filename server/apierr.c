/* apierr.c: the table of apierr.h, looked up. */
#include "apierr.h"

static const struct {
    unsigned status;
    const char *code, *message;
} table[FLOWD_APIERRS] = {
#define FLOWD__APIERR_ROW(sym, status, code, message) [FLOWD_E_##sym] = {status, code, message},
    FLOWD_APIERR_MAP(FLOWD__APIERR_ROW)
#undef FLOWD__APIERR_ROW
};

static flowd_apierr_t known(flowd_apierr_t err) {
    return (unsigned)err < FLOWD_APIERRS ? err : FLOWD_E_INTERNAL;
}

unsigned flowd_apierr_status(flowd_apierr_t err) {
    return table[known(err)].status;
}

const char *flowd_apierr_code(flowd_apierr_t err) {
    return table[known(err)].code;
}

const char *flowd_apierr_message(flowd_apierr_t err) {
    return table[known(err)].message;
}
