## fuzz/fuzz.mk: the libFuzzer targets (fuzz/api.c, fuzz/conf.c), their
## corpus replay in make check, and make fuzz.  Included by the top
## Makefile.am after the tests.
##
## make check builds each target with fuzz/replay.c instead of libFuzzer,
## with the configured compiler, and replays every file of
## fuzz/corpus/<target>/: the API target with real protection keys (through
## tools/pku-run: natively where the CPU has PKU, otherwise in QEMU), once
## more with a key cache of two keys (KEYHEAP_CONF=keys:2: more domains
## than keys), and natively in keyheap's no-PKU mode
## (KEYHEAP_CONF=pku:off,unprotected:true).
##
## make fuzz builds fuzz/api-fuzzer and fuzz/conf-fuzzer (and
## fuzz/api-replace-fuzzer, below) with clang
## (FUZZ_CC, default clang-14; Debian: apt-get install clang-14
## libclang-rt-14-dev) and -fsanitize=fuzzer,address,undefined, against the
## library's sources compiled again here as a build without malloc
## replacement (-DKH_NO_MALLOC_REPLACEMENT, as configure
## --disable-malloc-replacement does), instrumented for coverage and
## linked into fuzz/lib/libkeyheap-fuzz.so: AddressSanitizer and libFuzzer
## own malloc, keyheap only its keyheap_* API.  A shared library rather than
## objects in the program, so that keyheap's pthread_create wrapper stays
## behind AddressSanitizer's interceptor instead of replacing it.  The conf
## target links alloc/conf.c and alloc/fatal.c themselves: the parser,
## khi_conf_parse, is hidden in the library.  tools/fuzz-run runs them
## (README, "Fuzzing").

check_PROGRAMS += fuzz/replay_api fuzz/replay_conf fuzz/replay_scan
fuzz_replay_api_SOURCES = fuzz/replay.c fuzz/api.c
fuzz_replay_api_CPPFLAGS = $(KH_PUBLIC_CPPFLAGS)
fuzz_replay_api_CFLAGS = $(AM_CFLAGS)
fuzz_replay_api_LDFLAGS = -no-install
fuzz_replay_api_LDADD = libkeyheap.la -ldl
fuzz_replay_conf_SOURCES = fuzz/replay.c fuzz/conf.c fuzz/check.h alloc/conf.c alloc/fatal.c
fuzz_replay_conf_CFLAGS = $(AM_CFLAGS)
fuzz_replay_conf_LDFLAGS = -no-install
fuzz_replay_conf_LDADD = -lpthread

# keyheap-scan's core (scan/): the ELF reader and the decoder over arbitrary
# bytes.  Its corpus, fuzz/corpus/scan/, was made with the compiler from
# tests/scan/gadgets.s (gadgets-so: -shared -nostdlib; gadgets-exe:
# -no-pie -nostdlib, both -z noseparate-code to stay small;
# gadgets-exe-stripped: strip; truncated: its first 100 bytes) and from a
# function with one WRPKRU in .keyheap_wrpkru, one not, and one in an
# immediate (keyheap-table); raw-instructions is a few encodings (REX,
# EVEX, VEX, XOP, 66 with a rel16, moffs, ENTER, TEST imm32), no ELF;
# misaligned-headers is the first input the fuzzer found (program headers
# at an odd offset: scan.c read them in place, unaligned; now memcpy).
fuzz_replay_scan_SOURCES = fuzz/replay.c fuzz/scan.c fuzz/check.h scan/decode.c scan/scan.c
fuzz_replay_scan_CFLAGS = $(AM_CFLAGS)
fuzz_replay_scan_LDFLAGS = -no-install

TESTS += fuzz/replay-api-pku.test fuzz/replay-api-keys2.test fuzz/replay-api-nopku.test \
	fuzz/replay-conf.test fuzz/replay-scan.test
