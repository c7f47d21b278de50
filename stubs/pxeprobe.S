/*
 * pxeprobe: a real-mode PXE network bootstrap program (NBP) that reports the memory a PXE
 * stack (iPXE) leaves to it, on QEMU's debug console (port 0xE9), then ends QEMU through
 * isa-debug-exit (port 0xF4, exit status (0x31 << 1) | 1 = 99).
 *
 * The PXE loader runs it at 0000:7C00 with ES:BX -> PXENV+ and the !PXE far pointer at
 * SS:SP+4 (PXE 2.1 specification, "NBP execution"). It prints, one "KEY value" line each,
 * numbers in hex:
 *   ENTRY     PXENV+ and !PXE as segment:offset
 *   E820      base length type attributes, every entry of INT 15h E820 (24-byte buffer)
 *   INT12     INT 12h's KiB
 *   BDA40E    the EBDA segment word at 40:0E;  BDA413 the base memory KiB word at 40:13
 *   FOUND     each address in [top - 32 MiB, top) holding "Open Source Network Boot
 *             Firmware" (iPXE's banner text: its image), read through INT 15h AH=87h;
 *             top is the highest end of an E820 entry at or below 0xfec00000 (the top of
 *             low RAM, SeaBIOS's reserved tables included, iPXE's hidden ranges under it)
 *   STOPUNDI  the PXE status word and the exit code of PXENV_STOP_UNDI (0x0015, via !PXE)
 * then E820, INT12, BDA40E and BDA413 again, and DONE. Entered with ES:BX = 0:0 (the SAN boot
 * sector stubs/sanmbr.S starts it from a disk iPXE SAN-boots) it stops after the scan.
 * The signature is kept XORed with 0x80 here so this file (downloaded into iPXE's memory)
 * does not match itself.
 */
	.code16
	.text
	.globl	_start
_start:
	cli
	movw	%es, %cs:pxenv_seg
	movw	%bx, %cs:pxenv_off
	movw	%sp, %bp
	movl	4(%bp), %eax			/* !PXE segment:offset */
	movl	%eax, %cs:bangpxe
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	$0x7c00, %sp
	sti

	movw	$msg_entry, %si
	call	print
	movw	pxenv_seg, %ax
	call	hex16
	movb	$':', %al
	call	putc
	movw	pxenv_off, %ax
	call	hex16
	call	space
	movw	bangpxe + 2, %ax
	call	hex16
	movb	$':', %al
	call	putc
	movw	bangpxe, %ax
	call	hex16
	call	newline

	call	report_memory
	call	scan_high

	/* PXENV_STOP_UNDI through !PXE's 16-bit entry (EntryPointSP at +0x10); started by the
	 * SAN boot sector (stubs/sanmbr.S: no PXE stack handed over, ES:BX = 0:0) there is none. */
	cmpw	$0, pxenv_seg
	je	9f
	les	bangpxe, %bx
	movl	%es:0x10(%bx), %eax
	movl	%eax, pxe_entry
	xorw	%ax, %ax
	movw	%ax, %es
	movw	$0xffff, stop_status
	pushw	%ds
	pushw	$stop_status
	pushw	$0x0015
	lcall	*pxe_entry
	addw	$6, %sp
	movw	%ax, %cx
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	$msg_stop, %si
	call	print
	movw	stop_status, %ax
	call	hex16
	call	space
	movw	%cx, %ax
	call	hex16
	call	newline

	call	report_memory

9:	movw	$msg_done, %si
	call	print
	movw	$0xf4, %dx
	movb	$0x31, %al
	outb	%al, %dx
1:	hlt
	jmp	1b

/* E820, INT 12h, 40:0E, 40:13; remembers the highest RAM end below 4 GiB in ram_top. */
report_memory:
	xorl	%ebx, %ebx
