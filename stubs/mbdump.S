/*
 * mbdump: a 32-bit kernel that dumps the boot information it was given.
 *
 * It has no Multiboot header of its own: `bootforge build` adds one (MB1,
 * MB2 or both). On entry (protected mode, paging off, EAX = boot magic,
 * EBX = MBI address) it writes a framed text dump to port 0xE9 (QEMU's
 * isa-debugcon), then ends QEMU through isa-debug-exit (port 0xF4, value
 * 0x10: QEMU exits with status 33). Format (all numbers lower-case hex):
 *
 *   BFMBDUMP 1
 *   EAX <8 hex>
 *   EBX <8 hex>
 *   REGION <name> <address, 8 hex> <length, 8 hex>
 *   <the bytes, 64 hex digits (32 bytes) per line>
 *   END
 *   ... more regions ...
 *   DONE
 *
 * Multiboot2 (EAX 0x36d76289): one region "mbi", total_size bytes (at most
 * 64 KiB). Multiboot1 (EAX 0x2badb002): "mbi" (116 bytes) and every region
 * the flags validate: "cmdline", "mods" (16 bytes per module, at most 64),
 * one "modcmd" per module, "mmap", "drives", "loader", "apm",
 * "vbe_control" (512 bytes), "vbe_mode" (256 bytes), "shdr".
 * Strings are dumped with their NUL (at most 4 KiB). Other magic values:
 * EAX and EBX only.
 */
        .code32
        .text
        .globl _start
_start:
        cli
        cld
        mov     $stack_top, %esp
        mov     %eax, saved_eax
        mov     %ebx, saved_ebx

        mov     $s_banner, %esi
        call    puts
        mov     $s_eax, %esi
        call    puts
        mov     saved_eax, %eax
        call    hex32
        call    newline
        mov     $s_ebx, %esi
        call    puts
        mov     saved_ebx, %eax
        call    hex32
        call    newline

        mov     saved_eax, %eax
        cmp     $0x36d76289, %eax
        je      dump_mb2
        cmp     $0x2badb002, %eax
        je      dump_mb1
        jmp     done

dump_mb2:
        mov     saved_ebx, %edi
        mov     (%edi), %ecx                    /* total_size */
        cmp     $0x10000, %ecx
        jbe     1f
        mov     $0x10000, %ecx
1:      mov     $s_mbi, %esi
        call    region
        jmp     done

dump_mb1:
        mov     saved_ebx, %ebx
        mov     %ebx, %edi
        mov     $116, %ecx
        mov     $s_mbi, %esi
        call    region
        mov     (%ebx), %ebp                    /* flags */

        test    $0x4, %ebp                      /* [2] cmdline */
        jz      1f
        mov     16(%ebx), %edi
        call    strsize
        mov     $s_cmdline, %esi
        call    region
1:
        test    $0x8, %ebp                      /* [3] mods */
        jz      3f
        mov     20(%ebx), %edx
        cmp     $64, %edx
        jbe     2f
        mov     $64, %edx
2:      mov     %edx, %ecx
        shl     $4, %ecx
        mov     24(%ebx), %edi
        mov     $s_mods, %esi
        call    region
        mov     24(%ebx), %eax
modloop:
        test    %edx, %edx
        jz      3f
        mov     8(%eax), %edi
        call    strsize
        mov     $s_modcmd, %esi
        call    region
        add     $16, %eax
        dec     %edx
        jmp     modloop
3:
        test    $0x40, %ebp                     /* [6] mmap */
        jz      4f
        mov     44(%ebx), %ecx
        call    cap4k
        mov     48(%ebx), %edi
        mov     $s_mmap, %esi
        call    region
4:
        test    $0x80, %ebp                     /* [7] drives */
        jz      5f
        mov     52(%ebx), %ecx
        call    cap4k
        mov     56(%ebx), %edi
        mov     $s_drives, %esi
        call    region
5:
        test    $0x200, %ebp                    /* [9] boot_loader_name */
        jz      6f
        mov     64(%ebx), %edi
        call    strsize
        mov     $s_loader, %esi
        call    region
6:
        test    $0x400, %ebp                    /* [10] apm_table */
        jz      7f
        mov     68(%ebx), %edi
        mov     $20, %ecx
        mov     $s_apm, %esi
        call    region
