/*
 * tests/khfault.c - fault and abort helpers for keyheap's tests.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tests/khfault.h"

#include <check.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int expected_key = -1;
static const void *expected_addr;

static void die(int code, const char *line)
{
    ssize_t unused = write(STDERR_FILENO, line, strlen(line));
    (void)unused;
    _exit(code);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    if (expected_addr != NULL) {
        if (si->si_code == SEGV_ACCERR && si->si_addr == expected_addr)
            _exit(KHT_EXIT_ACCERR_FAULT);
        die(KHT_EXIT_WRONG_FAULT, "khfault: SIGSEGV, not SEGV_ACCERR at the expected address\n");
    }
    if (si->si_code != SEGV_PKUERR)
        die(KHT_EXIT_WRONG_FAULT, "khfault: SIGSEGV, but si_code is not SEGV_PKUERR\n");
    if ((int)si->si_pkey != expected_key)
        die(KHT_EXIT_WRONG_FAULT, "khfault: SEGV_PKUERR on another key\n");
    _exit(KHT_EXIT_PKU_FAULT);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

void kht_expect_pku_fault(int key)
{
    ck_assert_msg(key > 0, "a must-fault test needs a hardware key, got %d", key);
    expected_key = key;
    expected_addr = NULL;
    install();
}

void kht_expect_accerr_fault(const void *addr)
{
    expected_addr = addr;
    install();
}

__attribute__((noinline)) unsigned char kht_read(const void *p)
{
    return *(const volatile unsigned char *)p;
}

__attribute__((noinline)) void kht_write(void *p, unsigned char v)
{
    *(volatile unsigned char *)p = v;
}

unsigned kht_pkru(void)
{
    unsigned eax, edx;
    __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
    (void)edx;
    return eax;
}

void kht_wrpkru(unsigned pkru)
{
    __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(pkru), "c"(0), "d"(0) : "memory");
}

unsigned kht_key_rights(int key)
{
    return (kht_pkru() >> (2 * key)) & 3u;
}

int kht_child_stderr(void (*fn)(void *), void *arg, char *buf, size_t size)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while (n < size - 1 && (got = read(fds[0], buf + n, size - 1 - n)) > 0)
        n += (size_t)got;
    buf[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

void kht_expect_abort(void (*fn)(void *), void *arg, const char *message)
{
    char buf[4096];
    int status = kht_child_stderr(fn, arg, buf, sizeof buf);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "expected death by SIGABRT, status %#x, stderr: %s", status, buf);
    ck_assert_msg(strcmp(buf, message) == 0, "stderr was \"%s\", expected \"%s\"", buf, message);
}