2:	movl	$0xe820, %eax
	movl	$24, %ecx
	movl	$0x534d4150, %edx
	movw	$e820buf, %di
	movl	$1, e820buf + 20		/* attributes "enabled" unless the BIOS writes them */
	int	$0x15
	jc	4f
	cmpl	$0x534d4150, %eax
	jne	4f
	pushl	%ebx
	movw	$msg_e820, %si
	call	print
	movl	e820buf + 4, %eax
	call	hex32
	movl	e820buf, %eax
	call	hex32
	call	space
	movl	e820buf + 12, %eax
	call	hex32
	movl	e820buf + 8, %eax
	call	hex32
	call	space
	movl	e820buf + 16, %eax
	call	hex32
	call	space
	movl	e820buf + 20, %eax
	call	hex32
	call	newline
	/* ram_top = the highest end of an entry (any type) at or below 0xfec00000, where the
	 * PCI/IOAPIC window starts: the top of low RAM with whatever iPXE hides below it. */
	cmpl	$0, e820buf + 4
	jne	3f
	cmpl	$0, e820buf + 12
	jne	3f
	movl	e820buf, %eax
	addl	e820buf + 8, %eax
	jc	3f
	cmpl	$0xfec00000, %eax
	ja	3f
	cmpl	ram_top, %eax
	jbe	3f
	movl	%eax, ram_top
3:	popl	%ebx
	testl	%ebx, %ebx
	jnz	2b
4:	movw	$msg_e820end, %si
	call	print
	int	$0x12
	pushw	%ax
	movw	$msg_int12, %si
	call	print
	popw	%ax
	call	hex16
	call	newline
	movw	$msg_40e, %si
	call	print
	movw	0x40e, %ax
	call	hex16
	call	newline
	movw	$msg_413, %si
	call	print
	movw	0x413, %ax
	call	hex16
	call	newline
	ret

/* Copy [ram_top - 32 MiB, ram_top) to low memory 64 KiB at a time (INT 15h AH=87h) and
 * look for the signature in each chunk (the last SIGLEN-1 bytes of the previous chunk are
 * kept in front, so a match across chunks is found). */
	.set	SIGLEN, sig_end - sig
	.set	CHUNK, 0x8000			/* bytes per INT 15h 87h call (words: 0x4000) */
	.set	BUF, 0x10000			/* 1000:0000, with SIGLEN bytes of overlap in front */
scan_high:
	/* decode the signature */
	movw	$sig, %si
	movw	$sigplain, %di
	movw	$SIGLEN, %cx
5:	lodsb
	xorb	$0x80, %al
	stosb
	loop	5b
	movl	ram_top, %eax
	subl	$0x2000000, %eax
	cmpl	$0x100000, %eax
	jae	6f
	movl	$0x100000, %eax
6:	movl	%eax, scan_at
	/* clear the overlap area */
	movw	$0x1000, %ax
	movw	%ax, %es
	xorw	%di, %di
	movw	$SIGLEN, %cx
	xorb	%al, %al
	rep stosb
7:	movl	scan_at, %eax
	cmpl	ram_top, %eax
	jae	12f
	/* GDT for AH=87h: source descriptor at +0x10, destination at +0x18 */
	movl	%eax, %edx
	movw	%dx, gdt87 + 0x12
	shrl	$16, %edx
	movb	%dl, gdt87 + 0x14
	movb	%dh, gdt87 + 0x17
	movl	$(BUF + SIGLEN), %edx
	movw	%dx, gdt87 + 0x1a
	shrl	$16, %edx
	movb	%dl, gdt87 + 0x1c
	movb	%dh, gdt87 + 0x1f
	xorw	%ax, %ax
	movw	%ax, %es
	movw	$gdt87, %si
	movw	$(CHUNK / 2), %cx
	movb	$0x87, %ah
	int	$0x15
	jc	12f
	/* search es:[0, CHUNK + SIGLEN) for sigplain */
	movw	$0x1000, %ax
	movw	%ax, %es
	xorw	%di, %di