TEST_EXTENSIONS += .test
TEST_LOG_COMPILER = $(SHELL)
EXTRA_DIST += fuzz/fuzz.mk fuzz/corpus fuzz/make-corpus.py tools/fuzz-run \
	fuzz/replay-api-pku.test fuzz/replay-api-keys2.test fuzz/replay-api-nopku.test \
	fuzz/replay-conf.test fuzz/replay-scan.test fuzz/scan.c

# ------------------------------------------------------------ make fuzz
FUZZ_CC = clang-14
FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -g -O1 -std=c11 -fPIC $(FUZZ_SANITIZE) -DKH_NO_MALLOC_REPLACEMENT=1 \
	$(DEFS) -I$(top_builddir) $(AM_CPPFLAGS) $(KH_CFLAGS)
FUZZ_LIB_OBJECTS = $(patsubst %.c,fuzz/lib/%.o,$(filter %.c,$(libkeyheap_la_SOURCES)))
FUZZ_DEPEND = $(srcdir)/include/keyheap.h $(top_builddir)/config.h \
	$(addprefix $(srcdir)/,$(filter %.h,$(libkeyheap_la_SOURCES)))
# fuzz/api.c (and fuzz/replay.c) are compiled as a user's program is, as in
# make check: the public header only (KH_PUBLIC_CPPFLAGS), without config.h,
# the internal headers or the library's -D flags.  FUZZ_API_CFLAGS here,
# FUZZ_REPLACE_API_CFLAGS and FUZZ_COVERAGE_API_CFLAGS below.
FUZZ_API_CFLAGS = -g -O1 -std=c11 -fPIC $(FUZZ_SANITIZE) $(KH_PUBLIC_CPPFLAGS) $(KH_CFLAGS)

fuzz/lib/%.o: $(srcdir)/%.c $(FUZZ_DEPEND)
	@$(MKDIR_P) $(@D)
	$(AM_V_CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

fuzz/lib/libkeyheap-fuzz.so: $(FUZZ_LIB_OBJECTS) alloc/kh_jemalloc.a
	$(AM_V_CCLD)$(FUZZ_CC) -shared -o $@ -Wl,-soname,libkeyheap-fuzz.so \
	  $(FUZZ_LIB_OBJECTS) alloc/kh_jemalloc.a -Wl,--exclude-libs,ALL -ldl -lpthread

fuzz/api-fuzzer: $(srcdir)/fuzz/api.c fuzz/lib/libkeyheap-fuzz.so $(srcdir)/include/keyheap.h
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_API_CFLAGS) -fsanitize=fuzzer -o $@ $(srcdir)/fuzz/api.c \
	  fuzz/lib/libkeyheap-fuzz.so -Wl,-rpath,$(abs_top_builddir)/fuzz/lib -ldl

# The parser's files: the library's sources that fuzz/replay_conf links.
FUZZ_CONF_OBJECTS = $(patsubst %.c,fuzz/lib/%.o,$(filter-out fuzz/%,$(fuzz_replay_conf_SOURCES)))
fuzz/conf-fuzzer: $(srcdir)/fuzz/conf.c $(FUZZ_CONF_OBJECTS)
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(srcdir)/fuzz/conf.c \
	  $(FUZZ_CONF_OBJECTS) -lpthread

# fuzz/api-replace-fuzzer: the API target against a library that does
# replace the malloc family (as a default build does), so that keyheap's own
# malloc, memalign, posix_memalign, ... are fuzzed too, inside and outside
# domains.  No AddressSanitizer there (it would own malloc): UBSan only; the
# model's content checks catch corruption.
FUZZ_REPLACE_CFLAGS = -g -O1 -std=c11 -fPIC -fsanitize=undefined -fno-sanitize-recover=all \
	$(DEFS) -I$(top_builddir) $(AM_CPPFLAGS) $(KH_CFLAGS)
FUZZ_REPLACE_API_CFLAGS = -g -O1 -std=c11 -fPIC -fsanitize=undefined -fno-sanitize-recover=all \
	$(KH_PUBLIC_CPPFLAGS) $(KH_CFLAGS)
