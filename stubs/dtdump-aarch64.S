/*
 * dtdump (AArch64): a kernel that dumps what its loader handed it on a device-tree
 * platform, then powers the machine off.
 *
 * Headerless, position-independent code: bootforge writes the 64-byte arm64 Image
 * header in front of it (Linux Documentation/arch/arm64/booting.rst; code0 = b +0x40),
 * so the code starts at offset 0x40 of the Image. On entry (booting.rst): x0 = the
 * DTB's physical address, x1..x3 = 0, MMU off. It writes to the PL011 UART at
 * 0x09000000 (QEMU virt's UART0) and ends with PSCI SYSTEM_OFF over HVC (QEMU virt's
 * PSCI conduit when the kernel is entered at EL1). Format (lower-case hex):
 *
 *   BFDTDUMP 1 aarch64
 *   X0 <16 hex> ... X3 <16 hex>
 *   IMAGE <16 hex>                   where the Image starts (its entry point)
 *   INITRD <16 hex> | INITRD none    the first 4 KiB page in [IMAGE, X0) starting "BFINITRD"
 *   REGION dtb <16 hex> <8 hex>      the DTB at X0, up to the end of its last block or its
 *                                    last non-zero byte, whichever is later
 *   <32 bytes as 64 hex digits per line>
 *   END
 *   TAIL <totalsize 8 hex> zero | TAIL <totalsize> nonzero <offset 8 hex>
 *   DONE
 */
        .text
        .globl _start
_start:
entry:  mov     x19, x0
        mov     x20, x1
        mov     x21, x2
        mov     x22, x3
        adr     x23, entry                      /* a local label: adr to a global one is left to the linker */
        sub     x23, x23, #0x40                 /* the Image header bootforge wrote */
        movz    x24, #0x0900, lsl #16           /* PL011 UARTDR */

        adr     x1, s_banner
        bl      puts
        adr     x1, s_x0
        bl      puts
        mov     x1, x19
        bl      hex16nl
        adr     x1, s_x1
        bl      puts
        mov     x1, x20
        bl      hex16nl
        adr     x1, s_x2
        bl      puts
        mov     x1, x21
        bl      hex16nl
        adr     x1, s_x3
        bl      puts
        mov     x1, x22
        bl      hex16nl
        adr     x1, s_image
        bl      puts
        mov     x1, x23
        bl      hex16nl

        /* INITRD: the first page in [IMAGE, X0) whose first 8 bytes are "BFINITRD". */
        adr     x1, s_initrd
        bl      puts
        movz    x9, #0x4642                     /* "BFINITRD" little-endian: 0x445254494e494642 */
        movk    x9, #0x4e49, lsl #16
        movk    x9, #0x5449, lsl #32
        movk    x9, #0x4452, lsl #48
        mov     x10, x23
1:      cmp     x10, x19
        b.hs    2f
        ldr     x11, [x10]
        cmp     x11, x9
        b.eq    3f
        add     x10, x10, #0x1000
        b       1b
2:      adr     x1, s_none
        bl      puts
        b       4f
3:      mov     x1, x10
        bl      hex16nl
4:
        /* The DTB: magic, then the region up to the end of its last block. */
        ldr     w0, [x19]
        rev     w0, w0
        movz    w9, #0xfeed
        movk    w9, #0xd00d, lsl #16
        cmp     w0, w9
        b.eq    5f
        adr     x1, s_nodtb
        bl      puts
        b       done
