/* tests/khctor.h - what tests/check_ctor.c and tests/khctor.c share. */
#ifndef KH_TESTS_KHCTOR_H
#define KH_TESTS_KHCTOR_H
struct khctor_sync {
    volatile int ctor_running; /* the constructor runs (the loader's lock is held) */
    volatile int creating;     /* the other thread is calling keyheap_domain_create */
    volatile long tid;         /* that thread */
};
#endif
