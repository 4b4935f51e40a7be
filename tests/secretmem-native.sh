#!/bin/sh
# tests/secretmem-native.sh - the kernel's side of KEYHEAP_SECRETMEM
# (tests/check_secretmem --kernel) on this machine's own kernel, with or
# without PKU: unprotected:true lets domains be made where the CPU lacks
# protection keys (on a CPU with them it changes nothing).  The key's side,
# and the kernel's side again, run through tools/pku-run
# (tests/check_secretmem.pku).  A kernel without memfd_secret fails here:
# KEYHEAP_SECRETMEM is part of keyheap, and Debian 12's kernel has it.
KEYHEAP_CONF=unprotected:true
export KEYHEAP_CONF
exec "${KEYHEAP_BUILDDIR:-.}/tests/check_secretmem" --kernel
