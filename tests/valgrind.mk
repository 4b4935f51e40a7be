## tests/valgrind.mk: make check-valgrind, the tests that do not need PKU
## under valgrind's memcheck, with keyheap in its no-PKU mode (valgrind makes
## pkey_alloc fail).  Included by the top Makefile.am, which first initialises
## check_PROGRAMS, TESTS, TEST_EXTENSIONS, EXTRA_DIST and CLEANFILES and
## defines AM_TESTS_ENVIRONMENT.
##
## A Check program P is listed in VALGRIND_TESTS as tests/valgrind/P.vg: a
## small script, made here, that runs P through tools/valgrind-run (see
## there for the valgrind options).  The scripts are not in TESTS, so make
## check does not run them; make check-valgrind runs automake's harness once
## more with TESTS set to VALGRIND_TESTS.  So they get AM_TESTS_ENVIRONMENT
## like every test, run in parallel under make -j, and log to
## tests/valgrind/P.log, beside (not over) make check's tests/P.log; the
## summary is tests/valgrind/test-suite.log.  A test fails when P fails or
## when memcheck reports any error in any process of the run (exit status 86).
## `make check-valgrind VALGRIND_TESTS=tests/valgrind/check_new.vg` runs one;
## KEYHEAP_VALGRIND_OPTS=--track-origins=yes (in the environment or on the
## make command line) adds valgrind options.
##
## Not run under valgrind (neither program is linked with keyheap, so
## memcheck would watch none of keyheap's code in them):
##  - tests/check_symbols: it runs nm over libkeyheap.so and compares symbol
##    lists.
##  - tests/check_programs: keyheap runs only in the programs it starts with
##    exec and keyheap preloaded (python3, sqlite3, git,
##    tests/programs/containers), which valgrind-run does not follow
##    (--trace-children=no).  Following them would put python3, sqlite3 and
##    git under memcheck: many minutes, and their own errors, not keyheap's.
##  - the PKU tests (PKU_TESTS, tests/pku.mk): valgrind has no protection
##    keys.
##
## To add one: add P to check_PROGRAMS as usual, and tests/valgrind/P.vg to
## VALGRIND_TESTS (with +=, after the include).

VALGRIND_TESTS = \
	tests/valgrind/check_malloc.vg \
	tests/valgrind/check_new.vg \
	tests/valgrind/check_coexist.vg

TEST_EXTENSIONS += .vg
VG_LOG_COMPILER = $(SHELL)
EXTRA_DIST += tools/valgrind-run
CLEANFILES += $(VALGRIND_TESTS) $(VALGRIND_TESTS:.vg=.log) $(VALGRIND_TESTS:.vg=.trs) \
	tests/valgrind/test-suite.log

# Absolute paths of this build (so never committed: .gitignore), so P.vg
# also works when run by hand from anywhere; bash
# explicitly, so valgrind-run needs no execute bit in the source tree.
$(VALGRIND_TESTS): $(top_srcdir)/tests/valgrind.mk Makefile
	$(AM_V_GEN)$(MKDIR_P) $(@D) && \
	program=tests/`basename '$@' .vg`'$(EXEEXT)' && \
	{ echo '#!/bin/sh'; \
	  echo "# Made by tests/valgrind.mk: runs $$program under valgrind's memcheck."; \
	  echo "exec bash '$(abs_top_srcdir)/tools/valgrind-run' '$(abs_top_builddir)/$$program' \"\$$@\""; \
	} >$@-t && chmod +x $@-t && mv -f $@-t $@

# The ordinary harness (make check builds check_PROGRAMS first), on the
# valgrind tests only.  make -j2 check-valgrind runs two at a time.
check-valgrind:
	$(AM_V_at)$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(VALGRIND_TESTS)' \
	  TEST_SUITE_LOG=tests/valgrind/test-suite.log
.PHONY: check-valgrind
