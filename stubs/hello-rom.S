/*
 * hello-rom: the smallest useful option-ROM payload, with no ROM header of
 * its own (bootforge build writes 55 AA, the PCIR and the $PnP header).
 *
 * init_entry: called far by the BIOS at POST; prints a line naming itself
 *             on QEMU's debug console (port 0xE9) and returns far.
 * bev_entry:  the $PnP bootstrap entry vector, called far when the BIOS
 *             boots from this device; prints a line and ends QEMU through
 *             isa-debug-exit (port 0xF4, exit status (0x21 << 1) | 1 = 67).
 *             Without that device it returns, which the BIOS takes as
 *             "boot failed, try the next device".
 *
 * The code is position independent: bootforge places it after the headers
 * it generates, so strings are found relative to the current IP.
 */
	.code16
	.text

	.globl init_entry
init_entry:
	pushw	%si
	call	1f
1:	popw	%si
	addw	$(init_msg - 1b), %si
	call	print
	popw	%si
	lret

	.globl bev_entry
bev_entry:
	pushw	%si
	call	1f
1:	popw	%si
	addw	$(bev_msg - 1b), %si
	call	print
	popw	%si
	movw	$0xf4, %dx
	movb	$0x21, %al
	outb	%al, %dx
	lret

/* Print the NUL-terminated string at CS:SI to port 0xE9. */
print:
	pushw	%ax
	pushw	%dx
	movw	$0xe9, %dx
2:	movb	%cs:(%si), %al
	testb	%al, %al
	jz	3f
	outb	%al, %dx
	incw	%si
	jmp	2b
3:	popw	%dx
	popw	%ax
	ret

init_msg:
	.asciz	"bootforge hello-rom: init\n"
bev_msg:
	.asciz	"bootforge hello-rom: bev\n"
