# tests/scan/encodings.s - one function of instruction forms whose length
# depends on details the decoder must get right (tests/check_scan.sh
# compares its instruction starts with objdump -d): immediates by opcode,
# 66 and REX.W, moffs and 67, ModRM/SIB/displacements, the 0F, 0F38 and
# 0F3A maps, VEX, EVEX and XOP with and without immediates.
	.text
	.globl	f_encodings
	.type	f_encodings, @function
f_encodings:
	# one-byte map: immediates
	movabs	$0x1122334455667788, %rax	# REX.W B8+r: imm64
	mov	$0x11223344, %eax		# B8+r: imm32
	mov	$0x1122, %ax			# 66 B8+r: imm16
	mov	$-1, %rax			# REX.W C7 /0: imm32
	movw	$1, (%rax)			# 66 C7 /0: imm16
	movabs	0x1122334455667788, %al		# A0: moffs64
	.byte	0x67, 0xa1, 1, 2, 3, 4		# 67 A1: moffs32
	test	$1, %bl				# F6 /0: imm8
	testl	$0x12345678, 8(%rax)		# F7 /0: imm32
	testw	$0x1234, (%rax)			# 66 F7 /0: imm16
	.byte	0xf7, 0x08, 1, 2, 3, 4		# F7 /1 (TEST's other encoding): imm32
	.byte	0xf6, 0x08, 1			# F6 /1: imm8
	notl	(%rax)				# F7 /2: no immediate
	negb	-8(%rbp)			# F6 /3
	test	$0x12345678, %eax		# A9: imm32
	test	$0x12, %al			# A8: imm8
	add	$0x12345678, %rcx		# 81 /0
	add	$1, %rcx			# 83 /0
	imul	$3, %eax, %ebx			# 6B
	imul	$300, %eax, %ebx		# 69
	push	$0x12345678			# 68
	push	$1				# 6A
	enter	$16, $0				# C8: imm16, imm8
	ret	$8				# C2: imm16
	lretl	$8				# CA
	int	$3				# CD
	in	$0x60, %al			# E4
	out	%al, $0x60			# E6
	rol	$3, %eax			# C1
	roll	$3, (%rax)			# C1 with ModRM memory
	.byte	0x66, 0xe8, 0, 0		# 66 E8: rel16
	.byte	0x66, 0x0f, 0x84, 0, 0		# 66 0F 84: rel16
	call	f_encodings			# E8: rel32
	jne	f_encodings			# 0F 85: rel32
	jmp	1f				# EB: rel8
1:	loop	1b				# E2: rel8
	xbegin	2f				# C7 F8: rel32
