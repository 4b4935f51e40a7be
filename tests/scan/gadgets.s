# tests/scan/gadgets.s - functions holding the byte sequences that
# keyheap-scan reports (tests/check_scan.sh), one per function so that each
# finding's place is known: symbol+offset.
	.text
	.globl	f_start
	.type	f_start, @function
f_start:				# WRPKRU at an instruction start: +0x1
	nop
	.byte	0x0f, 0x01, 0xef
	ret
	.size	f_start, .-f_start

	.globl	f_imm
	.type	f_imm, @function
f_imm:					# inside an imm32: b8 0f 01 ef 00, at +0x1
	movl	$0xef010f, %eax
	ret
	.size	f_imm, .-f_imm

	.globl	f_disp
	.type	f_disp, @function
f_disp:					# inside a disp32: 8b 88 0f 01 ef 00, at +0x2
	movl	0xef010f(%rax), %ecx
	ret
	.size	f_disp, .-f_disp

	.globl	f_xrstor
	.type	f_xrstor, @function
f_xrstor:				# 0f ae 2f
	xrstor	(%rdi)
	ret
	.size	f_xrstor, .-f_xrstor

	.globl	f_xrstor64
	.type	f_xrstor64, @function
f_xrstor64:				# 48 0f ae 2f (REX.W)
	xrstor64 (%rdi)
	ret
	.size	f_xrstor64, .-f_xrstor64

	.globl	f_xrstor_rexb
	.type	f_xrstor_rexb, @function
f_xrstor_rexb:				# 41 0f ae 2f (REX.B, no W): xrstor
	xrstor	(%r15)
	ret
	.size	f_xrstor_rexb, .-f_xrstor_rexb

	.globl	f_lfence
	.type	f_lfence, @function
f_lfence:				# 0f ae e8: LFENCE, 0F AE /5 with mod=3, not a finding
	lfence
	ret
	.size	f_lfence, .-f_lfence

	.type	f_local, @function
f_local:				# a local symbol (.symtab only): 68 0f 01 ef 00, at +0x1
	pushq	$0xef010f
	popq	%rax
	ret
	.size	f_local, .-f_local

	.globl	f_tail
	.type	f_tail, @function
f_tail:					# a lone mov opcode (b8) that wants an imm32...
	.byte	0xb8
	.size	f_tail, .-f_tail

	.globl	f_after
	.type	f_after, @function
f_after:				# ...but decoding restarts at this symbol: a WRPKRU
	.byte	0x0f, 0x01, 0xef	# at f_after+0x0; without symbols, embedded in
	ret				# b8 0f 01 ef c3
	.size	f_after, .-f_after

	.globl	f_cut
	.type	f_cut, @function
f_cut:					# a function of one byte, b8 again; decoding
	.byte	0xb8			# restarts at its end too, so the WRPKRU
	.size	f_cut, .-f_cut		# after it, covered by no symbol, begins an
	.byte	0x0f, 0x01, 0xef	# instruction ("-"); without symbols it is
	ret				# embedded in b8 0f 01 ef c3

	.globl	f_calls_local
	.type	f_calls_local, @function
f_calls_local:
	call	f_local
	ret
	.size	f_calls_local, .-f_calls_local
	.section .note.GNU-stack,"",@progbits
