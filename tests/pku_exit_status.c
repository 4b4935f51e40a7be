/*
 * pku_exit_status STATUS [ARGS...]: a program for tests/pku-run-selftest.sh.
 *
 * Prints what the runner must pass through unchanged (a line on stderr; on
 * stdout its ARGS, the variable KEYHEAP_SELFTEST_VALUE and the working
 * directory), then exits with STATUS, or dies of SIGABRT if STATUS is
 * "abort".
 */
/* Also defined by the build's AM_CPPFLAGS; either way, before any header. */
#ifndef _GNU_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#endif
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char cwd[PATH_MAX];
    const char *value = getenv("KEYHEAP_SELFTEST_VALUE");

    if (argc < 2) {
        fputs("usage: pku_exit_status STATUS|abort [ARGS...]\n", stderr);
        return 2;
    }
    printf("stdout line\n");
    for (int i = 2; i < argc; i++)
        printf("arg: [%s]\n", argv[i]);
    printf("env: [%s]\n", value ? value : "(unset)");
    printf("cwd: [%s]\n", getcwd(cwd, sizeof(cwd)) ? cwd : "(unknown)");
    fputs("stderr line\n", stderr);
    /* abort() does not flush stdio, and the output must get out first. */
    fflush(NULL);
    if (strcmp(argv[1], "abort") == 0)
        abort();
    return atoi(argv[1]);
}
