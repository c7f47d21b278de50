# bootforge: `make test` sets itself up on a fresh machine (Debian packages,
# a virtualenv with bootforge installed editable, the assembly stubs) and
# runs the whole test suite, QEMU end-to-end tests included.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build

# Everything the tests boot or compare against; all Debian packages.
DEB_PACKAGES := binutils qemu-system-x86 qemu-system-arm qemu-system-misc \
	seabios ovmf ipxe-qemu device-tree-compiler \
	grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools \
	isolinux syslinux-common memtest86+ xen-hypervisor-4.17-amd64 \
	linux-image-amd64 systemd-boot-efi \
	gdisk dosfstools genisoimage ipxe gcc libc6-dev librsvg2-bin \
	tboot grub-invaders multiboot \
	sbsigntool efitools swtpm swtpm-tools tpm2-tools busybox-static \
	shim-signed grub-efi-amd64-signed libtss2-tcti-swtpm0 openssl \
	qemu-efi-aarch64 qemu-efi-arm u-boot-qemu u-boot-tools opensbi \
	binutils-aarch64-linux-gnu binutils-riscv64-linux-gnu binutils-arm-linux-gnueabihf \
	linux-source-6.1 cpp lz4 zstd xz-utils

AS := as
LD := ld

.PHONY: all deps venv stubs test demo bench clean arm64-kernel

all: venv stubs

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "deps: installing$$(echo $$missing | sed 's/^/ /')"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "deps: missing Debian packages; run:"; \
		echo "  sudo apt-get update && sudo apt-get install -y $$missing"; \
	fi
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) -s arm64-kernel; fi

# Debian's arm64 kernel (an EFI-stub Image) for the device-tree platform tests, fetched with
# apt-get download (arm64 added as a foreign architecture) and cached under build/, never committed.
ARM64_KERNEL := $(BUILD)/debian-arm64/vmlinuz
# systemd's arm64 EFI stub (Debian's systemd-boot-efi:arm64) for arm64 UKIs, cached the same way.
ARM64_UKI_STUB := $(BUILD)/debian-arm64/linuxaa64.efi.stub
arm64-kernel: $(ARM64_KERNEL) $(ARM64_UKI_STUB)
$(ARM64_UKI_STUB):
	@mkdir -p $(@D)
	@dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -q; }
	cd $(@D) && apt-get download -q systemd-boot-efi:arm64 \
		&& dpkg-deb --fsys-tarfile systemd-boot-efi_*_arm64.deb | tar -xO ./usr/lib/systemd/boot/efi/linuxaa64.efi.stub \
		> linuxaa64.efi.stub.tmp && mv linuxaa64.efi.stub.tmp linuxaa64.efi.stub
$(ARM64_KERNEL):
	@mkdir -p $(@D)
	@dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -q; }
	cd $(@D) && pkg=$$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/{print $$2; exit}') \
		&& apt-get download -q $$pkg && dpkg-deb --fsys-tarfile $${pkg%:arm64}_*_arm64.deb | tar -x ./boot \
		&& cp boot/vmlinuz-* vmlinuz.tmp && mv vmlinuz.tmp vmlinuz

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The ROM init stub: 16-bit code with no header of its own (bootforge wraps it).
$(BUILD)/stubs/hello-rom.elf: stubs/hello-rom.S stubs/rom.ld
	@mkdir -p $(@D)
	$(AS) --32 -o $(BUILD)/stubs/hello-rom.o $<
	$(LD) -m elf_i386 -T stubs/rom.ld -o $@ $(BUILD)/stubs/hello-rom.o

# The Multiboot dump kernel: 32-bit, no Multiboot header (bootforge build adds it).
$(BUILD)/stubs/mbdump.elf: stubs/mbdump.S stubs/mbdump.ld
	@mkdir -p $(@D)
	$(AS) --32 -o $(BUILD)/stubs/mbdump.o $<
	$(LD) -m elf_i386 -T stubs/mbdump.ld --build-id=none --no-warn-rwx-segments -o $@ $(BUILD)/stubs/mbdump.o

