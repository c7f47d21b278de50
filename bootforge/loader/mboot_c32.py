"""Syslinux's mboot.c32 command line (syslinux com32/mboot/mboot.c): the APPEND line holds
the kernel and then each module, each followed by its arguments, separated by `---`."""


def mboot_groups(append):
    """[[file, arg, ...], ...] of an mboot.c32 APPEND line, the kernel's first; empty
    groups (a leading, trailing or doubled `---`) are dropped."""
    groups, group = [], []
    for word in append.split():
        if word == "---":
            groups.append(group)
            group = []
        else:
            group.append(word)
    groups.append(group)
    return [g for g in groups if g]
