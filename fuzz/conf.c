/*
 * fuzz/conf.c - libFuzzer target for the KEYHEAP_CONF parser,
 * khi_conf_parse (alloc/conf.c, hidden in the library: this target is
 * linked with alloc/conf.c and alloc/fatal.c themselves).
 *
 * The input, up to its first NUL, is the text of KEYHEAP_CONF.  The target
 * computes what the documented syntax gives (include/keyheap.h, README
 * "Configuration") with its own small parser, written from the
 * documentation and not from alloc/conf.c, and checks that
 * khi_conf_parse gives exactly that: the defaults, changed by exactly the
 * valid options (the last one of a key wins), and one problem counted for
 * each option that is not key:value, has an unknown key or a bad value.
 * Invariants checked besides: text without ':' leaves the defaults; the
 * watchdog is 0 or within 1..3600000.  The parser's warnings go to stderr
 * (run libFuzzer with -close_fd_mask=2 to silence them).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/conf.h"
#include "fuzz/check.h"

/* One option "key:value" (no ','); returns false when it is a problem. */
static bool model_option(const char *opt, struct khi_conf *c)
{
    const char *colon = strchr(opt, ':');
    if (colon == NULL)
        return false;
    char key[32];
    size_t klen = (size_t)(colon - opt);
    if (klen >= sizeof key)
        return false;
    memcpy(key, opt, klen);
    key[klen] = '\0';
    const char *v = colon + 1;
    unsigned *number = strcmp(key, "watchdog") == 0 ? &c->watchdog_ms
                       : strcmp(key, "keys") == 0   ? &c->keys
                                                    : NULL;
    if (number != NULL) {
        /* Decimal digits only (no sign, no space; leading zeros allowed):
         * watchdog 0 to 3600000, keys 1 to 15. */
        unsigned long long lo = number == &c->keys ? 1 : 0;
        unsigned long long hi = number == &c->keys ? 15 : KHI_WATCHDOG_MAX_MS;
        size_t n = strlen(v);
        if (n == 0 || strspn(v, "0123456789") != n)
            return false;
        unsigned long long x = 0;
        for (size_t i = 0; i < n; i++) {
            x = x * 10 + (unsigned long long)(v[i] - '0');
            if (x > hi)
                return false;
        }
        if (x < lo)
            return false;
        *number = (unsigned)x;
        return true;
    }
    bool *field = strcmp(key, "pku") == 0            ? &c->pku
                  : strcmp(key, "unprotected") == 0  ? &c->unprotected
                  : strcmp(key, "fault_report") == 0 ? &c->fault_report
                  : strcmp(key, "verify") == 0       ? &c->verify
                  : strcmp(key, "stats_print") == 0  ? &c->stats_print
                  : strcmp(key, "magazines") == 0    ? &c->magazines
                  : strcmp(key, "scan") == 0         ? &c->scan
                                                     : NULL;
    if (field == NULL)
        return false;
    if (!strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "1"))
        *field = true;
    else if (!strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "0"))
        *field = false;
    else
        return false;
    return true;
}

static unsigned model_parse(char *text, struct khi_conf *c)
{
    /* The documented defaults. */
    *c = (struct khi_conf){.pku = true,
                           .unprotected = false,
                           .fault_report = true,
                           .verify = false,
                           .watchdog_ms = 0,
                           .stats_print = false,
                           .magazines = true,
                           .keys = 15,
                           .scan = false};
    unsigned problems = 0;
    char *opt = text;
    for (;;) {
        char *comma = strchr(opt, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*opt != '\0' && !model_option(opt, c))
            problems++;
        if (comma == NULL)
            return problems;
        opt = comma + 1;
    }
}

static bool same(const struct khi_conf *a, const struct khi_conf *b)
{
    return a->pku == b->pku && a->unprotected == b->unprotected &&
           a->fault_report == b->fault_report && a->verify == b->verify &&
           a->watchdog_ms == b->watchdog_ms && a->stats_print == b->stats_print &&
           a->magazines == b->magazines && a->keys == b->keys && a->scan == b->scan;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *copy = malloc(size + 1);
    CHECK(text != NULL && copy != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    memcpy(copy, text, size + 1);

    struct khi_conf got, want, defaults;
    memset(&got, 0xa5, sizeof got); /* every field must be written */
    unsigned problems = khi_conf_parse(text, &got);
    CHECK(strcmp(text, copy) == 0); /* the text is left alone */
    unsigned want_problems = model_parse(copy, &want);
    CHECK(same(&got, &want));
    CHECK(problems == want_problems);
    CHECK(got.watchdog_ms <= KHI_WATCHDOG_MAX_MS);
    CHECK(got.keys >= 1 && got.keys <= 15);

    CHECK(khi_conf_parse(NULL, &defaults) == 0);
    if (strchr(text, ':') == NULL)
        CHECK(same(&got, &defaults));
    free(text);
    free(copy);
    return 0;
}