7:
        test    $0x800, %ebp                    /* [11] VBE control and mode info */
        jz      8f
        mov     72(%ebx), %edi
        mov     $512, %ecx
        mov     $s_vbectl, %esi
        call    region
        mov     76(%ebx), %edi
        mov     $256, %ecx
        mov     $s_vbemode, %esi
        call    region
8:
        test    $0x20, %ebp                     /* [5] ELF section headers */
        jz      done
        mov     28(%ebx), %eax                  /* num */
        mov     32(%ebx), %ecx                  /* size */
        cmp     $0x1000, %eax
        ja      done
        cmp     $0x100, %ecx
        ja      done
        imul    %eax, %ecx
        mov     36(%ebx), %edi
        mov     $s_shdr, %esi
        call    region

done:
        mov     $s_done, %esi
        call    puts
        mov     $0x10, %al
        outb    %al, $0xf4                      /* isa-debug-exit */
halt:   hlt
        jmp     halt

/* ecx = min(ecx, 4096) */
cap4k:
        cmp     $0x1000, %ecx
        jbe     1f
        mov     $0x1000, %ecx
1:      ret

/* ecx = length of the string at edi including its NUL, at most 4096 */
strsize:
        push    %edi
        xor     %ecx, %ecx
1:      cmpb    $0, (%edi)
        je      2f
        inc     %edi
        inc     %ecx
        cmp     $4095, %ecx
        jb      1b
2:      inc     %ecx
        pop     %edi
        ret

/* REGION header, hex lines and END for esi = name, edi = address, ecx = length */
region:
        pusha
        push    %esi
        mov     $s_region, %esi
        call    puts
        pop     %esi
        call    puts
        mov     $' ', %al
        call    putc
        mov     %edi, %eax
        call    hex32
        mov     $' ', %al
        call    putc
        mov     %ecx, %eax
        call    hex32
        call    newline
        xor     %edx, %edx
        test    %ecx, %ecx
        jz      3f
1:      mov     (%edi), %al
        call    hex8
        inc     %edi
        inc     %edx
        cmp     $32, %edx
        jne     2f
        call    newline
        xor     %edx, %edx
2:      loop    1b
        test    %edx, %edx
        jz      3f
        call    newline
3:      mov     $s_end, %esi
        call    puts
        popa
        ret

newline:
        push    %eax
        mov     $'\n', %al
        call    putc
        pop     %eax
        ret

putc:
        outb    %al, $0xe9
        ret

puts:
        push    %eax
        push    %esi
1:      lodsb
        test    %al, %al
        jz      2f
        call    putc
        jmp     1b
2:      pop     %esi
        pop     %eax
        ret

/* eight hex digits of eax */
hex32:
        push    %eax
        push    %ecx
        mov     $4, %ecx
1:      rol     $8, %eax
        call    hex8
        loop    1b
        pop     %ecx
        pop     %eax
        ret

/* two hex digits of al */
hex8:
        push    %eax
        push    %eax
        shr     $4, %al
        call    nibble
        pop     %eax
        call    nibble
        pop     %eax
        ret

nibble:
        and     $0xf, %al
        cmp     $10, %al
        jb      1f
        add     $('a' - 10 - '0'), %al
1:      add     $'0', %al
        jmp     putc

        .section .rodata
s_banner:  .asciz "BFMBDUMP 1\n"
s_eax:     .asciz "EAX "
s_ebx:     .asciz "EBX "
s_region:  .asciz "REGION "
s_end:     .asciz "END\n"
s_done:    .asciz "DONE\n"
s_mbi:     .asciz "mbi"
s_cmdline: .asciz "cmdline"
s_mods:    .asciz "mods"
s_modcmd:  .asciz "modcmd"
s_mmap:    .asciz "mmap"
s_drives:  .asciz "drives"
s_loader:  .asciz "loader"
s_apm:     .asciz "apm"
s_shdr:    .asciz "shdr"
s_vbectl:  .asciz "vbe_control"
s_vbemode: .asciz "vbe_mode"

        .data
saved_eax: .long 0
saved_ebx: .long 0

        .bss
        .balign 16
stack:  .skip 4096
stack_top:
