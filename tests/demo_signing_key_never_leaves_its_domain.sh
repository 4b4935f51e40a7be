#!/bin/sh
# tests/demo_signing_key_never_leaves_its_domain.sh: runs make demo's program,
# examples/crypto_demo, through tools/pku-run (natively with PKU, else in the
# QEMU machine) and checks its claims from its output and exit status:
#  - OpenSSL's allocations for the key landed in the domain "signing-key";
#  - the signature made inside the domain verifies outside;
#  - an over-read of the default heap finds no copy of the key, while the same
#    scan finds the throwaway key OpenSSL made outside any domain;
#  - a read of the key through a leaked pointer, in a child process, is
#    killed by SIGSEGV after keyheap's fault report naming the domain;
#  - the domain's pages are secret memory (KEYHEAP_SECRETMEM; the QEMU
#    machine's kernel has memfd_secret), so a read of the key through
#    /proc/self/mem fails, while the same read of an ordinary domain's block
#    succeeds;
#  - the domain is destroyed;
#  - keyheap_scan_self() lists the WRPKRUs of libc (pkey_set) and of
#    libcrypto (inside a call), and counts them.
#
# make check runs it from the top build folder, with KEYHEAP_SRCDIR and
# KEYHEAP_BUILDDIR set.  Exit 99 (ERROR) when the runner fails.

srcdir=${KEYHEAP_SRCDIR:-${srcdir:-$(dirname "$0")/..}}
demo=${KEYHEAP_BUILDDIR:-.}/examples/crypto_demo
out=$(mktemp "${TMPDIR:-/tmp}/crypto-demo.XXXXXX") || exit 99
trap 'rm -f "$out"' EXIT

KEYHEAP_DEMO_ROUNDS=${KEYHEAP_DEMO_ROUNDS:-50} bash "$srcdir/tools/pku-run" "$demo" >"$out" 2>&1
status=$?
cat "$out"
echo "--- checks"
[ "$status" = 99 ] && grep -q '^keyheap: pku-run:' "$out" && exit 99

failed=0
check() { # check DESCRIPTION EXTENDED-REGEX
	if grep -Eq -- "$2" "$out"; then
		echo "PASS: $1"
	else
		echo "FAIL: $1 (no line matches: $2)"
		failed=1
	fi
}

check "OpenSSL's allocations for the key landed in the domain" \
	'OpenSSL made [1-9][0-9]* allocations for it'
check "the EVP_PKEY is in the domain" 'in domain "signing-key" says keyheap_domain_of'
check "OpenSSL's copy of the private key is in the domain" '\(OpenSSL.s copy\)$'
check "the signature verifies outside the domain" 'not secret, so it was copied out\): the signature verifies\.$'
check "the over-read of the default heap finds no copy of the key" \
	'Read [0-9.]+ MiB in [1-9][0-9]* mappings \([0-9]+ ms\): 0 copies of the signing key\.$'
check "the same over-read finds a key made outside any domain" \
	'outside any domain: [1-9][0-9]* cop(y|ies) on the default heap\.$'
check "the child reading through the leaked pointer died by SIGSEGV" \
	'The child was killed by SIGSEGV \(signal 11\)'
check "keyheap's report names the domain" \
	'^ +keyheap: protection-key fault: thread [0-9]+ read of 0x[0-9a-f]+ in domain "signing-key" \(pkey [0-9]+\) at ip 0x[0-9a-f]+; open: none$'
check "the signing key's domain is secret memory" \
	'its pages from memfd_secret\(2\), out of the kernel.s direct map \(KEYHEAP_SECRETMEM\)\.$'
check "/proc/self/mem cannot read the key" '^   The signing key: the read fails \([^)]+\)\.$'
check "/proc/self/mem reads an ordinary domain's block" \
	'^   The ordinary domain.s block: read, 32 bytes: its key does not stop the kernel\.$'
check "the domain was destroyed" 'its pages are discarded, then its protection key is freed\.$'
check "the scan of its own process lists libc's pkey_set WRPKRU" \
	'^ +keyheap: scan: [^ ]*/libc\.so\.6: offset 0x[0-9a-f]+ vaddr 0x[0-9a-f]+ pkey_set\+0x[0-9a-f]+: wrpkru instruction$'
check "and the WRPKRU inside a call of Debian 12's libcrypto.so.3" \
	'^ +keyheap: scan: [^ ]*/libcrypto\.so\.3: offset 0x[0-9a-f]+ vaddr 0x[0-9a-f]+ [^ ]+: wrpkru embedded \(in the 5-byte instruction at [^ ]+: e8 [0-9a-f ]+\)$'
check "and counts its findings" '^   [1-9][0-9]* findings, none of them keyheap.s own sequences'
check "every claim held" '^Every claim held: the key never left its domain\.$'
if [ "$status" != 0 ]; then
	echo "FAIL: the demo exited with status $status"
	failed=1
fi
exit $failed
