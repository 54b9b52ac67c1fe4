/* store_postgres.c: the PostgreSQL store of store.h, for several flowd instances on one database. */
#include <stdio.h>

#include "store.h"

int flowd_store_postgres_new(const char *uri, flowd_store_t **out, char *err, size_t errlen) {
    (void)uri;
    (void)out;
    snprintf(err, errlen, "the PostgreSQL store is not part of this build yet");
    return FLOW_EINVAL;
}
