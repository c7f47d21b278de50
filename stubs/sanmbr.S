/*
 * sanmbr: the boot sector of the disk image bootforge verify SAN-boots through iPXE
 * (bootforge/verify/ipxe_probe.py): moves itself to 0000:0600, reads the PXE probe
 * (stubs/pxeprobe.S) from the sectors after it to 0000:7C00 with INT 13h AH=02h from the
 * drive in DL, and starts it with ES:BX = 0:0 and a zero far pointer at SS:SP+4, which tell
 * the probe that no PXE stack was handed over.
 */
	.code16
	.text
	.globl	_start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	$0x7c00, %sp
	sti
	movw	$0x7c00, %si
	movw	$0x0600, %di
	movw	$256, %cx
	cld
	rep movsw
	ljmp	$0, $(0x0600 + 1f - _start)
1:	movw	$0x0203, %ax			/* read 3 sectors */
	movw	$0x0002, %cx			/* cylinder 0, sector 2 */
	xorb	%dh, %dh			/* head 0; DL: the drive iPXE booted */
	movw	$0x7c00, %bx
	int	$0x13
	jc	2f
	xorw	%bx, %bx			/* ES:BX = 0:0 */
	pushl	$0				/* at SP+4: no !PXE */
	pushl	$0
	ljmp	$0, $0x7c00
2:	movw	$0xf4, %dx			/* no probe: end QEMU with status (0x7e << 1) | 1 */
	movb	$0x7e, %al
	outb	%al, %dx
3:	hlt
	jmp	3b
	.org	510
	.byte	0x55, 0xaa
