/*
 * examples/fuzz_session.c - a user's libFuzzer target against keyheap, with
 * a planted bug that keyheap's domains turn into a crash libFuzzer can see.
 *
 * The "application" parses session records:
 *
 *   record  = tag:1 len:1 body:len        (repeated)
 *   tag 'K' = install a session key (body: up to 32 bytes)
 *   tag 'D' = drop the session key
 *   tag 'L' = log the record (body: a label)
 *
 * The session key lives in a keyheap domain, "session-key": it is written
 * and used only inside keyheap_enter/keyheap_leave.  The planted bug: a
 * 'D' record frees the key but leaves `cached_key` pointing at it, and a
 * later 'L' record whose label starts with '!' "logs" the first key byte
 * through the stale pointer, outside the domain: an over-read into domain
 * memory.  Without keyheap this reads freed heap memory silently (or
 * whatever the allocator put there); with keyheap the read hits a page of
 * the domain with the key closed, the CPU stops it (SEGV_PKUERR), keyheap's
 * fault report names the domain, and libFuzzer reports the crash and saves
 * the input.
 *
 * Build (README, "Fuzzing your own code"):
 *   clang-14 -g -O1 -fsanitize=fuzzer -Iinclude examples/fuzz_session.c \
 *       -o fuzz_session -L.libs -lkeyheap -Wl,-rpath,$PWD/.libs
 * and run it on a CPU with PKU, or through tools/pku-run:
 *   tools/pku-run ./fuzz_session -max_total_time=60
 * (libFuzzer's own -fsanitize=fuzzer runtime is fine with keyheap owning
 * malloc; AddressSanitizer would want malloc for itself.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyheap.h>

static keyheap_domain_t *session;

struct state {
    unsigned char *key;        /* in the domain */
    unsigned char *cached_key; /* the bug: not cleared when the key is dropped */
    size_t key_len;
    unsigned long logged;
};

static void install_key(struct state *s, const uint8_t *body, size_t len)
{
    if (len == 0 || len > 32 || s->key != NULL)
        return;
    keyheap_enter(session);
    s->key = malloc(32); /* lands in the domain */
    if (s->key != NULL)
        memcpy(s->key, body, len);
    keyheap_leave(session);
    s->key_len = len;
    s->cached_key = s->key;
}

static void drop_key(struct state *s)
{
    free(s->key); /* scrubbed: keyheap zeroes domain blocks on free */
    s->key = NULL;
    s->key_len = 0;
    /* BUG: s->cached_key still points into the domain. */
}

static void log_record(struct state *s, const uint8_t *body, size_t len)
{
    if (len > 0 && body[0] == '!' && s->cached_key != NULL) {
        /* "Debug logging" of the key fingerprint, through the stale
         * pointer and outside the domain: the over-read. */
        volatile unsigned char first = s->cached_key[0];
        s->logged += first;
    }
    s->logged += len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    session = keyheap_domain_create("session-key", 0);
    if (session == NULL) {
        perror("keyheap_domain_create(\"session-key\")");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state s = {0};
    size_t at = 0;
    while (at + 2 <= size) {
        uint8_t tag = data[at], len = data[at + 1];
        const uint8_t *body = data + at + 2;
        if (len > size - at - 2)
            len = (uint8_t)(size - at - 2);
        if (tag == 'K')
            install_key(&s, body, len);
        else if (tag == 'D')
            drop_key(&s);
        else if (tag == 'L')
            log_record(&s, body, len);
        at += 2 + (size_t)len;
    }
    drop_key(&s);
    return 0;
}
