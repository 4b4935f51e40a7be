#!/usr/bin/env python3
"""fuzz/make-corpus.py - writes the seed corpora fuzz/corpus/api/ and
fuzz/corpus/conf/ (run from the source tree; the files are committed).

API inputs are programs for fuzz/api.c: one byte per operation (its value
modulo 16), then one byte per argument; see LLVMFuzzerTestOneInput there.
"""
import os

CREATE, DESTROY, ENTER, ENTER_RO, LEAVE, MALLOC, CALLOC, ALIGNED, REALLOC, FREE, \
    PLAIN, PLAIN_REALLOC, INSPECT, AUDIT, STATS, STATE = range(16)
PKEY = 0xff   # keyheap_domain_pkey (0xcf, 0xdf, 0xef, 0xff; other 0x?f: STATE)
NOSCRUB, MLOCK, WIPEONFORK, STRICT = 1, 2, 4, 8


def create(flags=0, ch=ord('a')):   # a valid name "d4<ch>"
    return [CREATE, 4, flags, ch]


# size bytes (fuzz/api.c pick_size): 0x00-0x3f: 0-63; 0x40-0x7f: 64-1072;
# 0x80-0xbf: 12-16 KiB; 0xc0-0xf7: large, up to 220 KiB; 0xf8-0xff: huge.
SMALL, MEDIUM, EDGE, LARGE, HUGE = 0x10, 0x50, 0xb0, 0xc8, 0xf8

