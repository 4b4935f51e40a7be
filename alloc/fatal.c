/*
 * alloc/fatal.c - keyheap's messages and its one way to die.
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc/fatal.h"

/* Builds the whole line first, so that it reaches stderr in one write and
 * does not interleave with other threads' output. */
static void write_line(const char *first, va_list ap)
{
    char line[1024];
    size_t n = 0;
    static const char prefix[] = "keyheap: ";
    memcpy(line, prefix, sizeof prefix - 1);
    n = sizeof prefix - 1;
    for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
        size_t len = strlen(s);
        if (len > sizeof line - 1 - n)
            len = sizeof line - 1 - n;
        memcpy(line + n, s, len);
        n += len;
    }
    line[n++] = '\n';
    for (size_t done = 0; done < n;) {
        ssize_t w = write(STDERR_FILENO, line + done, n - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
}

void khi_fatal(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    write_line(first, ap);
    va_end(ap);
    abort();
}

void khi_warn(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    write_line(first, ap);
    va_end(ap);
}

const char *khi_hex(char *buf, unsigned long p)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = digits[p & 15];
        p >>= 4;
    } while (p != 0);
    buf[0] = '0', buf[1] = 'x';
    for (int i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    buf[2 + n] = '\0';
    return buf;
}

const char *khi_dec(char *buf, unsigned long n)
{
    char tmp[20];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    for (int i = 0; i < k; i++)
        buf[i] = tmp[k - 1 - i];
    buf[k] = '\0';
    return buf;
}