FUZZ_REPLACE_OBJECTS = $(patsubst %.c,fuzz/lib-replace/%.o,$(filter %.c,$(libkeyheap_la_SOURCES)))

fuzz/lib-replace/%.o: $(srcdir)/%.c $(FUZZ_DEPEND)
	@$(MKDIR_P) $(@D)
	$(AM_V_CC)$(FUZZ_CC) $(FUZZ_REPLACE_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

fuzz/lib-replace/libkeyheap-replace.so: $(FUZZ_REPLACE_OBJECTS) alloc/kh_jemalloc.a
	$(AM_V_CCLD)$(FUZZ_CC) -shared -o $@ -Wl,-soname,libkeyheap-replace.so \
	  $(FUZZ_REPLACE_OBJECTS) alloc/kh_jemalloc.a -Wl,--exclude-libs,ALL -ldl -lpthread

fuzz/api-replace-fuzzer: $(srcdir)/fuzz/api.c fuzz/lib-replace/libkeyheap-replace.so \
		$(srcdir)/include/keyheap.h
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_REPLACE_API_CFLAGS) -fsanitize=fuzzer -o $@ $(srcdir)/fuzz/api.c \
	  fuzz/lib-replace/libkeyheap-replace.so -Wl,-rpath,$(abs_top_builddir)/fuzz/lib-replace -ldl

# The scanner's files: scan/ as the keyheap-scan program has them.
FUZZ_SCAN_OBJECTS = fuzz/lib/scan/decode.o fuzz/lib/scan/scan.o
fuzz/scan-fuzzer: $(srcdir)/fuzz/scan.c $(FUZZ_SCAN_OBJECTS)
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(srcdir)/fuzz/scan.c \
	  $(FUZZ_SCAN_OBJECTS)

fuzz: fuzz/api-fuzzer fuzz/conf-fuzzer fuzz/api-replace-fuzzer fuzz/scan-fuzzer
.PHONY: fuzz

# ---------------------------------------------------- make fuzz-coverage
# How much of the library the API corpus reaches: fuzz/api.c and
# fuzz/replay.c linked with the library's sources, all compiled with
# clang's source-based coverage (no sanitizers, no malloc replacement),
# replayed over FUZZ_COVERAGE_CORPUS natively in the no-PKU mode and with
# real keys through tools/pku-run (which brings the profile back out of
# the QEMU machine), all of them and two (KEYHEAP_CONF=keys:2: the key
# cache's misses and evictions).  Prints llvm-cov's report for alloc/ and domains/ and
# writes it as HTML to fuzz/coverage/html/.
FUZZ_COVERAGE_CORPUS = $(srcdir)/fuzz/corpus/api $(wildcard fuzz/work/api)
FUZZ_PROFDATA = llvm-profdata-14
FUZZ_COV = llvm-cov-14
FUZZ_COVERAGE_CFLAGS = -g -O1 -std=c11 -fprofile-instr-generate -fcoverage-mapping \
	-DKH_NO_MALLOC_REPLACEMENT=1 $(DEFS) -I$(top_builddir) $(AM_CPPFLAGS) $(KH_CFLAGS)
FUZZ_COVERAGE_API_CFLAGS = -g -O1 -std=c11 -fprofile-instr-generate -fcoverage-mapping \
	$(KH_PUBLIC_CPPFLAGS) $(KH_CFLAGS)
FUZZ_COVERAGE_OBJECTS = $(patsubst %.c,fuzz/coverage/%.o,$(filter %.c,$(libkeyheap_la_SOURCES)))

fuzz/coverage/%.o: $(srcdir)/%.c $(FUZZ_DEPEND)
	@$(MKDIR_P) $(@D)
	$(AM_V_CC)$(FUZZ_CC) $(FUZZ_COVERAGE_CFLAGS) -c -o $@ $<