# The device-tree dump kernels: flat code; bootforge writes the Image header (recipes/dtdump-*.toml).
$(BUILD)/stubs/dtdump-aarch64.bin: stubs/dtdump-aarch64.S
	@mkdir -p $(@D)
	aarch64-linux-gnu-as -o $(BUILD)/stubs/dtdump-aarch64.o $<
	aarch64-linux-gnu-objcopy -O binary -j .text $(BUILD)/stubs/dtdump-aarch64.o $@

$(BUILD)/stubs/dtdump-riscv64.bin: stubs/dtdump-riscv64.S
	@mkdir -p $(@D)
	riscv64-linux-gnu-as -march=rv64i -o $(BUILD)/stubs/dtdump-riscv64.o $<
	@# RISC-V gas leaves even local pc-relative references to the linker (relaxation): link at 0.
	riscv64-linux-gnu-ld -Ttext=0 --no-relax --build-id=none -o $(BUILD)/stubs/dtdump-riscv64.elf $(BUILD)/stubs/dtdump-riscv64.o
	riscv64-linux-gnu-objcopy -O binary -j .text $(BUILD)/stubs/dtdump-riscv64.elf $@

$(BUILD)/stubs/dtdump-arm.bin: stubs/dtdump-arm.S
	@mkdir -p $(@D)
	arm-linux-gnueabihf-as -o $(BUILD)/stubs/dtdump-arm.o $<
	arm-linux-gnueabihf-ld -Ttext=0 --build-id=none -o $(BUILD)/stubs/dtdump-arm.elf $(BUILD)/stubs/dtdump-arm.o
	arm-linux-gnueabihf-objcopy -O binary -j .text $(BUILD)/stubs/dtdump-arm.elf $@

STUBS := $(BUILD)/stubs/hello-rom.elf $(BUILD)/stubs/mbdump.elf \
	$(BUILD)/stubs/dtdump-aarch64.bin $(BUILD)/stubs/dtdump-riscv64.bin $(BUILD)/stubs/dtdump-arm.bin

# The PXE probe: a real-mode PXE NBP (loaded at 0000:7C00), flat (tests/test_ipxe_probe.py).
$(BUILD)/stubs/pxeprobe.0: stubs/pxeprobe.S stubs/pxeprobe.ld
	@mkdir -p $(@D)
	$(AS) --32 -o $(BUILD)/stubs/pxeprobe.o $<
	$(LD) -m elf_i386 -T stubs/pxeprobe.ld --build-id=none -o $(BUILD)/stubs/pxeprobe.elf $(BUILD)/stubs/pxeprobe.o
	objcopy -O binary $(BUILD)/stubs/pxeprobe.elf $@

# The boot sector of the disk verify SAN-boots through iPXE: it loads the PXE probe after it.
$(BUILD)/stubs/sanmbr.bin: stubs/sanmbr.S stubs/sanmbr.ld
	@mkdir -p $(@D)
	$(AS) --32 -o $(BUILD)/stubs/sanmbr.o $<
	$(LD) -m elf_i386 -T stubs/sanmbr.ld --build-id=none -o $(BUILD)/stubs/sanmbr.elf $(BUILD)/stubs/sanmbr.o
	objcopy -O binary $(BUILD)/stubs/sanmbr.elf $@

STUBS += $(BUILD)/stubs/pxeprobe.0 $(BUILD)/stubs/sanmbr.bin

stubs: $(STUBS)

# The suite runs on every core (pytest-xdist): most of it is one QEMU or one Python process
# at a time, so a second worker nearly halves the wall time on 2 cores. Whole files go to
# one worker (--dist loadfile), so a module's fixtures are made once.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps venv stubs
	$(PY) -m pytest -q -ra -n $(TEST_JOBS) --dist loadfile tests

