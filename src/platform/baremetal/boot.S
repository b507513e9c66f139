/*
 * boot.S - from a multiboot (v1) loader to 64-bit C, and the interrupt stubs.
 *
 * The loader (qemu -kernel) enters _start in 32-bit protected mode with
 * paging off, EAX = the multiboot magic and EBX = the physical address of
 * its information block.  The stub zeroes .bss, identity-maps the first
 * 4 GiB with 2 MiB pages, turns on PAE and long mode, loads a GDT with one
 * 64-bit code segment and jumps to boot_main(magic, info) on a stack in
 * .bss.  SSE stays disabled (CR4.OSFXSR clear): everything is compiled
 * -mgeneral-regs-only, so the interrupt stubs need not save vector state,
 * and a stray SSE instruction raises #UD and is reported instead of
 * silently corrupting the interrupted code's registers.
 */
#define MB_MAGIC      0x1BADB002
#define MB_FLAGS      0x00000003     /* modules page aligned, memory map wanted */
#define MSR_EFER      0xC0000080
#define EFER_LME      0x100
#define CR4_PAE       0x20
#define CR0_PG_PE     0x80000001
#define PDE_2M        0x83           /* present, writable, 2 MiB page */
#define TABLE         0x03           /* present, writable */

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .data
    .balign 8
    .globl boot_magic, boot_info
boot_magic: .long 0
boot_info:  .long 0

    /* Null, 64-bit code (selector 0x08), data (selector 0x10). */
    .balign 16
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

no_long_mode_msg: .ascii "boot: this processor has no long mode\n\0"

    .section .bss
    .balign 4096
    .globl boot_pml4, boot_pdpt, boot_pd
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4 * 4096        /* four page directories: 4 GiB of 2 MiB pages */
    .balign 16
boot_stack: .skip 64 * 1024
boot_stack_top:

    .section .text.boot, "ax"
    .code32
/* count 8-byte entries at table: first, first + step, ... (low halves;
 * the high halves stay zero from .bss) */
.macro fill_table table, first, step, count
    movl $\table, %edi
    movl $\first, %eax
    movl $\count, %ecx
1:  movl %eax, (%edi)
    addl $\step, %eax
    addl $8, %edi
    loop 1b
.endm

    .globl _start
_start:
    cli
    cld
    movl %eax, boot_magic
    movl %ebx, boot_info

    /* .bss: the loader zeroes it too, but the multiboot spec does not
     * promise it for every loader. */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    movl $boot_stack_top, %esp

    /* Long mode is CPUID 0x80000001 EDX bit 29. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc no_long_mode

    /* PML4[0] -> PDPT; PDPT[0..3] -> the four directories; their 2048
     * entries of 2 MiB map the first 4 GiB, identity. */
    movl $boot_pdpt + TABLE, boot_pml4
    fill_table boot_pdpt, boot_pd + TABLE, 4096, 4
    fill_table boot_pd, PDE_2M, 0x200000, 2048

    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $CR0_PG_PE, %eax
    movl %eax, %cr0

    lgdt gdt_ptr
    ljmp $0x08, $long_mode

    /* Say why on COM1 (usable without set-up under qemu), then leave
     * through isa-debug-exit with the failure status. */
no_long_mode:
    movl $no_long_mode_msg, %esi
    movw $0x3f8, %dx
3:  lodsb
    testb %al, %al
    jz 4f
    outb %al, %dx
    jmp 3b
4:  movw $0xf4, %dx
    movl $0x11, %eax
    outl %eax, %dx
5:  hlt
    jmp 5b

    .code64
long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_magic, %edi
    movl boot_info, %esi
    call boot_main
6:  cli
    hlt
    jmp 6b

/*
 * Interrupt stubs, one per vector 0..47, each 16 bytes apart so the IDT
 * is filled by arithmetic (isr_stubs + 16 * vector).  The processor pushes
 * an error code for some exceptions only; the others push a zero, so every
 * frame has the same shape (struct irq_frame in port.h).  The 7 words
 * pushed by the processor and the stub plus the 15 registers keep RSP
 * 16-byte aligned at the call (the processor aligns it on entry).
 * Registers are saved whole, callee-saved ones included, so the exception
 * report can print them.
 */
    .text
    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 48
    .balign 16
    .if !(vec == 8 || vec == 10 || vec == 11 || vec == 12 || vec == 13 || vec == 14 || vec == 17 || vec == 21 || vec == 29 || vec == 30)
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call irq_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
