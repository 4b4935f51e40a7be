## bench/bench.mk: the malloc benchmark, `make bench`.
## Included by the top Makefile.am, which first initialises noinst_PROGRAMS,
## EXTRA_DIST and CLEANFILES.
##
## bench/churn is built with the project's warnings but linked to no
## allocator: bench/run.sh picks one per run with LD_PRELOAD and checks that
## the preload took effect.  `make bench` compares the build tree's
## libkeyheap.so with Debian's jemalloc, glibc and mimalloc (the libraries
## configure found); its 5 repetitions take about 1.5 minutes on 2 cores,
## the whole of `make bench` (with bench/domain's rows) 2-3 minutes.
## Options for run.sh go in BENCH_FLAGS, for example
##   make bench BENCH_FLAGS='-n 9 -c background_thread:false'
## (run `bench/run.sh -h` for the list).

noinst_PROGRAMS += bench/churn
bench_churn_SOURCES = bench/churn.c
bench_churn_CPPFLAGS = $(KH_PUBLIC_CPPFLAGS)
bench_churn_CFLAGS = $(AM_CFLAGS) -pthread
bench_churn_LDFLAGS = $(AM_LDFLAGS) -pthread
bench_churn_LDADD = -ldl
EXTRA_DIST += bench/run.sh bench/compare.sh

BENCH_FLAGS =

## After the churn table, bench/compare.sh prints the one comparison table
## from this run's figures (bench/domain's rows, which the top Makefile.am
## runs first as bench-domain, and run.sh's churn:1 and churn:2 processes)
## and writes it to bench/results/compare.md, with a bar chart
## bench/results/compare.svg when configure found gnuplot.
.PHONY: bench
bench: bench/churn$(EXEEXT) libkeyheap.la
	@$(MKDIR_P) bench/results
	$(SHELL) '$(srcdir)/bench/run.sh' -b bench/churn$(EXEEXT) \
	  -k '$(abs_top_builddir)/.libs/libkeyheap.so' \
	  -j '$(JEMALLOC_SO)' -m '$(MIMALLOC_SO)' -o bench/results/churn.raw $(BENCH_FLAGS)
	$(SHELL) '$(srcdir)/bench/compare.sh' -d bench/results/domain.tsv \
	  -r bench/results/churn.raw -o bench/results -g '$(GNUPLOT)' \
	  -c 'make bench BENCH_FLAGS="$(BENCH_FLAGS)"'
CLEANFILES += bench/results/domain.tsv bench/results/churn.raw \
	bench/results/compare.md bench/results/compare.svg \
	bench/results/compare.rows bench/results/compare.dat

## bench/keys: the key cache (issue 13): enter+leave of a resident domain
## with 1000 domains live against raw WRPKRUs, the cost of a miss against
## two pkey_mprotect calls, and a Zipf workload of 1000 domains against
## switching by mprotect and against the all-resident case, each a ratio to
## a reference measured in the same run (docs/benchmarks.md).  It needs
## PKU: `make bench-keys` runs it through tools/pku-run (natively where the
## CPU has PKU, otherwise in QEMU, whose timings are emulated) and writes
## the table to bench/results/keys.md.  Not part of `make bench` or `make
## check`.  Options in BENCH_KEYS_FLAGS (-q: a quick run; -n ROUNDS).
## The output file exists before the run, so that pku-run copies it (and
## its folder) into the machine and the table comes back in it.
## -no-install: a real executable (RUNPATH into .libs), not a libtool
## wrapper script, so that pku-run can copy it into the machine.
noinst_PROGRAMS += bench/keys
bench_keys_SOURCES = bench/keys.c bench/bench.h
bench_keys_CPPFLAGS = $(KH_PUBLIC_CPPFLAGS)
bench_keys_LDFLAGS = $(AM_LDFLAGS) -no-install
bench_keys_LDADD = libkeyheap.la

BENCH_KEYS_FLAGS =

.PHONY: bench-keys
bench-keys: bench/keys$(EXEEXT)
	@$(MKDIR_P) bench/results
	: >bench/results/keys.md-t
	bash '$(top_srcdir)/tools/pku-run' ./bench/keys$(EXEEXT) $(BENCH_KEYS_FLAGS) \
	  -o bench/results/keys.md-t
	mv -f bench/results/keys.md-t bench/results/keys.md
CLEANFILES += bench/results/keys.md bench/results/keys.md-t
