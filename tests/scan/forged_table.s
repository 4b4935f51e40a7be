# tests/scan/forged_table.s - a .keyheap_wrpkru table (linked with
# gadgets.s, tests/check_scan.sh) naming the real WRPKRU of f_start, the
# WRPKRU embedded in f_imm's immediate, an XRSTOR and 0 (what --gc-sections
# leaves of a discarded entry): only f_start's may count as keyheap's own.
	.section .keyheap_wrpkru,"",@progbits
	.quad	f_start + 1
	.quad	f_imm + 1
	.quad	f_xrstor
	.quad	0
	.section .note.GNU-stack,"",@progbits
