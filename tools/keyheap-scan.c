/* keyheap-scan - finds WRPKRU and XRSTOR/XRSTOR64 in executable code
 * (man/keyheap-scan.1).
 *
 *   keyheap-scan [-v] FILE...
 *   keyheap-scan [-v] --pid PID
 *
 * One line per finding on standard output (scan/scan.h, khi_scan_format);
 * with --pid, one line per executable mapping, scanned or not; then a
 * summary line and the note on what it cannot see.  Errors go to standard
 * error.  Exit status: 0 when nothing but keyheap's own sequences was
 * found, 1 when there is a finding, 2 on an error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scan/scan.h"

static int verbose;
static unsigned long own_count;

struct file_ctx {
    const char *path;
};

static void print_hit(const char *path, const struct khi_scan_hit *h, uint64_t vaddr)
{
    if (h->kind == KHI_SCAN_KEYHEAP) {
        own_count++;
        if (!verbose)
            return;
    }
    char line[8192];
    khi_scan_format(line, sizeof line, path, h, vaddr);
    puts(line);
}

static void file_hit(void *arg, const struct khi_scan_hit *h)
{
    print_hit(((struct file_ctx *)arg)->path, h, h->vaddr);
}

static void pid_hit(void *arg, const struct khi_scan_map *m, const struct khi_scan_hit *h,
                    uint64_t rt_vaddr)
{
    (void)arg;
    print_hit(m->path, h, rt_vaddr);
}

static void pid_map(void *arg, const struct khi_scan_map *m)
{
    (void)arg;
    const char *path = m->path[0] ? m->path : "[anonymous]";
    if (m->why == NULL)
        printf("keyheap-scan: scanned %s (0x%llx-0x%llx %s)\n", path,
               (unsigned long long)m->start, (unsigned long long)m->end, m->perms);
    else
        printf("keyheap-scan: not scanned: %s (0x%llx-0x%llx %s): %s\n", path,
               (unsigned long long)m->start, (unsigned long long)m->end, m->perms, m->why);
}

/* Scans one file; returns its findings or -1 after printing the error. */
static long scan_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "keyheap-scan: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "keyheap-scan: %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "keyheap-scan: %s: not a regular file\n", path);
        close(fd);
        return -1;
    }
    const char *err = "empty file: not an ELF file";
    long r = -1;
    if (st.st_size > 0) {
        void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (img == MAP_FAILED) {
            fprintf(stderr, "keyheap-scan: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        struct file_ctx c = {path};
        r = khi_scan_elf(img, (size_t)st.st_size, 0, (uint64_t)st.st_size, file_hit, &c, &err);
        munmap(img, (size_t)st.st_size);
    }
    close(fd);
    if (r < 0)
        fprintf(stderr, "keyheap-scan: %s: %s\n", path, err);
    return r;
}

static int usage(FILE *f, int status)
{
    fputs("usage: keyheap-scan [-v] FILE...\n"
          "       keyheap-scan [-v] --pid PID\n"
          "Reports every WRPKRU and XRSTOR/XRSTOR64 in the executable segments of ELF files\n"
          "or of a running process, one line each; -v also lists keyheap's own WRPKRUs.\n"
          "Exit status: 0 nothing found but keyheap's own, 1 a finding, 2 an error.\n",
          f);
    return status;
}

int main(int argc, char **argv)
{
    const char *pid = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
            pid = argv[++i];
        else if (strncmp(argv[i], "--pid=", 6) == 0)
            pid = argv[i] + 6;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage(stdout, 0);
        else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else
            return usage(stderr, 2);
    }
    long findings = 0;
    int error = 0;
    if (pid != NULL) {
        if (i != argc)
            return usage(stderr, 2);
        char *end;
        errno = 0;
        long v = strtol(pid, &end, 10);
        if ((strcmp(pid, "self") != 0 && (*pid == 0 || *end != 0 || v <= 0 || errno != 0))) {
            fprintf(stderr, "keyheap-scan: --pid %s: not a process id\n", pid);
            return 2;
        }
        unsigned unscanned = 0;
        const char *err = NULL;
        findings = khi_scan_pid(pid, pid_hit, pid_map, NULL, &unscanned, &err);
        if (findings < 0) {
            fprintf(stderr, "keyheap-scan: --pid %s: %s\n", pid, err);
            return 2;
        }
        if (unscanned != 0)
            error = 0; /* listed above, with the reason; they are not errors */
    } else {
        if (i == argc)
            return usage(stderr, 2);
        for (; i < argc; i++) {
            long r = scan_file(argv[i]);
            if (r < 0)
                error = 1;
            else
                findings += r;
        }
    }
    printf("keyheap-scan: %ld finding%s, %lu of keyheap's own WRPKRUs\n", findings,
           findings == 1 ? "" : "s", own_count);
    printf("keyheap-scan: %s\n", khi_scan_blind);
    if (fflush(stdout) != 0)
        return 2;
    return error ? 2 : findings > 0 ? 1 : 0;
}
