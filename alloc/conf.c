/*
 * alloc/conf.c - parses KEYHEAP_CONF ("key:value,key:value").
 *
 * Options (docs/configuration.md; keyheap.h):
 *   pku:on|off                off: behave as on a CPU without protection keys
 *   unprotected:true|false    true: without protection keys, domains are
 *                             separate heaps without hardware protection
 *   fault_report:true|false   false: install no SIGSEGV handler
 *   verify:true|false         true: check PKRU against the domain stack at
 *                             every enter and leave; abort on a mismatch
 *   watchdog:<ms>             every <ms> milliseconds (1..3600000) have every
 *                             thread audit and repair its PKRU; 0: off
 *   stats_print:true|false    true: print every live domain's statistics
 *                             (keyheap_domain_stats) on stderr at exit
 *   magazines:true|false      false: no per-thread magazines in front of
 *                             domain heaps (every domain malloc and free
 *                             goes to jemalloc; for debugging)
 *   keys:<n>                  take at most n protection keys (1..15; 15):
 *                             more domains than keys share them through the
 *                             key cache
 *   scan:true|false           true: keyheap_scan_self() once, at the first
 *                             domain created (scan/self.c)
 * Booleans also take on/off, yes/no and 1/0.  An unknown key or a bad value
 * is reported on stderr, quoting the text, and the default stays.
 */
#include "config.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/conf.h"
#include "alloc/fatal.h"

static const struct khi_conf defaults = {
    .pku = true,
    .unprotected = false,
    .fault_report = true,
    .magazines = true,
    .keys = 15,
};

enum kind { BOOL, MILLIS, KEYS };

static const struct option {
    const char *key;
    enum kind kind;
    size_t offset; /* of a bool (BOOL) or an unsigned (MILLIS, KEYS) in struct khi_conf */
} options[] = {
    {"pku", BOOL, offsetof(struct khi_conf, pku)},
    {"unprotected", BOOL, offsetof(struct khi_conf, unprotected)},
    {"fault_report", BOOL, offsetof(struct khi_conf, fault_report)},
    {"verify", BOOL, offsetof(struct khi_conf, verify)},
    {"watchdog", MILLIS, offsetof(struct khi_conf, watchdog_ms)},
    {"stats_print", BOOL, offsetof(struct khi_conf, stats_print)},
    {"magazines", BOOL, offsetof(struct khi_conf, magazines)},
    {"keys", KEYS, offsetof(struct khi_conf, keys)},
    {"scan", BOOL, offsetof(struct khi_conf, scan)},
};

static struct khi_conf conf;
static pthread_once_t conf_once = PTHREAD_ONCE_INIT;

static bool equals(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

static bool parse_bool(const char *v, size_t n, bool *out)
{
    static const char *const yes[] = {"true", "on", "1", "yes"};
    static const char *const no[] = {"false", "off", "0", "no"};
    for (size_t i = 0; i < 4; i++) {
        if (equals(v, n, yes[i]) || equals(v, n, no[i])) {
            *out = equals(v, n, yes[i]);
            return true;
        }
    }
    return false;
}

/* Decimal digits only (leading zeros allowed), at most KHI_WATCHDOG_MAX_MS. */
static bool parse_millis(const char *v, size_t n, unsigned *out)
{
    if (n == 0)
        return false;
    unsigned value = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        value = value * 10 + (unsigned)(v[i] - '0');
        /* Checked at each digit, so value never overflows. */
        if (value > KHI_WATCHDOG_MAX_MS)
            return false;
    }
    *out = value;
    return true;
}

/* Decimal digits only (leading zeros allowed), 1 to 15. */
static bool parse_keys(const char *v, size_t n, unsigned *out)
{
    unsigned value;
    if (!parse_millis(v, n, &value) || value < 1 || value > 15)
        return false;
    *out = value;
    return true;
}

/* Copies n bytes of s into buf as a C string, cut to fit (with "..."), and
 * with bytes that are not printable ASCII shown as '?'. */
static const char *quote(char *buf, size_t cap, const char *s, size_t n)
{
    size_t keep = n < cap - 4 ? n : cap - 4;
    for (size_t i = 0; i < keep; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (keep < n)
        memcpy(buf + keep, "...", 3), keep += 3;
    buf[keep] = '\0';
    return buf;
}

/* Returns 1 when the option was reported as wrong. */
static unsigned parse_option(const char *opt, size_t len, struct khi_conf *c)
{
    char text[128];
    const char *colon = memchr(opt, ':', len);
    if (colon == NULL) {
        khi_warn("KEYHEAP_CONF: \"", quote(text, sizeof text, opt, len),
                 "\" is not key:value; ignored", (char *)NULL);
        return 1;
    }
    size_t klen = (size_t)(colon - opt), vlen = len - klen - 1;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const struct option *o = &options[i];
        if (!equals(opt, klen, o->key))
            continue;
        char *field = (char *)c + o->offset;
        if (o->kind == BOOL     ? parse_bool(colon + 1, vlen, (bool *)field)
            : o->kind == MILLIS ? parse_millis(colon + 1, vlen, (unsigned *)(void *)field)
                                : parse_keys(colon + 1, vlen, (unsigned *)(void *)field))
            return 0;
        khi_warn("KEYHEAP_CONF: bad value in \"", quote(text, sizeof text, opt, len), "\" (",
                 o->kind == BOOL     ? "expected true or false"
                 : o->kind == MILLIS ? "expected milliseconds, 0 to 3600000"
                                     : "expected a number of keys, 1 to 15",
                 "); default kept", (char *)NULL);
        return 1;
    }
    khi_warn("KEYHEAP_CONF: unknown option \"", quote(text, sizeof text, opt, len), "\"; ignored",
             (char *)NULL);
    return 1;
}

unsigned khi_conf_parse(const char *s, struct khi_conf *c)
{
    unsigned problems = 0;
    *c = defaults;
    if (s == NULL)
        return 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        if (len > 0)
            problems += parse_option(s, len, c);
        s += len;
        if (*s == ',')
            s++;
    }
    return problems;
}

static void parse(void)
{
    khi_conf_parse(getenv("KEYHEAP_CONF"), &conf);
}

const struct khi_conf *khi_conf_get(void)
{
    pthread_once(&conf_once, parse);
    return &conf;
}
