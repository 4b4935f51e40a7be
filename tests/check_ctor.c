/*
 * tests/check_ctor.c - a library constructor (run under the dynamic
 * loader's lock) creates a domain while another thread creates the
 * process's first domain: neither waits for the other for ever.  keyheap
 * loads libgcc_s at the first domain (domains/spawn.c); done under the
 * domain table's lock, that dlopen would wait for the loader's lock while
 * the constructor waits for the table's.
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <keyheap.h>

#include "tests/khctor.h"
#include "tests/khtest.h"

static keyheap_domain_t *first;
static struct khctor_sync sync_with_ctor;

static void *make_first(void *arg)
{
    (void)arg;
    sync_with_ctor.tid = (long)syscall(SYS_gettid);
    while (!sync_with_ctor.ctor_running)
        sched_yield();
    sync_with_ctor.creating = 1;
    first = keyheap_domain_create("first", 0);
    return NULL;
}

START_TEST(test_first_domain_and_a_constructors_domain_made_at_once_both_succeed)
{
    setenv("KEYHEAP_CONF", "unprotected:true", 1); /* any CPU: the locks are the same */
    char addr[32];
    snprintf(addr, sizeof addr, "%lx", (unsigned long)(uintptr_t)&sync_with_ctor);
    setenv("KHCTOR_SYNC", addr, 1);
    pthread_t b;
    ck_assert_int_eq(pthread_create(&b, NULL, make_first, NULL), 0);
    void *lib = dlopen(KHCTOR_PATH, RTLD_NOW);
    ck_assert_msg(lib != NULL, "dlopen: %s", dlerror());
    pthread_join(b, NULL);
    keyheap_domain_t **made = dlsym(lib, "khctor_domain");
    ck_assert_ptr_nonnull(made);
    ck_assert_ptr_nonnull(*made);
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_ne(*made, first);
    ck_assert_int_eq(keyheap_domain_destroy(*made), 0);
    ck_assert_int_eq(keyheap_domain_destroy(first), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctor");
    TCase *tc = tcase_create("ctor");
    tcase_set_timeout(tc, 30); /* a deadlock ends here */
    tcase_add_test(tc, test_first_domain_and_a_constructors_domain_made_at_once_both_succeed);
    suite_add_tcase(s, tc);
    return kht_main(s);
}