2:	xabort	$1				# C6 F8: imm8
	lock cmpxchg %ecx, (%rdx)		# F0 prefix
	rep movsb				# F3 prefix
	mov	%fs:0x28, %rax			# 64 prefix, disp32 without base
	pop	8(%rax)				# 8F /0
	# ModRM, SIB, displacements
	lea	0x10(,%rax,4), %rbx		# SIB base 5, mod 0: disp32
	lea	0x10(%rbp,%rax,4), %rbx		# SIB, disp8
	lea	0x1000(%rsp), %rbx		# SIB (rsp), disp32
	lea	0x100(%rip), %rax		# RIP-relative
	addr32 lea 0x100(%eax), %eax		# 67
	mov	(%r13), %eax			# REX.B, mod 1 disp8 0
	mov	%eax, (%r12)			# REX.B, SIB
	# 0F map
	cmovne	%eax, %ebx
	shld	$3, %eax, %ebx			# 0F A4: imm8
	shrd	%cl, %eax, %ebx			# 0F AD
	bt	$3, %eax			# 0F BA: imm8
	pshufd	$1, %xmm1, %xmm2		# 66 0F 70: imm8
	psrld	$3, %xmm1			# 66 0F 72: imm8
	cmpps	$1, %xmm1, %xmm2		# 0F C2: imm8
	pinsrw	$1, %eax, %xmm1			# 66 0F C4: imm8
	pextrw	$1, %xmm1, %eax			# 66 0F C5: imm8
	shufps	$1, %xmm1, %xmm2		# 0F C6: imm8
	movnti	%eax, (%rbx)			# 0F C3
	bswap	%eax				# 0F C8+r
	popcnt	%eax, %ebx			# F3 0F B8
	mov	%cr0, %rax			# 0F 20: always the register form
	mov	%rax, %db7			# 0F 23
	extrq	$1, $2, %xmm1			# 66 0F 78 /0: imm8, imm8
	insertq	$1, $2, %xmm1, %xmm2		# F2 0F 78: imm8, imm8
	endbr64					# F3 0F 1E FA
	nopw	0x0(%rax,%rax,1)		# 66 0F 1F /0
	# 0F38 and 0F3A
	pshufb	%xmm1, %xmm2			# 66 0F 38 00
	crc32l	%eax, %ebx			# F2 0F 38 F1
	palignr	$1, %xmm1, %xmm2		# 66 0F 3A 0F: imm8
	pclmulqdq $0x11, (%rax), %xmm1		# 66 0F 3A 44: imm8
	# VEX
	vzeroupper				# C5 F8 77: no ModRM
	vpshufd	$1, %ymm1, %ymm2		# map 0F 70: imm8
	vpsrlq	$3, %ymm1, %ymm2		# map 0F 73: imm8
	vcmpps	$1, %ymm1, %ymm2, %ymm3		# map 0F C2: imm8
	vpinsrw	$1, %eax, %xmm1, %xmm2		# map 0F C4: imm8
	vpextrw	$1, %xmm1, %eax			# map 0F C5: imm8
	vshufps	$1, %ymm1, %ymm2, %ymm3		# map 0F C6: imm8
	vpaddd	0x40(%rax), %ymm1, %ymm2	# map 0F, disp8
	vpaddq	%ymm8, %ymm9, %ymm10		# three-byte VEX
	vpshufb	%ymm1, %ymm2, %ymm3		# map 0F38
	andn	%eax, %ebx, %ecx		# map 0F38 (BMI)
	rorx	$3, %eax, %ebx			# map 0F3A: imm8
	vperm2i128 $1, %ymm1, %ymm2, %ymm3	# map 0F3A: imm8
	vpblendvb %ymm4, %ymm1, %ymm2, %ymm3	# map 0F3A: is4
	# EVEX
	vpshufd	$1, %zmm1, %zmm2		# map 0F 70: imm8
	vpsrld	$3, %zmm1, %zmm2		# map 0F 72: imm8
	vcmpps	$1, %zmm1, %zmm2, %k1		# map 0F C2: imm8
	{evex} vpinsrw $1, %eax, %xmm1, %xmm2	# map 0F C4: imm8
	{evex} vpextrw $1, %xmm1, %eax		# map 0F C5: imm8
	vshufps	$1, %zmm1, %zmm2, %zmm3		# map 0F C6: imm8
	vaddps	(%rax,%rbx,8){1to16}, %zmm1, %zmm2	# broadcast
	vmovdqu64 0x1000(%rsp), %zmm5		# disp32
	vmovdqu64 0x40(%rsp), %zmm5		# compressed disp8
	vpternlogd $0x96, %zmm1, %zmm2, %zmm3	# map 0F3A: imm8
	vpermb	%zmm1, %zmm2, %zmm3		# map 0F38
	vaddph	%zmm1, %zmm2, %zmm3		# map 5 (FP16)
	vfmadd132ph %zmm1, %zmm2, %zmm3		# map 6 (FP16)
	# XOP (AMD)
	vprotd	$3, %xmm1, %xmm2		# map 8: imm8
	vprotd	%xmm1, %xmm2, %xmm3		# map 9
	bextr	$0x1234, %eax, %ebx		# map A: imm32 (TBM)
	ret
	.size	f_encodings, .-f_encodings
	.section .note.GNU-stack,"",@progbits