fuzz/coverage/api-replay: $(srcdir)/fuzz/api.c $(srcdir)/fuzz/replay.c $(FUZZ_COVERAGE_OBJECTS) \
		alloc/kh_jemalloc.a $(srcdir)/include/keyheap.h
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_COVERAGE_API_CFLAGS) -o $@ $(srcdir)/fuzz/api.c \
	  $(srcdir)/fuzz/replay.c $(FUZZ_COVERAGE_OBJECTS) alloc/kh_jemalloc.a -ldl -lpthread -lm

fuzz-coverage: fuzz/coverage/api-replay
	@for tool in $(FUZZ_PROFDATA) $(FUZZ_COV); do command -v $$tool >/dev/null || { \
	  echo "keyheap: fuzz-coverage: $$tool not found (apt-get install llvm-14; tools/install-deps does)" >&2; \
	  exit 1; }; done
	rm -rf fuzz/coverage/profiles fuzz/coverage/html
	$(MKDIR_P) fuzz/coverage/profiles
	LLVM_PROFILE_FILE=$(abs_top_builddir)/fuzz/coverage/profiles/nopku.profraw \
	  KEYHEAP_CONF=pku:off,unprotected:true fuzz/coverage/api-replay $(FUZZ_COVERAGE_CORPUS) \
	  >fuzz/coverage/nopku.log 2>&1 || { cat fuzz/coverage/nopku.log; exit 1; }
	@echo "no keys: `tail -n 1 fuzz/coverage/nopku.log`"
	corpus=`for d in $(FUZZ_COVERAGE_CORPUS); do (cd "$$d" && pwd -P); done`; \
	  cd fuzz/coverage/profiles && LLVM_PROFILE_FILE=pku.profraw KEYHEAP_PKU_ENV=LLVM_PROFILE_FILE \
	  KEYHEAP_PKU_TIMEOUT=3600 bash $(abs_top_srcdir)/tools/pku-run ../api-replay $$corpus \
	  >../pku.log 2>&1 || { cat ../pku.log; exit 1; }
	@echo "real keys: `grep '^replay: [0-9]* inputs' fuzz/coverage/pku.log`"
	corpus=`for d in $(FUZZ_COVERAGE_CORPUS); do (cd "$$d" && pwd -P); done`; \
	  cd fuzz/coverage/profiles && LLVM_PROFILE_FILE=keys2.profraw KEYHEAP_PKU_ENV=LLVM_PROFILE_FILE \
	  KEYHEAP_CONF=keys:2 KEYHEAP_PKU_TIMEOUT=3600 bash $(abs_top_srcdir)/tools/pku-run \
	  ../api-replay $$corpus >../keys2.log 2>&1 || { cat ../keys2.log; exit 1; }
	@echo "two keys: `grep '^replay: [0-9]* inputs' fuzz/coverage/keys2.log`"
	$(FUZZ_PROFDATA) merge -o fuzz/coverage/api.profdata fuzz/coverage/profiles/*.profraw
	$(FUZZ_COV) show -format=html -output-dir=fuzz/coverage/html -instr-profile=fuzz/coverage/api.profdata \
	  fuzz/coverage/api-replay $(abs_top_srcdir)/alloc $(abs_top_srcdir)/domains
	$(FUZZ_COV) report -instr-profile=fuzz/coverage/api.profdata fuzz/coverage/api-replay \
	  $(abs_top_srcdir)/alloc $(abs_top_srcdir)/domains
	@echo "keyheap: fuzz-coverage: the corpus ($(FUZZ_COVERAGE_CORPUS)) without keys, with keys and with keys:2; lines in fuzz/coverage/html/index.html"
.PHONY: fuzz-coverage

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf fuzz/lib fuzz/lib-replace fuzz/api-fuzzer fuzz/conf-fuzzer fuzz/api-replace-fuzzer \
	  fuzz/scan-fuzzer \
	  fuzz/work fuzz/coverage
.PHONY: clean-fuzz
