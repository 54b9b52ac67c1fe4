/* fuzz.h: what the fuzz harnesses of tests/fuzz/ share. Each fuzz_<name>.c defines
 * LLVMFuzzerTestOneInput (and may define LLVMFuzzerInitialize); `make fuzz` links it with libFuzzer
 * (clang, -fsanitize=fuzzer,address,undefined), and `make test` links the same file with driver.c to
 * replay tests/fuzz/corpus/<name> and tests/fuzz/regress/<name> in the plain and the ASan builds.
 *
 * A harness checks what must hold whatever the input (fuzz_assert aborts, which both libFuzzer and
 * the driver report as a crash); it never asserts what a bad input is refused with. */
#ifndef FLOW_FUZZ_H
#define FLOW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define fuzz_assert(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz_assert(%s) failed\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A copy of data[0, size) in a buffer of exactly size bytes, without a NUL after it, so that a
 * sanitizer catches a read past the end (free it). */
static inline char *fuzz_exact_copy(const uint8_t *data, size_t size) {
    char *p = malloc(size > 0 ? size : 1);
    if (p == NULL)
        abort();
    for (size_t i = 0; i < size; i++)
        p[i] = (char)data[i];
    return p;
}

/* A NUL-terminated copy of data[0, size) (free it). */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
    char *p = malloc(size + 1);
    if (p == NULL)
        abort();
    for (size_t i = 0; i < size; i++)
        p[i] = (char)data[i];
    p[size] = '\0';
    return p;
}

#endif