api = {
    'create-malloc-free': create() + [MALLOC, 0, SMALL, MALLOC, 0, MEDIUM, STATS, 0,
                                      INSPECT, 0, FREE, 0, 0, FREE, 0, 1, STATS, 0, DESTROY, 0, 0],
    'create-errors': [CREATE, 0, 0, CREATE, 1, 0, CREATE, 2, 0, CREATE, 4, 0x10, ord('b'),
                      CREATE, 3, 0, CREATE, 2, 0x10, STATE],
    'inside-plain-malloc': create() + [ENTER, 0, PLAIN, 0, SMALL, 0, PLAIN, 1, MEDIUM, 0,
                                       PLAIN, 2, 0x20, 0, STATE, LEAVE, INSPECT, 0, INSPECT, 1,
                                       STATS, 0],
    'plain-family': create() + [ENTER, 0] + sum(([PLAIN, w, s, a] for w in range(10)
                                                 for s, a in ((SMALL, 0x04), (MEDIUM, 0x83),
                                                              (EDGE, 0x0c))), [])
                    + [LEAVE, STATS, 0],
    'plain-family-outside': sum(([PLAIN, w, s, a] for w in range(10)
                                 for s, a in ((0, 0x03), (HUGE, 0x04), (LARGE, 0x81))), []),
    'huge-and-overflow': create() + [MALLOC, 0, HUGE, MALLOC, 1, HUGE + 1, CALLOC, 0, HUGE + 2, 7,
                                     CALLOC, 1, HUGE + 3, 3, ALIGNED, 0, SMALL, 0x83,
                                     ALIGNED, 1, SMALL, 0x80, ALIGNED, 0, HUGE + 4, 0x05,
                                     MALLOC, 0, SMALL, REALLOC, 0, HUGE + 5, PLAIN_REALLOC, 0, 0xff,
                                     STATS, 0],
    'destroy-busy': create() + [ENTER, 0, DESTROY, 0, 0, ENTER_RO, 0, DESTROY, 0, 0, LEAVE,
                                DESTROY, 0, 0, LEAVE, DESTROY, 0, 0, STATE],
    'nesting': create() + create(0, ord('b')) + create(0, ord('c')) +
               [ENTER, 0, MALLOC, 0, SMALL, ENTER_RO, 1, PLAIN, 0, SMALL, 0, ENTER, 2,
                REALLOC, 0xff, MEDIUM, STATE, ENTER_RO, 0, LEAVE, LEAVE, STATE, LEAVE, LEAVE, STATE],
    'large-guarded-realloc': create() + [MALLOC, 0, LARGE, REALLOC, 0, SMALL, REALLOC, 0, LARGE + 9,
                                         REALLOC, 0, EDGE, ALIGNED, 0, SMALL, 0x0d,
                                         STATS, 0, FREE, 1, 0, FREE, 0, 1],
    'key-exhaustion': sum((create(0, ord('a') + i) for i in range(17)), []) +
                      [DESTROY, 3, 0] + create() + [STATE],
    'flags': create(STRICT) + create(NOSCRUB, ord('n')) + create(WIPEONFORK, ord('w')) +
             create(MLOCK, ord('m')) + create(STRICT | NOSCRUB, ord('s')) +
             sum(([MALLOC, d, SMALL + d, MALLOC, d, LARGE + d] for d in range(5)), []) +
             [FREE, 0, 0, FREE, 1, 2, REALLOC, 2, 0, REALLOC, 0, 0, STATS, 0, STATS, 3],
    'realloc-null-and-zero': create() + [ENTER, 0, REALLOC, 0xff, SMALL, PLAIN_REALLOC, 0xff, MEDIUM,
                                         LEAVE, REALLOC, 0, 0, PLAIN_REALLOC, 0, 0,
                                         REALLOC, 0xff, SMALL, PLAIN_REALLOC, 1, MEDIUM, STATS, 0],
    'deep-nesting': create() + [ENTER, 0] * 40 + [ENTER_RO, 0] * 30 + [MALLOC, 0, SMALL, INSPECT, 0]
                    + [LEAVE] * 10 + [INSPECT, 0],
    'destroy-with-blocks': create() + create(STRICT, ord('s')) +
                           [MALLOC, 0, SMALL, MALLOC, 0, LARGE, MALLOC, 1, MEDIUM,
                            DESTROY, 0, 1, DESTROY, 0, 0, STATE, MALLOC, 0, SMALL],
    # 66 blocks of one size class: the model's table of 64 live blocks
    # fills up; then 20 frees of that class, more than a magazine holds.
    'full-table': create() + [MALLOC, 0, SMALL] * 66 + sum(([FREE, i, 0] for i in range(20)), [])
                  + [MALLOC, 0, SMALL] * 20 + [STATS, 0],
    'audit-stats': create() + [ENTER, 0, AUDIT, 0, AUDIT, 1, MALLOC, 0, SMALL, CALLOC, 0, SMALL, 4,
                               STATS, 0, LEAVE, AUDIT, 3, STATS, 0],
    # The key cache (replayed with KEYHEAP_CONF=keys:2 as well): five
    # domains with blocks, each checked (entered) in turn, so with two keys
    # every check is a miss; then two held by enters, while the others'
    # blocks are freed (NOSCRUB: no key needed), checked, reallocated (both
    # skipped where no key can be had), and all checked again after.
    'key-cache': create() + create(NOSCRUB, ord('b')) + create(STRICT, ord('c')) +
                 create(MLOCK, ord('d')) + create(NOSCRUB | WIPEONFORK, ord('e')) +
                 sum(([MALLOC, d, SMALL + d, MALLOC, d, LARGE + d, CALLOC, d, MEDIUM, 3]
                      for d in range(5)), []) +
                 sum(([INSPECT, i] for i in range(15)), []) +
                 [ENTER, 0, ENTER_RO, 1, STATE, INSPECT, 6, FREE, 12, 0, FREE, 6, 0,
                  REALLOC, 9, MEDIUM, CALLOC, 3, SMALL, 2, ENTER, 2, STATE, STATS, 2, STATS, 4,
                  LEAVE, LEAVE] + sum(([INSPECT, i] for i in range(14)), []) +
                 [REALLOC, 6, LARGE, REALLOC, 9, SMALL, DESTROY, 2, 0, STATE, AUDIT, 0,
                  STATS, 0, STATS, 3],
    # keyheap_domain_pkey pins: with two keys, two pinned domains leave no
    # key for the others (EAGAIN, their enters skipped) until one is
    # destroyed.
    'key-pinning': sum((create(0, ord('a') + i) + [MALLOC, i, MEDIUM + i] for i in range(4)), []) +
                   [PKEY, 0, PKEY, 1, PKEY, 2, PKEY, 3, STATE, PKEY, 0, ENTER, 2, INSPECT, 2,
                    INSPECT, 3, FREE, 2, 0, LEAVE, DESTROY, 0, 0, PKEY, 2, STATE, ENTER, 2,
                    INSPECT, 1, LEAVE, STATE],
    # One thread inside more domains than keyheap has keys: with two keys
    # the third and fourth enters are skipped (keyheap would abort).
    'nesting-past-keys': sum((create(0, ord('a') + i) for i in range(4)), []) +
                         [ENTER, 0, MALLOC, 0, SMALL, ENTER_RO, 1, MALLOC, 1, SMALL, ENTER, 2,
                          MALLOC, 2, SMALL, ENTER, 3, PLAIN, 0, MEDIUM, 0, STATE, INSPECT, 0,
                          INSPECT, 1, INSPECT, 2, LEAVE, LEAVE, STATE, ENTER, 3, INSPECT, 2,
                          LEAVE, LEAVE, LEAVE, INSPECT, 0, STATE],
}

conf = {
    'empty': b'',
    'pku-off': b'pku:off',
    'unprotected': b'pku:off,unprotected:true',
    'every-option': b'pku:on,unprotected:false,fault_report:no,verify:yes,watchdog:250,stats_print:1,magazines:off',
    'magazines': b'magazines:false,magazines:maybe,magazines:1',
    'watchdog-max': b'watchdog:3600000',
    'watchdog-too-big': b'watchdog:3600001,watchdog:99999999',
    'watchdog-bad': b'watchdog:-1,watchdog: 5,watchdog:,watchdog:0x10,watchdog:0000001',
    'not-key-value': b'bogus,pku,:,,,',
    'bad-values': b'pku:maybe,verify:TRUE,stats_print:2,unprotected:true:false',
    'last-wins': b'unprotected:true,unprotected:false,verify:on,verify:off,verify:1',
    'unknown-key': b'pkuu:on,' + b'k' * 200 + b':1',
    'bytes': b'verify:\x01\xff,\x7f:\x80,stats_print:yes',
    'nul-inside': b'verify:on\x00,pku:off',
    'keys': b'keys:2,keys:0,keys:16,keys:0015,keys:,keys:x,keys: 3,keys:1',
}

here = os.path.dirname(os.path.abspath(__file__))
for target, inputs in (('api', api), ('conf', conf)):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for name, data in inputs.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(bytes(data))
