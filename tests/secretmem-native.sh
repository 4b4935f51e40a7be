#!/bin/sh
# tests/secretmem-native.sh - the kernel's side of KEYHEAP_SECRETMEM
# (tests/check_secretmem --kernel) on this machine's own kernel, with or
# without PKU: unprotected:true lets domains be made where the CPU lacks
# protection keys (on a CPU with them it changes nothing).  The key's side,
# and the kernel's side again, run through tools/pku-run
# (tests/check_secretmem.pku).  On a kernel without memfd_secret (Debian
# 12's 6.1 unless booted with secretmem.enable=1) the program checks that
# kernel's own answer instead: creation fails with ENOSYS and its hint, no
# descriptor is left, an ordinary domain is still made.
KEYHEAP_CONF=unprotected:true
export KEYHEAP_CONF
exec "${KEYHEAP_BUILDDIR:-.}/tests/check_secretmem" --kernel
