/*
 * tests/programs/indomain_attack.c - a secret that the main thread allocated
 * while running inside the indomain shim's domain, read by another thread.
 *
 *   LD_PRELOAD="libkeyheap.so indomain.so" indomain_attack read
 *   LD_PRELOAD="libkeyheap.so indomain.so" indomain_attack enter-then-read
 *
 * main mallocs the secret with plain malloc (the shim has entered the domain
 * "everything", so the block lands there), checks that it did, and starts one
 * thread.  That thread starts with every domain closed (keyheap's
 * pthread_create wrapper):
 *
 *   read             it reads the secret directly: must die by SIGSEGV with
 *                    si_code SEGV_PKUERR on the domain's key; the handler
 *                    exits EXIT_PKU_FAULT, any other fault EXIT_WRONG_FAULT;
 *                    a read that succeeds exits EXIT_READ_SUCCEEDED.
 *   enter-then-read  it enters the secret's domain first (keyheap_enter of
 *                    keyheap_domain_of(secret)) and reads the whole secret:
 *                    must succeed and match; exits 0.
 *
 * Setup failures exit EXIT_SETUP with a line on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/keyheap.h"

enum {
    EXIT_SETUP = 2,
    EXIT_READ_SUCCEEDED = 3,
    EXIT_MISMATCH = 4,
    EXIT_PKU_FAULT = 42,  /* as KHT_EXIT_PKU_FAULT in tests/khfault.h */
    EXIT_WRONG_FAULT = 43 /* as KHT_EXIT_WRONG_FAULT */
};

static const char secret_text[] = "indomain-secret: 0123456789abcdef";
static char *secret;
static int secret_key;

static __attribute__((noreturn)) void die(int code, const char *line)
{
    ssize_t unused = write(STDERR_FILENO, line, strlen(line));
    (void)unused;
    _exit(code);
}

/* Accepts only SEGV_PKUERR on the secret's key. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    if (si->si_code != SEGV_PKUERR)
        die(EXIT_WRONG_FAULT, "indomain_attack: SIGSEGV, but si_code is not SEGV_PKUERR\n");
    if ((int)si->si_pkey != secret_key)
        die(EXIT_WRONG_FAULT, "indomain_attack: SEGV_PKUERR on another key\n");
    if (si->si_addr != (void *)secret)
        die(EXIT_WRONG_FAULT, "indomain_attack: SEGV_PKUERR at another address\n");
    _exit(EXIT_PKU_FAULT);
}

/* The access under test: out of line, through a volatile pointer. */
__attribute__((noinline)) static unsigned char read_byte(const char *p)
{
    return *(const volatile char *)p;
}

static void *outside_reader(void *arg)
{
    (void)arg;
    if (keyheap_current() != NULL)
        die(EXIT_SETUP, "indomain_attack: the new thread starts inside a domain\n");
    unsigned char c = read_byte(secret);
    char line[96];
    snprintf(line, sizeof line, "indomain_attack: read '%c' from outside the domain\n", c);
    die(EXIT_READ_SUCCEEDED, line);
}

static void *entering_reader(void *arg)
{
    (void)arg;
    keyheap_domain_t *d = keyheap_domain_of(secret);
    keyheap_enter(d);
    int same = 1;
    for (size_t i = 0; i < sizeof secret_text; i++)
        same &= read_byte(secret + i) == (unsigned char)secret_text[i];
    keyheap_leave(d);
    return same ? (void *)secret : NULL;
}

int main(int argc, char **argv)
{
    int enter = argc == 2 && strcmp(argv[1], "enter-then-read") == 0;
    if (argc != 2 || (!enter && strcmp(argv[1], "read") != 0))
        die(EXIT_SETUP, "usage: indomain_attack read|enter-then-read\n");

    keyheap_domain_t *d = keyheap_current();
    if (d == NULL)
        die(EXIT_SETUP, "indomain_attack: main is not inside a domain (preload the shim)\n");
    secret = malloc(sizeof secret_text);
    if (secret == NULL || keyheap_domain_of(secret) != d)
        die(EXIT_SETUP, "indomain_attack: malloc in main did not land in the shim's domain\n");
    memcpy(secret, secret_text, sizeof secret_text);
    secret_key = keyheap_domain_pkey(d);
    if (secret_key <= 0)
        die(EXIT_SETUP, "indomain_attack: the domain has no hardware key\n");

    /* After the shim's keyheap_domain_create, so this replaces keyheap's
     * fault report. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        die(EXIT_SETUP, "indomain_attack: sigaction failed\n");

    pthread_t t;
    void *result = NULL;
    if (pthread_create(&t, NULL, enter ? entering_reader : outside_reader, NULL) != 0 ||
        pthread_join(t, &result) != 0)
        die(EXIT_SETUP, "indomain_attack: pthread_create or pthread_join failed\n");
    if (result != secret)
        die(EXIT_MISMATCH, "indomain_attack: the thread inside the domain read something else\n");
    printf("indomain_attack: the thread inside the domain read the secret\n");
    free(secret);
    return 0;
}
