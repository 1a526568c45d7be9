// Start-up for QEMU's virt machine (Cortex-A53, AArch64): the entry of the
// primary core (_start) and of the secondary cores (secondary_entry, the
// address given to PSCI CPU_ON), the MMU's identity map, and the EL1 vector
// table.
//
// Both entries: leave EL2 for EL1 if entered there, set the core's stack,
// install the vector table and enable the MMU and caches before any load or
// store that needs them (exclusives need Normal cacheable memory on real
// hardware). The primary then clears .bss and calls a64_primary_main; a
// secondary calls a64_secondary_main(core).

#define STACK_SIZE 0x10000

// MAIR_EL1: attribute 0 = Device-nGnRnE (0x00), attribute 1 = Normal,
// inner and outer write-back, read- and write-allocate (0xff).
#define MAIR_VALUE 0xff00
// TCR_EL1: T0SZ=32 (a 4 GiB space from TTBR0, walks start at level 1),
// IRGN0=ORGN0=write-back write-allocate, SH0=inner shareable, TG0=4 KiB,
// EPD1=1 (no TTBR1 walks), IPS=0 (32-bit physical addresses).
#define TCR_VALUE ((32 << 0) | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23))
// SCTLR_EL1: M (MMU), C (data cache), SA (stack alignment check), I
// (instruction cache) and the ARMv8.0 RES1 bits 11, 20, 22, 23, 28, 29.
// Alignment checking (A) stays off.
#define SCTLR_VALUE 0x30d0180d

    .section .text.boot, "ax"
    .global _start
_start:
    // Only the primary core starts here (QEMU holds the others powered off
    // for PSCI); anything else waits forever.
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbnz    x1, .Lhalt
    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    ldr     x2, =a64_boot_el
    str     x1, [x2]
    bl      drop_to_el1
    ldr     x1, =__stacks_start + STACK_SIZE
    mov     sp, x1
    bl      enable_mmu
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  bl      a64_primary_main
.Lhalt:
    wfe
    b       .Lhalt

// x0 = the core index (PSCI's context id).
    .global secondary_entry
secondary_entry:
    mov     x19, x0
    bl      drop_to_el1
    ldr     x1, =__stacks_start
    add     x2, x19, #1
    mov     x3, #STACK_SIZE
    madd    x1, x2, x3, x1
    mov     sp, x1
    bl      enable_mmu
    mov     x0, x19
    bl      a64_secondary_main
    b       .Lhalt

// Returns at EL1. From EL2 (QEMU's virt with virtualization=on): EL1 is
// AArch64, may use both timers, and sees no virtual offset.
drop_to_el1:
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    1f
    mov     x1, #3                  // CNTHCTL_EL2: EL1PCTEN | EL1PCEN
    msr     cnthctl_el2, x1
    msr     cntvoff_el2, xzr
    mov     x1, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x1
    mov     x1, #0x3c5              // EL1h, D, A, I, F masked
    msr     spsr_el2, x1
    msr     elr_el2, x30
    isb
    eret
1:  ret

// The same tables on every core; interrupts stay masked (reset state).
enable_mmu:
    ldr     x1, =vectors
    msr     vbar_el1, x1
    ldr     x1, =page_table_l1
    msr     ttbr0_el1, x1
    ldr     x1, =MAIR_VALUE
    msr     mair_el1, x1
    ldr     x1, =TCR_VALUE
    msr     tcr_el1, x1
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     ish
    isb
    ldr     x1, =SCTLR_VALUE
    msr     sctlr_el1, x1
    isb
    ret

// The identity map: four 1 GiB blocks at level 1.
//   0x00000000-0x3fffffff  devices (GIC, UART, ...): Device-nGnRnE, never
//                          executable (UXN, PXN)
//   0x40000000-0x7fffffff  RAM: Normal write-back, inner shareable
//   above: unmapped
// Block descriptor: bits[1:0]=01, AttrIndx[4:2], AP[7:6]=00 (EL1 read/write),
// SH[9:8], AF[10]=1 (no access-flag faults).
    .section .data.page_table, "aw"
    .balign 4096
page_table_l1:
    .quad   0x0060000000000401
    .quad   0x0000000040000705
    .quad   0
    .quad   0

    .section .data.boot_el, "aw"
    .balign 8
    .global a64_boot_el
a64_boot_el:
    .quad   0

// The EL1 vector table: 16 entries of 0x80 bytes. Only an IRQ taken from
// EL1 with SP_EL1 (offset 0x280) is expected; every other entry reports and
// ends the program (a64_unexpected_exception(kind, esr, elr, far)).
.macro unexpected kind
    .balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       a64_unexpected_exception
.endm

    .section .text.vectors, "ax"
    .balign 2048
vectors:
    unexpected 0    // current EL, SP0: synchronous
    unexpected 1    //   IRQ
    unexpected 2    //   FIQ
    unexpected 3    //   SError
    unexpected 4    // current EL, SPx: synchronous
    .balign 0x80
    b       irq_entry
    unexpected 6    //   FIQ
    unexpected 7    //   SError
    unexpected 8    // lower EL, AArch64
    unexpected 9
    unexpected 10
    unexpected 11
    unexpected 12   // lower EL, AArch32
    unexpected 13
    unexpected 14
    unexpected 15

// Saves the registers a C++ function may clobber (and ELR/SPSR), calls
// a64_irq_dispatch with IRQs masked (no nesting), restores and returns. The
// return (ERET) also sets the event register, so a WFE right after the
// interrupted instruction does not sleep (see port.cpp).
irq_entry:
    sub     sp, sp, #192
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    mrs     x0, elr_el1
    stp     x30, x0, [sp, #160]
    mrs     x0, spsr_el1
    str     x0, [sp, #176]
    bl      a64_irq_dispatch
    ldr     x0, [sp, #176]
    msr     spsr_el1, x0
    ldp     x30, x0, [sp, #160]
    msr     elr_el1, x0
    ldp     x18, x29, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #192
    eret
