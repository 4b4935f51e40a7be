/* scan/self.c - keyheap_scan_self (include/keyheap.h): the scan of
 * keyheap-scan --pid over the calling process, one "keyheap: scan: ..."
 * line on standard error per finding.  write(2) only: it runs inside
 * keyheap, which is malloc. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "include/keyheap.h"
#include "scan/scan.h"

static void say(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void self_hit(void *arg, const struct khi_scan_map *m, const struct khi_scan_hit *h,
                     uint64_t rt_vaddr)
{
    (void)arg;
    if (h->kind == KHI_SCAN_KEYHEAP)
        return;
    static const char prefix[] = "keyheap: scan: ";
    char line[4600];
    memcpy(line, prefix, sizeof prefix - 1);
    size_t room = sizeof line - (sizeof prefix - 1) - 1;
    size_t n = khi_scan_format(line + sizeof prefix - 1, room, m->path, h, rt_vaddr);
    n = (n < room ? n : room - 1) + sizeof prefix - 1;
    line[n++] = '\n';
    say(line, n);
}

static void self_map(void *arg, const struct khi_scan_map *m)
{
    (void)arg;
    if (m->why == NULL || strcmp(m->path, "[vsyscall]") == 0)
        return; /* scanned, or the kernel's emulated page (no code of the process) */
    char line[4600];
    size_t n = 0;
    const char *parts[] = {"keyheap: scan: not scanned: ", m->path[0] ? m->path : "[anonymous]",
                           " (", m->perms, "): ", m->why, "\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *s = parts[i]; *s && n < sizeof line - 1; s++)
            line[n++] = *s;
    if (line[n - 1] != '\n')
        line[n++] = '\n';
    say(line, n);
}

KEYHEAP_API int keyheap_scan_self(void)
{
    int saved = errno;
    unsigned unscanned = 0;
    const char *err = NULL;
    long n = khi_scan_pid("self", self_hit, self_map, NULL, &unscanned, &err);
    if (n < 0) {
        static const char msg[] = "keyheap: scan: cannot read /proc/self/maps\n";
        if (errno == 0)
            errno = EIO;
        say(msg, sizeof msg - 1);
        return -1;
    }
    errno = saved;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* KEYHEAP_CONF=scan:true: once, at the first domain created. */
void khi_scan_first(void)
{
    static int done;
    if (__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL) == 0)
        (void)keyheap_scan_self();
}