# The loader fidelity matrix (tests/fidelity.py, on bootforge.qemu and verify's capture):
# boot the dump kernel and Xen's xen.gz under QEMU -kernel, GRUB, Syslinux, iPXE and
# Limine in QEMU and compare with `bootforge load`; prints the matrix.
.PHONY: fidelity
fidelity: deps venv stubs
	BOOTFORGE_FIDELITY=full $(PY) -m pytest -q -ra tests/test_load_fidelity.py tests/test_limine_fidelity.py

# verify of Linux entries make test leaves out (GRUB i386-pc `linux` at 256M/512M/1G, QEMU
# -kernel at 3G, a bare UKI and a UKI on an ESP under OVMF at 512M/3G: ~30 s each).
.PHONY: linux-verify
linux-verify: deps venv
	$(PY) -m pytest -q -ra tests/linux_verify_matrix.py

# One real OVMF boot stopped at the kernel's entry against OVMF's page-allocator model (make test
# checks the same fields on the kept gdbstub captures, tests/data/ovmf-pages).
.PHONY: ovmf-pages
ovmf-pages: deps venv
	$(PY) -m pytest -q -ra tests/ovmf_pages_boot.py

# Debian's arm64 kernel on AAVMF at 512M, 2G and 3G, from a bootforge disk image and by QEMU -kernel
# with an initrd, against the 1G AAVMF page captures (make test boots 1G of each: ~10 s a boot).
.PHONY: aavmf-verify
aavmf-verify: deps venv
	$(PY) -m pytest -q -ra tests/aavmf_verify_matrix.py

# Every Linux 6.1 arm64/arm DTS through bootforge and dtc, and the compile bench on all of them
# (make test runs a 300-file sample of the same comparison).
.PHONY: dts-corpus
dts-corpus: deps venv
	DTS_CORPUS_SAMPLE=all $(PY) -m pytest -q -ra tests/test_dts_corpus.py
	$(PY) bench/dts_compile.py --files all

# The point of the tool in under a minute: build a Multiboot2 kernel, predict where GRUB
# puts it and its modules, verify that against the real GRUB in QEMU, draw the SVG.
demo: deps venv stubs
	@mkdir -p $(BUILD)/demo
	@echo "== 1. build a Multiboot2 kernel from a recipe"
	$(VENV)/bin/bootforge build recipes/kernel-mbdump-mb2.toml -o $(BUILD)/demo/kernel.elf
	@echo "== 2. predict where GRUB i386-pc puts the kernel, its modules and the boot information"
	$(VENV)/bin/bootforge load recipes/demo-grub.toml --svg $(BUILD)/demo/placement.svg
	@echo "== 3. boot the real GRUB in QEMU, stop at the kernel's entry, compare"
	$(VENV)/bin/bootforge verify recipes/demo-grub.toml
	@echo "== 4. the placement drawn: $(BUILD)/demo/placement.svg"

# Every claim runs, also after one misses its goal; the misses are named at the end.
bench: venv stubs
	@over=""; for b in bench/*.py; do echo "== $$b"; $(PY) $$b || over="$$over $$b"; done; \
	if [ -n "$$over" ]; then echo "bench: goal missed or run failed:$$over"; exit 1; fi

# Fuzz every family (tests/fuzz/README.md) on a snapshot of HEAD for FUZZ_SECONDS each, niced.
# The long campaign: make fuzz FUZZ_SECONDS=7200 FUZZ_ARGS="--cpu-seconds 1800 --executions 1000000"
FUZZ_SECONDS ?= 150
FUZZ_ARGS ?=
.PHONY: fuzz
fuzz: venv stubs
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q atheris
	rm -rf /tmp/fuzztree && mkdir /tmp/fuzztree && git archive HEAD | tar -x -C /tmp/fuzztree
	ln -s "$(CURDIR)/$(BUILD)" /tmp/fuzztree/build
	BOOTFORGE_FUZZ_DIR=$${BOOTFORGE_FUZZ_DIR:-/tmp/bootforge-fuzz} nice -n 19 \
		$(PY) /tmp/fuzztree/tests/fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS) $(FUZZ_FAMILIES)

clean:
	rm -rf $(BUILD) .pytest_cache
