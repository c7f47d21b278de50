/*
 * dtdump (RISC-V 64): the dump kernel of stubs/dtdump-aarch64.S for riscv64 virt.
 *
 * Headerless, position-independent RV64I code (no compressed instructions): bootforge
 * writes the 64-byte RISC-V Image header in front of it (Documentation/riscv/
 * boot-image-header.rst; code0 = j +0x40). On entry from OpenSBI (riscv/boot.rst):
 * a0 = hart id, a1 = the DTB's physical address, S-mode, MMU off. Output goes to the
 * NS16550 at 0x10000000 (QEMU virt's UART0); the end is SBI SRST system reset
 * (shutdown). The format is dtdump-aarch64.S's with "riscv64" and registers A0, A1.
 */
        .option norvc
        .option norelax
        .text
        .globl _start
_start:
entry:  mv      s1, a0
        mv      s2, a1
        lla     s3, entry
        addi    s3, s3, -0x40                   /* the Image header bootforge wrote */
        li      s4, 0x10000000                  /* NS16550 THR */

        lla     a1, s_banner
        call    puts
        lla     a1, s_a0
        call    puts
        mv      a1, s1
        call    hex16nl
        lla     a1, s_a1
        call    puts
        mv      a1, s2
        call    hex16nl
        lla     a1, s_image
        call    puts
        mv      a1, s3
        call    hex16nl

        /* INITRD: the first page in [IMAGE, A1) whose first 8 bytes are "BFINITRD". */
        lla     a1, s_initrd
        call    puts
        li      t2, 0x445254494e494642
        mv      t3, s3
        li      t5, 0x1000
1:      bgeu    t3, s2, 2f
        ld      t4, 0(t3)
        beq     t4, t2, 3f
        add     t3, t3, t5
        j       1b
2:      lla     a1, s_none
        call    puts
        j       4f
3:      mv      a1, t3
        call    hex16nl
4:
        mv      a0, s2
        call    be32                            /* magic */
        li      t0, 0xd00dfeed
        beq     a0, t0, 5f
        lla     a1, s_nodtb
        call    puts
        j       done
5:      addi    a0, s2, 4
        call    be32
        mv      s5, a0                          /* totalsize */
        addi    a0, s2, 8
        call    be32
        mv      s6, a0
        addi    a0, s2, 0x24
        call    be32
        add     s6, s6, a0                      /* struct end */
        addi    a0, s2, 0xc
        call    be32
        mv      s7, a0
        addi    a0, s2, 0x20
        call    be32
        add     s7, s7, a0                      /* strings end */
        bgeu    s6, s7, 6f
        mv      s6, s7
6:      bgeu    s5, s6, 7f
        mv      s6, s5                          /* at most totalsize */
7:      mv      t3, s5                          /* and on to the last non-zero byte before totalsize */
20:     bgeu    s6, t3, 21f                     /* (OpenSBI's deletions leave stale bytes) */
        addi    t4, t3, -1
        add     t0, s2, t4
        lbu     t1, 0(t0)
        bnez    t1, 21f
        mv      t3, t4
        j       20b
21:     mv      s6, t3
        lla     a1, s_region
        call    puts
        mv      a1, s2
        call    hex16
        li      a0, ' '
        call    putc
        mv      a1, s6
        call    hex8nl
        li      s7, 0                           /* offset */
8:      bgeu    s7, s6, 9f
        add     t0, s2, s7
        lbu     a1, 0(t0)
        call    hex2
        addi    s7, s7, 1
        andi    t0, s7, 31
        bnez    t0, 8b
        li      a0, '\n'
        call    putc
        j       8b
9:      andi    t0, s7, 31
        beqz    t0, 10f
        li      a0, '\n'
        call    putc
10:     lla     a1, s_end
        call    puts

        lla     a1, s_tail
        call    puts
        mv      a1, s5
        call    hex8
        mv      s7, s6
11:     bgeu    s7, s5, 12f
        add     t0, s2, s7
        lbu     t1, 0(t0)
        bnez    t1, 13f
        addi    s7, s7, 1
        j       11b
12:     lla     a1, s_zero
        call    puts
        j       done
13:     lla     a1, s_nonzero
        call    puts
        mv      a1, s7
        call    hex8nl

done:   lla     a1, s_done
        call    puts
        li      a7, 0x53525354                  /* SBI extension SRST */
        li      a6, 0                           /* sbi_system_reset */
        li      a0, 0                           /* shutdown */
        li      a1, 0                           /* no reason */
        ecall
14:     wfi
        j       14b

/* be32: a0 = the big-endian u32 at address a0. */
be32:   lbu     t0, 0(a0)
        lbu     t1, 1(a0)
        slli    t0, t0, 24
        slli    t1, t1, 16
        or      t0, t0, t1
        lbu     t1, 2(a0)
        slli    t1, t1, 8
        or      t0, t0, t1
        lbu     t1, 3(a0)
        or      a0, t0, t1
        ret

/* putc: a0 -> the UART once LSR.THRE (bit 5) says the holding register is empty. */
putc:   lbu     t6, 5(s4)
        andi    t6, t6, 0x20
        beqz    t6, putc
        sb      a0, 0(s4)
        ret

/* puts: the NUL-terminated string at a1 (keeps ra in s8: putc is a leaf). */
puts:   mv      s8, ra
15:     lbu     a0, 0(a1)
        beqz    a0, 16f
        call    putc
        addi    a1, a1, 1
        j       15b
16:     mv      ra, s8
        ret

/* hexN: a1 as N hex digits (a2 = digits); hex16nl/hex8nl add a newline (a3). */
hex16nl: li     a3, 1
        li      a2, 16
        j       hexn
hex8nl: li      a3, 1
        li      a2, 8
        j       hexn
hex16:  li      a3, 0
        li      a2, 16
        j       hexn
hex8:   li      a3, 0
        li      a2, 8
        j       hexn
hex2:   li      a3, 0
        li      a2, 2
hexn:   mv      s8, ra
17:     addi    a2, a2, -1
        slli    a4, a2, 2
        srl     a0, a1, a4
        andi    a0, a0, 0xf
        li      a5, 10
        bltu    a0, a5, 18f
        addi    a0, a0, 'a' - 10 - '0'
18:     addi    a0, a0, '0'
        call    putc
        bnez    a2, 17b
        beqz    a3, 19f
        li      a0, '\n'
        call    putc
19:     mv      ra, s8
        ret

s_banner:  .asciz "BFDTDUMP 1 riscv64\n"
s_a0:      .asciz "A0 "
s_a1:      .asciz "A1 "
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