8:	/* first bytes at [di, CHUNK): a start in the last SIGLEN bytes is found next chunk */
	movw	$CHUNK, %cx
	subw	%di, %cx
	jbe	10f
	movb	sigplain, %al
	repne scasb
	jne	10f
	/* es:di is one past a first-byte match */
	pushw	%di
	pushw	%cx
	decw	%di
	movw	$sigplain, %si
	movw	$SIGLEN, %cx
	repe cmpsb			/* ds:si vs es:di */
	popw	%cx
	popw	%di
	jne	8b
	/* found: address = scan_at - SIGLEN + (di - 1) */
	pushw	%es
	pushw	%di
	xorw	%ax, %ax
	movw	%ax, %es
	movw	$msg_found, %si
	call	print
	popw	%di
	movzwl	%di, %eax
	decl	%eax
	addl	scan_at, %eax
	subl	$SIGLEN, %eax
	call	hex32
	call	newline
	popw	%es
	jmp	8b
10:	/* keep the last SIGLEN bytes in front for the next chunk */
	pushw	%ds
	movw	$0x1000, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	$CHUNK, %si
	xorw	%di, %di
	movw	$SIGLEN, %cx
	rep movsb
	popw	%ds
	xorw	%ax, %ax
	movw	%ax, %es
	addl	$CHUNK, scan_at
	jmp	7b
12:	xorw	%ax, %ax
	movw	%ax, %es
	movw	$msg_scanend, %si
	call	print
	ret

/* Output to port 0xE9. */
print:
	pushw	%ax
3:	lodsb
	testb	%al, %al
	jz	4f
	call	putc
	jmp	3b
4:	popw	%ax
	ret
putc:
	pushw	%dx
	movw	$0xe9, %dx
	outb	%al, %dx
	popw	%dx
	ret
space:
	movb	$' ', %al
	jmp	putc
newline:
	movb	$'\n', %al
	jmp	putc
hex32:
	rorl	$16, %eax
	call	hex16
	rorl	$16, %eax
hex16:
	xchgb	%al, %ah
	call	hex8
	xchgb	%al, %ah
hex8:
	pushw	%ax
	shrb	$4, %al
	call	hex4
	popw	%ax
	pushw	%ax
	andb	$0x0f, %al
	call	hex4
	popw	%ax
	ret
hex4:
	pushw	%ax
	addb	$'0', %al
	cmpb	$'9', %al
	jbe	5f
	addb	$('a' - '0' - 10), %al
5:	call	putc
	popw	%ax
	ret

	.data
msg_entry:	.asciz	"PXEPROBE 1\nENTRY "
msg_e820:	.asciz	"E820 "
msg_e820end:	.asciz	"E820END\n"
msg_int12:	.asciz	"INT12 "
msg_40e:	.asciz	"BDA40E "
msg_413:	.asciz	"BDA413 "
msg_found:	.asciz	"FOUND "
msg_scanend:	.asciz	"SCANEND\n"
msg_stop:	.asciz	"STOPUNDI "
msg_done:	.asciz	"DONE\n"
sig:		/* "Open Source Network Boot Firmware", each byte XOR 0x80 */
	.byte	0xcf, 0xf0, 0xe5, 0xee, 0xa0, 0xd3, 0xef, 0xf5, 0xf2, 0xe3, 0xe5, 0xa0, 0xce, 0xe5, 0xf4, 0xf7, 0xef, 0xf2, 0xeb, 0xa0, 0xc2, 0xef, 0xef, 0xf4, 0xa0, 0xc6, 0xe9, 0xf2, 0xed, 0xf7, 0xe1, 0xf2, 0xe5
sig_end:
	.balign	4
pxenv_seg:	.word	0
pxenv_off:	.word	0
bangpxe:	.long	0
pxe_entry:	.long	0
stop_status:	.word	0, 0, 0, 0
ram_top:	.long	0
scan_at:	.long	0
e820buf:	.fill	24, 1, 0
	.balign	8
gdt87:		/* INT 15h AH=87h: 6 descriptors; source at +0x10, destination at +0x18 */
	.fill	16, 1, 0
	.word	0xffff, 0		/* source: limit, base 15:0 */
	.byte	0, 0x93, 0, 0		/* base 23:16, access, limit/flags, base 31:24 */
	.word	0xffff, 0		/* destination */
	.byte	0, 0x93, 0, 0
	.fill	16, 1, 0
sigplain:	.fill	64, 1, 0