5:      ldr     w25, [x19, #4]                  /* totalsize */
        rev     w25, w25
        ldr     w0, [x19, #8]                   /* off_dt_struct */
        rev     w0, w0
        ldr     w1, [x19, #0x24]                /* size_dt_struct */
        rev     w1, w1
        add     w26, w0, w1
        ldr     w0, [x19, #0xc]                 /* off_dt_strings */
        rev     w0, w0
        ldr     w1, [x19, #0x20]                /* size_dt_strings */
        rev     w1, w1
        add     w0, w0, w1
        cmp     w0, w26
        csel    w26, w0, w26, hi                /* used = max(struct end, strings end) */
        cmp     w26, w25
        csel    w26, w25, w26, hi               /* at most totalsize */
        mov     x27, x25                        /* and on to the last non-zero byte before totalsize */
20:     cmp     x27, x26                        /* (libfdt leaves stale bytes after a shrinking edit) */
        b.ls    21f
        sub     x9, x27, #1
        ldrb    w0, [x19, x9]
        cbnz    w0, 21f
        mov     x27, x9
        b       20b
21:     mov     x26, x27

        adr     x1, s_region
        bl      puts
        mov     x1, x19
        bl      hex16
        mov     w0, #' '
        bl      putc
        mov     x1, x26
        bl      hex8nl
        mov     x27, #0                         /* offset */
6:      cmp     x27, x26
        b.hs    8f
        ldrb    w1, [x19, x27]
        bl      hex2
        add     x27, x27, #1
        tst     x27, #31
        b.ne    6b
        mov     w0, #'\n'
        bl      putc
        b       6b
8:      tst     x27, #31
        b.eq    9f
        mov     w0, #'\n'
        bl      putc
9:      adr     x1, s_end
        bl      puts

        /* TAIL: are the bytes after the last block zero, up to totalsize? */
        adr     x1, s_tail
        bl      puts
        mov     x1, x25
        bl      hex8
        mov     x27, x26
10:     cmp     x27, x25
        b.hs    11f
        ldrb    w0, [x19, x27]
        cbnz    w0, 12f
        add     x27, x27, #1
        b       10b
11:     adr     x1, s_zero
        bl      puts
        b       done
12:     adr     x1, s_nonzero
        bl      puts
        mov     x1, x27
        bl      hex8nl

done:   adr     x1, s_done
        bl      puts
        movz    x0, #0x0008                     /* PSCI SYSTEM_OFF */
        movk    x0, #0x8400, lsl #16
        hvc     #0
13:     wfi
        b       13b

/* putc: w0 -> the UART, once its transmit FIFO has room (UARTFR.TXFF, bit 5). */
putc:   ldr     w9, [x24, #0x18]
        tbnz    w9, #5, putc
        strb    w0, [x24]
        ret

/* puts: the NUL-terminated string at x1 (keeps x30 in x28: putc is a leaf). */
puts:   mov     x28, x30
14:     ldrb    w0, [x1], #1
        cbz     w0, 15f
        bl      putc
        b       14b
15:     mov     x30, x28
        ret

/* hexN: x1 as N hex digits (x2 = digits); hex16nl/hex8nl add a newline. */
hex16nl: mov    x3, #1
        mov     x2, #16
        b       hexn
hex8nl: mov     x3, #1
        mov     x2, #8
        b       hexn
hex16:  mov     x3, #0
        mov     x2, #16
        b       hexn
hex8:   mov     x3, #0
        mov     x2, #8
        b       hexn
hex2:   mov     x3, #0
        mov     x2, #2
hexn:   mov     x28, x30
16:     sub     x2, x2, #1
        lsl     x4, x2, #2
        lsr     x0, x1, x4
        and     x0, x0, #0xf
        cmp     x0, #10
        add     x5, x0, #'0'
        add     x6, x0, #('a' - 10)
        csel    x0, x5, x6, lo
        bl      putc
        cbnz    x2, 16b
        cbz     x3, 17f
        mov     w0, #'\n'
        bl      putc
17:     mov     x30, x28
        ret

s_banner:  .asciz "BFDTDUMP 1 aarch64\n"
s_x0:      .asciz "X0 "
s_x1:      .asciz "X1 "
s_x2:      .asciz "X2 "
s_x3:      .asciz "X3 "
s_image:   .asciz "IMAGE "
s_initrd:  .asciz "INITRD "
s_none:    .asciz "none\n"
s_nodtb:   .asciz "NODTB\n"
s_region:  .asciz "REGION dtb "
s_end:     .asciz "END\n"
s_tail:    .asciz "TAIL "
s_zero:    .asciz " zero\n"
s_nonzero: .asciz " nonzero "
s_done:    .asciz "DONE\n"
        .balign 8
