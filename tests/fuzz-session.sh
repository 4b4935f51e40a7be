#!/bin/sh
# tests/fuzz-session.sh - a user's fuzz target finds a planted over-read into
# a domain, and keyheap's fault report names the domain in libFuzzer's output.
#
# Builds examples/fuzz_session.c with clang's libFuzzer (-fsanitize=fuzzer)
# against the build tree's libkeyheap.so, runs it through tools/pku-run
# (natively on a CPU with PKU, in the QEMU machine otherwise) for at most
# KEYHEAP_FUZZ_SESSION_SECONDS (default 120) seconds, and checks that:
#   - libFuzzer found a crash and saved its input ("Test unit written"),
#     and the file is there (pku-run brings it back out of the machine);
#   - keyheap's report came first, for a read in domain "session-key";
#   - the process died of it (libFuzzer's deadly-signal report);
#   - the saved input, run again on its own, gives the same report.
# Environment (make check sets the first two): KEYHEAP_SRCDIR,
# KEYHEAP_BUILDDIR; KEYHEAP_CLANG (default clang-14).
set -u
srcdir=${KEYHEAP_SRCDIR:?KEYHEAP_SRCDIR is not set (run through make check)}
builddir=${KEYHEAP_BUILDDIR:?KEYHEAP_BUILDDIR is not set (run through make check)}
clang=${KEYHEAP_CLANG:-clang-14}
seconds=${KEYHEAP_FUZZ_SESSION_SECONDS:-120}

fail() {
    echo "keyheap: fuzz-session: $*" >&2
    exit 1
}

command -v "$clang" >/dev/null 2>&1 ||
    fail "$clang not found: install clang-14 and libclang-rt-14-dev (tools/install-deps)"

work=$(mktemp -d "${TMPDIR:-/tmp}/keyheap-fuzz-session.XXXXXX") || fail "mktemp failed"
trap 'rm -rf "$work"' EXIT

"$clang" -g -O1 -fsanitize=fuzzer -I"$srcdir/include" "$srcdir/examples/fuzz_session.c" \
    -o "$work/fuzz_session" -L"$builddir/.libs" -lkeyheap -Wl,-rpath,"$builddir/.libs" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "cannot build the target"; }

cd "$work" || fail "cd $work"
# keyheap's report of the planted read, as a grep pattern.
report_re='^keyheap: protection-key fault: thread [0-9]* read of 0x[0-9a-f]* in domain "session-key" (pkey [0-9]*) at ip 0x[0-9a-f]*; open: none$'
bash "$srcdir/tools/pku-run" ./fuzz_session -max_total_time="$seconds" -seed=1 \
    -print_final_stats=1 >"$work/out.log" 2>&1
status=$?
cat "$work/out.log"
echo "fuzz_session exit status: $status"

[ "$status" -ne 0 ] || fail "libFuzzer found no crash in $seconds s"
grep -q 'Test unit written to' "$work/out.log" || fail "libFuzzer saved no crashing input"
report=$(grep -n "$report_re" "$work/out.log" | head -n 1)
[ -n "$report" ] || fail "no keyheap fault report naming domain \"session-key\""
deadly=$(grep -n 'DEADLYSIGNAL\|deadly signal' "$work/out.log" | head -n 1)
[ -n "$deadly" ] || fail "libFuzzer did not report the deadly signal"
[ "${report%%:*}" -lt "${deadly%%:*}" ] || fail "keyheap's report did not come before libFuzzer's"
crash=$(sed -n 's|.*Test unit written to \./\(crash-[0-9a-f]*\)$|\1|p' "$work/out.log" | head -n 1)
if [ -z "$crash" ] || [ ! -s "$work/$crash" ]; then
    fail "the crashing input libFuzzer saved is not in $work"
fi
bash "$srcdir/tools/pku-run" ./fuzz_session "$crash" >"$work/replay.log" 2>&1
status=$?
[ "$status" -ne 0 ] || { cat "$work/replay.log"; fail "replaying $crash did not crash"; }
grep -q "$report_re" "$work/replay.log" ||
    { cat "$work/replay.log"; fail "replaying $crash gave no keyheap report naming \"session-key\""; }
echo "PASS: libFuzzer found the over-read and saved $crash, which crashes again on its own; keyheap's report: ${report#*:}"
