/*
 * alloc/procfs.c - reading a /proc file line by line, without malloc.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "alloc/procfs.h"

bool khi_proc_lines(const char *path, bool (*each)(const char *line, void *ctx), void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    char buf[4097];
    size_t have = 0;
    bool done = false;
    while (!done) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while (!done && (nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            done = each(line, ctx);
            line = nl + 1;
        }
        have = (size_t)(buf + have - line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1)
            have = 0; /* a line this long is none keyheap reads */
    }
    close(fd);
    return false;
}
