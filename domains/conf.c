/*
 * domains/conf.c - parses KEYHEAP_CONF ("key:value,key:value").
 *
 * Options (README, "Configuration"):
 *   pku:on|off              off: behave as on a CPU without protection keys
 *   unprotected:true|false  true: without protection keys, domains are
 *                           separate heaps without hardware protection
 * An unknown key or a bad value is reported on stderr, quoting the text, and
 * the default stays.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "domains/conf.h"
#include "domains/fatal.h"

static struct khi_conf conf = {.pku = true, .unprotected = false};
static pthread_once_t conf_once = PTHREAD_ONCE_INIT;

static bool parse_bool(const char *v, size_t n, bool *out)
{
    static const char *const yes[] = {"true", "on", "1", "yes"};
    static const char *const no[] = {"false", "off", "0", "no"};
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == n && memcmp(v, yes[i], n) == 0) {
            *out = true;
            return true;
        }
        if (strlen(no[i]) == n && memcmp(v, no[i], n) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Copies n bytes of s into buf as a C string, cut to fit. */
static const char *quote(char *buf, size_t cap, const char *s, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

static void parse_option(const char *opt, size_t len)
{
    char text[128];
    const char *colon = memchr(opt, ':', len);
    if (colon == NULL) {
        khi_warn("KEYHEAP_CONF: \"", quote(text, sizeof text, opt, len),
                 "\" is not key:value; ignored", (char *)NULL);
        return;
    }
    size_t klen = (size_t)(colon - opt), vlen = len - klen - 1;
    bool *target = NULL;
    if (klen == 3 && memcmp(opt, "pku", 3) == 0)
        target = &conf.pku;
    else if (klen == 11 && memcmp(opt, "unprotected", 11) == 0)
        target = &conf.unprotected;
    if (target == NULL) {
        khi_warn("KEYHEAP_CONF: unknown option \"", quote(text, sizeof text, opt, len),
                 "\"; ignored", (char *)NULL);
        return;
    }
    if (!parse_bool(colon + 1, vlen, target))
        khi_warn("KEYHEAP_CONF: bad value in \"", quote(text, sizeof text, opt, len),
                 "\" (expected true or false); default kept", (char *)NULL);
}

static void parse(void)
{
    const char *s = getenv("KEYHEAP_CONF");
    if (s == NULL)
        return;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        if (len > 0)
            parse_option(s, len);
        s += len;
        if (*s == ',')
            s++;
    }
}

const struct khi_conf *khi_conf_get(void)
{
    pthread_once(&conf_once, parse);
    return &conf;
}
