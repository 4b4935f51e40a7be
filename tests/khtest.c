/*
 * tests/khtest.c - helpers shared by keyheap's Check tests.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tests/khtest.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *kht_env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v != NULL && *v != '\0',
                  "environment variable %s is not set: run this test with make check", name);
    return v;
}

static void redirect(const char *path, int fd, int flags)
{
    if (path == NULL)
        return;
    int f = open(path, flags, 0644);
    if (f < 0 || dup2(f, fd) < 0)
        _exit(126);
    close(f);
}

static char **child_env(const char *preload, char *const extra_env[])
{
    size_t n = 0, extra = 0;
    while (environ[n] != NULL)
        n++;
    while (extra_env != NULL && extra_env[extra] != NULL)
        extra++;
    char **env = calloc(n + extra + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < extra; i++)
        env[k++] = extra_env[i];
    if (preload != NULL) {
        static char buf[4096];
        snprintf(buf, sizeof buf, "LD_PRELOAD=%s", preload);
        env[k++] = buf;
    }
    return env;
}

int kht_run(char *const argv[], const char *preload, char *const extra_env[],
            const char *in_path, const char *out_path, const char *err_path)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        redirect(in_path ? in_path : "/dev/null", 0, O_RDONLY);
        redirect(out_path, 1, O_WRONLY | O_CREAT | O_TRUNC);
        redirect(err_path, 2, O_WRONLY | O_CREAT | O_TRUNC);
        execvpe(argv[0], argv, child_env(preload, extra_env));
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

char *kht_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static char tmpdir[4096];

const char *kht_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/keyheap-test.XXXXXX", base ? base : "/tmp");
        ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp %s failed", tmpdir);
    }
    return tmpdir;
}

void kht_cleanup(void)
{
    if (tmpdir[0] != '\0') {
        char *argv[] = {"rm", "-rf", tmpdir, NULL};
        kht_run(argv, NULL, NULL, NULL, NULL, NULL);
        tmpdir[0] = '\0';
    }
}

int kht_raw_clone(int (*fn)(void *), void *arg)
{
    size_t size = 256 * 1024;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(stack, MAP_FAILED);
    int tid = clone(fn, stack + size,
                    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                        CLONE_SYSVSEM,
                    arg);
    ck_assert_int_gt(tid, 0);
    return tid;
}

size_t kht_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert(f != NULL);
    unsigned long size, resident;
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

const char *kht_object_of(const void *addr)
{
    Dl_info info;
    ck_assert_msg(dladdr(addr, &info) != 0, "dladdr(%p) found no object", addr);
    return info.dli_fname;
}

const char *kht_provider(const char *name)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    ck_assert_msg(sym != NULL, "%s not found", name);
    return kht_object_of(sym);
}

int kht_main(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
