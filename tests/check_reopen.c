/*
 * tests/check_reopen.c - keyheap's pthread_create closes the creator's
 * keys around the real call and opens them again afterwards.  A destroy
 * that runs meanwhile closes its key in the creator (which had it open by
 * hand: stale, as code behind keyheap's back could) and hands the key to
 * the next domain; opening again must not give the creator that domain.
 * tests/khslow.c makes the real call wait until the destroy is done.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <keyheap.h>

#include "tests/khfault.h"
#include "tests/khslow.h"
#include "tests/khtest.h"

static keyheap_domain_t *next;
static unsigned char *secret;
static int first_key, twin;
static volatile unsigned char seen;
static volatile int next_ready;

static void *nothing(void *arg)
{
    return arg;
}

static void *creator(void *arg)
{
    (void)arg;
    kht_wrpkru(kht_pkru() & ~(3u << (2 * first_key)));
    khslow_hold = 1;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, nothing, NULL), 0); /* the destroy runs here */
    pthread_join(t, NULL);
    struct timespec ms = {0, 1000000};
    while (!next_ready)
        nanosleep(&ms, NULL);
    if (twin) {
        keyheap_enter(next);
        seen = kht_read(secret + 5);
        keyheap_leave(next);
    } else {
        seen = kht_read(secret + 5);
    }
    return NULL;
}

static void destroy_during_pthread_create(void)
{
    keyheap_domain_t *first = keyheap_domain_create("reopen-first", 0);
    ck_assert_ptr_nonnull(first);
    first_key = keyheap_domain_pkey(first);
    ck_assert_msg(first_key > 0, "no hardware key: run this test through tools/pku-run");
    pthread_t c;
    ck_assert_int_eq(pthread_create(&c, NULL, creator, NULL), 0);
    struct timespec ms = {0, 1000000};
    while (!khslow_inside)
        nanosleep(&ms, NULL);
    ck_assert_int_eq(keyheap_domain_destroy(first), 0);
    next = keyheap_domain_create("reopen-next", 0);
    ck_assert_ptr_nonnull(next);
    ck_assert_int_eq(keyheap_domain_pkey(next), first_key); /* every thread answered */
    secret = keyheap_malloc(next, 64);
    ck_assert_ptr_nonnull(secret);
    keyheap_enter(next);
    memset(secret, 0x7e, 64);
    keyheap_leave(next);
    if (!twin)
        kht_expect_pku_fault(first_key);
    next_ready = 1;
    khslow_release = 1;
    pthread_join(c, NULL);
    ck_assert_uint_eq(seen, 0x7e);
}

START_TEST(test_creator_never_reopens_a_key_a_destroy_closed_during_pthread_create)
{
    twin = 0;
    destroy_during_pthread_create();
}
END_TEST

START_TEST(test_creator_reads_the_next_domain_after_entering_it)
{
    twin = 1;
    destroy_during_pthread_create();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reopen");
    TCase *tc = tcase_create("reopen");
    tcase_set_timeout(tc, 120);
    tcase_add_exit_test(tc, test_creator_never_reopens_a_key_a_destroy_closed_during_pthread_create,
                        KHT_EXIT_PKU_FAULT);
    tcase_add_test(tc, test_creator_reads_the_next_domain_after_entering_it);
    suite_add_tcase(s, tc);
    return kht_main(s);
}
