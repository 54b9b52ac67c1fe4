/* grow.h: room for one more item at the end of an array that doubles as it fills, for flowd's
 * tables kept as arrays (the job list in jobs.c, the schedules and a refresh's rows in
 * schedules.c, a PostgreSQL batch's statements in flight and turns asked for in
 * store_postgres.c), so that each does not write the doubling again. The arrays are realloc'd:
 * their owners free them with free(). Their caps are their tables' own (--max-jobs,
 * --max-finished, --max-schedules, --store-backlog). Header only: one small function, no state. */
#ifndef FLOWD_GROW_H
#define FLOWD_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* items (n of its *cap items of size bytes in use) itself while n < *cap; else the array moved
 * into one twice as large (first items the first time) and *cap updated. NULL when out of memory:
 * items is still the caller's, as it was, and *cap too. */
static inline void *flowd_grow(void *items, size_t n, size_t *cap, size_t size, size_t first) {
    if (n < *cap)
        return items;
    size_t want = *cap ? *cap * 2 : first;
    if (want <= n || want > SIZE_MAX / size)
        return NULL;
    void *grown = realloc(items, want * size);
    if (grown != NULL)
        *cap = want;
    return grown;
}

#endif
