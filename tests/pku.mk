## tests/pku.mk: tests that need memory protection keys (PKU).
## Included by the top Makefile.am, which first initialises check_PROGRAMS,
## TESTS, EXTRA_DIST, CLEANFILES and TEST_EXTENSIONS.
##
## A test program P that needs PKU is listed in TESTS as P.pku.  P.pku is a
## small script, made here, that runs P through tools/pku-run: natively
## where the CPU has PKU, otherwise in a QEMU machine that emulates it.  The
## test's log is P.log as usual.  `make check KEYHEAP_PKU_RUNNER=qemu` uses
## the machine even where the CPU has PKU (GNU make passes command-line
## variables to the tests' environment).
##
## To add one: add P to check_PROGRAMS and P.pku to PKU_TESTS (with +=,
## after the include), not P to TESTS.

PKU_TESTS = tests/check_pkey.pku

check_PROGRAMS += tests/check_pkey tests/pku_exit_status
TESTS += $(PKU_TESTS) tests/pku-run-selftest.sh
# Made with the check programs, before any test runs: the harness (make -j)
# starts a test whose P.pku is still to be made only after the tests that
# are ready, whatever their order in TEST_LOGS.
check_SCRIPTS = $(PKU_TESTS)
TEST_EXTENSIONS += .pku
PKU_LOG_COMPILER = $(SHELL)
EXTRA_DIST += tools/pku-run tests/pku-run-selftest.sh
CLEANFILES += $(PKU_TESTS)

# -no-install: the test programs are real executables (RUNPATH into .libs),
# not libtool wrapper scripts, so pku-run can copy them into the machine.
tests_check_pkey_SOURCES = tests/check_pkey.c
tests_check_pkey_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_pkey_LDADD = $(CHECK_LIBS)
tests_check_pkey_LDFLAGS = $(AM_LDFLAGS) -no-install

tests_pku_exit_status_SOURCES = tests/pku_exit_status.c
tests_pku_exit_status_LDFLAGS = $(AM_LDFLAGS) -no-install

# Absolute paths, so P.pku also works when run by hand from anywhere; bash
# explicitly, so pku-run needs no execute bit in the source tree.
$(PKU_TESTS): $(top_srcdir)/tests/pku.mk
	$(AM_V_GEN)$(MKDIR_P) $(@D) && \
	program=`echo '$@' | sed 's/\.pku$$//'`'$(EXEEXT)' && \
	{ echo '#!/bin/sh'; \
	  echo "# Made by tests/pku.mk: runs $$program where PKU works."; \
	  echo '# In QEMU check_domain alone takes 200 s, and twice that when'; \
	  echo '# make -j2 runs two machines on two cores: 15 minutes before a hang'; \
	  echo '# counts as one.'; \
	  echo 'export KEYHEAP_PKU_TIMEOUT="$${KEYHEAP_PKU_TIMEOUT:-900}"'; \
	  echo "exec bash '$(abs_top_srcdir)/tools/pku-run' '$(abs_top_builddir)/$$program' \"\$$@\""; \
	} >$@-t && chmod +x $@-t && mv -f $@-t $@
