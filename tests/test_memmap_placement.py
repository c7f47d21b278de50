"""Placement invariants (6, 7, 9) on the QEMU -m 256 map and hand-made loader decisions."""

from bootforge.memmap.ops import carve, find_free
from bootforge.memmap.placement import (
    Component, Move, check_bda_base_memory, check_ipxe_relocation, check_low_page_untouched,
    check_move_plan, check_placement, check_top_down, check_trampoline, check_xen_image,
)
from test_memmap_sanitize import QEMU_256

LOADER = 0x80000001     # an OS-loader-owned type, as a loader retypes what it takes


def verdicts(checks):
    return {c.subject: c.ok for c in checks}


def test_a_correct_placement_passes_every_check():
    kernel = Component("kernel", 0x100000, 0x200000)
    initrd = Component("initrd", find_free(QEMU_256, 0x300000, max_addr=1 << 32), 0x300000)
    out = carve(carve(QEMU_256, kernel.start, kernel.size, LOADER), initrd.start, initrd.size, LOADER)
    checks = check_placement(QEMU_256, out, [kernel, initrd], hidden=[(0x9F000, 0xC00)],
                             reservations=[(0x8000000, 0x1000)])
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert initrd.start == 0xFFE0000 - 0x300000       # top of RAM below the 128 KiB reserved at 0xffe0000


def test_placement_failures_are_named():
    a = Component("kernel", 0x100000, 0x200000)
    b = Component("initrd", 0x280000, 0x1000)                  # overlaps the kernel
    c = Component("mbi", 0x9F000, 0x2000)                      # runs into reserved EBDA
    checks = verdicts(check_placement(QEMU_256, QEMU_256, [a, b, c], hidden=[(0x2FF000, 0x1000)],
                                      reservations=[(0x100000, 0x10)]))
    assert checks == {"placement-in-usable-memory": False, "placement-no-overlap": False,
                      "placement-clear-of-hidden": False, "placement-clear-of-reservations": False,
                      "placement-retyped": False}


def test_policy_checks():
    assert check_trampoline(Component("t", 0x9E000, 0x1000)).ok
    assert not check_trampoline(Component("t", 0x9F800, 0x1000)).ok
    assert check_xen_image(Component("xen", 0xFC00000, 0x200000)).ok
    assert not check_xen_image(Component("xen", 0xFC01000, 0x200000)).ok
    assert check_ipxe_relocation(0x12345, Component("ipxe", 0xFFD0345, 0x10000)).ok
    assert not check_ipxe_relocation(0x12345, Component("ipxe", 0xFFD0000, 0x10000)).ok
    assert check_top_down(QEMU_256, Component("k", 0xFFDF000, 0x1000)).ok
    assert not check_top_down(QEMU_256, Component("k", 0xFFDE000, 0x1000)).ok
    assert not check_low_page_untouched([Component("x", 0x800, 0x10)]).ok
    assert check_bda_base_memory(627, 627 * 1024).ok and not check_bda_base_memory(627, 0x9F000).ok


def test_move_plan_shuffle_through_free_memory():
    # Syslinux-style: two fragments swap places via free memory at 0x1000000
    fragments = {"a": (0x200000, 0x1000, 0x300000), "b": (0x300000, 0x1000, 0x200000)}
    plan = [Move("b", 0x300000, 0x1000000, 0x1000), Move("a", 0x200000, 0x300000, 0x1000),
            Move("b", 0x1000000, 0x200000, 0x1000)]
    assert verdicts(check_move_plan(QEMU_256, fragments, plan)) == {"move-plan-writes": True,
                                                                     "move-plan-complete": True}


def test_move_plan_clobbering_and_unfinished_plans_fail():
    fragments = {"a": (0x200000, 0x1000, 0x300000), "b": (0x300000, 0x1000, 0x200000)}
    clobber = [Move("a", 0x200000, 0x300000, 0x1000)]
    checks = check_move_plan(QEMU_256, fragments, clobber)
    assert not checks[0].ok and "clobbers b" in checks[0].reason
    assert not checks[1].ok
    into_reserved = [Move("a", 0x200000, 0xFFE0000, 0x1000)]
    assert "neither free nor" in check_move_plan(QEMU_256, fragments, into_reserved)[0].reason


def test_move_plan_overlapping_shift_is_a_memmove():
    fragments = {"k": (0x100000, 0x3000, 0x101000)}
    assert all(c.ok for c in check_move_plan(QEMU_256, fragments, [Move("k", 0x100000, 0x101000, 0x3000)]))
