/* tests/khslow.h - see tests/khslow.c. */
#ifndef KH_TESTS_KHSLOW_H
#define KH_TESTS_KHSLOW_H
extern volatile int khslow_hold, khslow_inside, khslow_release;
#endif
