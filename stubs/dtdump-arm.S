/*
 * dtdump (32-bit ARM): the dump kernel of stubs/dtdump-aarch64.S for arm virt.
 *
 * Headerless, position-independent ARM code: bootforge writes a 64-byte zImage-style
 * header in front of it (arch/arm/boot/compressed/head.S: eight nops, a branch, magic
 * 0x016f2818 at 0x24, start/end, the endianness word), so the code starts at image
 * offset 0x40. On entry (Documentation/arch/arm/booting.rst): r0 = 0, r1 = the machine
 * type (virt: 0xffffffff), r2 = the DTB, MMU off. Output goes to the PL011 at 0x09000000;
 * the end is PSCI SYSTEM_OFF over HVC. The format is dtdump-aarch64.S's with "arm" and
 * R0-R2 (8 hex digits each, addresses as 16 like the others).
 */
        .syntax unified
        .arm
        .arch armv7-a
        .arch_extension virt
        .text
        .globl _start
_start:
entry:  mov     r4, r0
        mov     r5, r1
        mov     r6, r2
        adr     r7, entry
        sub     r7, r7, #0x40                   /* the header bootforge wrote */
        mov     r8, #0x09000000                 /* PL011 UARTDR */
        ldr     r0, stack_offset                /* a stack inside the image (position independent) */
        adr     r1, entry
        add     sp, r1, r0

        adrl    r1, s_banner
        bl      puts
        adrl    r1, s_r0
        bl      puts
        mov     r1, r4
        bl      hex16nl
        adrl    r1, s_r1
        bl      puts
        mov     r1, r5
        bl      hex16nl
        adrl    r1, s_r2
        bl      puts
        mov     r1, r6
        bl      hex16nl
        adrl    r1, s_image
        bl      puts
        mov     r1, r7
        bl      hex16nl

        adrl    r1, s_initrd
        bl      puts
        ldr     r9, =0x4e494642                 /* "BFIN" */
        ldr     r10, =0x44525449                /* "ITRD" */
        mov     r3, r7
1:      cmp     r3, r6
        bhs     2f
        ldr     r0, [r3]
        ldr     r1, [r3, #4]
        cmp     r0, r9
        cmpeq   r1, r10
        beq     3f
        add     r3, r3, #0x1000
        b       1b
2:      adrl    r1, s_none
        bl      puts
        b       4f
3:      mov     r1, r3
        bl      hex16nl
4:
        ldr     r0, [r6]
        rev     r0, r0
        ldr     r1, =0xd00dfeed
        cmp     r0, r1
        beq     5f
        adrl    r1, s_nodtb
        bl      puts
        b       done
5:      ldr     r9, [r6, #4]
        rev     r9, r9                          /* totalsize */
        ldr     r0, [r6, #8]
        rev     r0, r0
        ldr     r1, [r6, #0x24]
        rev     r1, r1
        add     r10, r0, r1                     /* struct end */
        ldr     r0, [r6, #0xc]
        rev     r0, r0
        ldr     r1, [r6, #0x20]
        rev     r1, r1
        add     r0, r0, r1                      /* strings end */
        cmp     r0, r10
        movhi   r10, r0
        cmp     r10, r9
        movhi   r10, r9
        mov     r11, r9                         /* on to the last non-zero byte */
20:     cmp     r11, r10
        bls     21f
        sub     r3, r11, #1
        ldrb    r0, [r6, r3]
        cmp     r0, #0
        bne     21f
        mov     r11, r3
        b       20b
21:     mov     r10, r11

        adrl    r1, s_region
        bl      puts
        mov     r1, r6
        bl      hex16
        mov     r0, #' '
        bl      putc
        mov     r1, r10
        bl      hex8nl
        mov     r11, #0
6:      cmp     r11, r10
        bhs     8f
        ldrb    r1, [r6, r11]
        bl      hex2
        add     r11, r11, #1
        tst     r11, #31
        bne     6b
        mov     r0, #'\n'
        bl      putc
        b       6b
8:      tst     r11, #31
        beq     9f
        mov     r0, #'\n'
        bl      putc
9:      adr     r1, s_end
        bl      puts
        adrl    r1, s_tail
        bl      puts
        mov     r1, r9
        bl      hex8
        adrl    r1, s_zero
        bl      puts

done:   adrl    r1, s_done
        bl      puts
        ldr     r0, =0x84000008                 /* PSCI SYSTEM_OFF */
        hvc     #0
10:     wfi
        b       10b

/* putc: r0 -> the UART once UARTFR.TXFF (bit 5) is clear. */
putc:   ldr     r2, [r8, #0x18]
        tst     r2, #0x20
        bne     putc
        strb    r0, [r8]
        bx      lr

/* puts: the string at r1 (lr kept in r12: putc is a leaf). */
puts:   mov     r12, lr
11:     ldrb    r0, [r1], #1
        cmp     r0, #0
        beq     12f
        bl      putc
        b       11b
12:     bx      r12

/* hex16: r1 as 16 hex digits (8 zeros, then the 32-bit value); hex8 as 8; hex2 as 2; *nl add \n. */
hex16nl: mov    r3, #1
        b       13f
hex16:  mov     r3, #0
13:     mov     r12, lr
        push    {r1, r3, r12}
        mov     r1, #0
        mov     r2, #8
        bl      hexn_body
        pop     {r1, r3, r12}
        mov     lr, r12
        mov     r2, #8
        b       hexn
hex8nl: mov     r3, #1
        mov     r2, #8
        b       hexn
hex8:   mov     r3, #0
        mov     r2, #8
        b       hexn
hex2:   mov     r3, #0
        mov     r2, #2
hexn:   mov     r12, lr
        push    {r12}
        bl      hexn_body
        pop     {r12}
        cmp     r3, #0
        beq     14f
        mov     r0, #'\n'
        push    {r12}
        bl      putc
        pop     {r12}
14:     bx      r12

/* hexn_body: r2 digits of r1, most significant first (clobbers r0, r2). */
hexn_body:
        push    {r3, lr}
15:     sub     r2, r2, #1
        lsl     r3, r2, #2
        lsr     r0, r1, r3
        and     r0, r0, #0xf
        cmp     r0, #10
        addlo   r0, r0, #'0'
        addhs   r0, r0, #('a' - 10)
        push    {r1, r2}
        bl      putc
        pop     {r1, r2}
        cmp     r2, #0
        bne     15b
        pop     {r3, pc}

s_banner:  .asciz "BFDTDUMP 1 arm\n"
s_r0:      .asciz "R0 "
s_r1:      .asciz "R1 "
s_r2:      .asciz "R2 "
s_image:   .asciz "IMAGE "
s_initrd:  .asciz "INITRD "
s_none:    .asciz "none\n"
s_nodtb:   .asciz "NODTB\n"
s_region:  .asciz "REGION dtb "
s_end:     .asciz "END\n"
s_tail:    .asciz "TAIL "
s_zero:    .asciz " zero\n"
s_done:    .asciz "DONE\n"
        .balign 4
stack_offset: .word stack_top - entry
        .ltorg
        .space 256
stack_top:
