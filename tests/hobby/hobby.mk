# tests/hobby: a disk-booted hobby-style kernel of our own (tests/hobby/README.md),
# built from source: boot sector + flat kernel in a 1 MiB raw disk image, and the
# kernel's ELF (symbols) beside it.
HOBBY_DIR := $(TOP_BUILD)/tests/hobby
HOBBY_IMG := $(HOBBY_DIR)/disk.img
HOBBY_ELF := $(HOBBY_DIR)/hobby.elf
HOBBY_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wa,--noexecstack -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
	-fno-omit-frame-pointer -mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-asynchronous-unwind-tables

$(HOBBY_DIR)/boot.bin: tests/hobby/boot.S tests/hobby/boot.ld | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -c tests/hobby/boot.S -o $(HOBBY_DIR)/boot.o
	ld -T tests/hobby/boot.ld -o $@ $(HOBBY_DIR)/boot.o

$(HOBBY_ELF): tests/hobby/entry.S tests/hobby/hobby.c tests/hobby/hobby.ld | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(HOBBY_CFLAGS) -c tests/hobby/entry.S -o $(HOBBY_DIR)/entry.o
	$(CC) $(HOBBY_CFLAGS) -c tests/hobby/hobby.c -o $(HOBBY_DIR)/hobby.o
	ld -T tests/hobby/hobby.ld -nostdlib --no-warn-rwx-segments -z noexecstack -o $@ $(HOBBY_DIR)/entry.o $(HOBBY_DIR)/hobby.o

# The same kernel with a PVH entry note instead of the Multiboot headers,
# linked at 1 MiB: QEMU loads a PVH ELF before the firmware runs, and the
# firmware's own use of low memory would overwrite it at 0x10000.
HOBBY_PVH := $(HOBBY_DIR)/hobby-pvh.elf
$(HOBBY_PVH): $(HOBBY_ELF) tests/hobby/hobby.mk
	$(CC) $(HOBBY_CFLAGS) -DHOBBY_PVH -c tests/hobby/entry.S -o $(HOBBY_DIR)/entry-pvh.o
	ld --defsym=HOBBY_BASE=0x100000 -T tests/hobby/hobby.ld -nostdlib --no-warn-rwx-segments -z noexecstack -o $@ $(HOBBY_DIR)/entry-pvh.o $(HOBBY_DIR)/hobby.o
ALL_TARGETS += $(HOBBY_PVH)

# The boot sector reads 127 sectors: the flat kernel must fit.
$(HOBBY_IMG): $(HOBBY_DIR)/boot.bin $(HOBBY_ELF)
	objcopy -O binary $(HOBBY_ELF) $(HOBBY_DIR)/hobby.bin
	@test $$(stat -c %s $(HOBBY_DIR)/hobby.bin) -le 65024 || { echo "hobby.bin is over 127 sectors" >&2; exit 1; }
	rm -f $@.tmp
	truncate -s 1M $@.tmp
	dd if=$(HOBBY_DIR)/boot.bin of=$@.tmp conv=notrunc status=none
	dd if=$(HOBBY_DIR)/hobby.bin of=$@.tmp bs=512 seek=1 conv=notrunc status=none
	mv $@.tmp $@

.PHONY: hobby
hobby: $(HOBBY_IMG)
ALL_TARGETS += $(HOBBY_IMG)

# The same ELF on a GRUB rescue ISO (grub-mkrescue: an El Torito CD that is
# also a bootable hard disk image), booted by GRUB's multiboot2 loader
# (tests/hobby/grub.cfg). Built when GRUB's BIOS modules are installed
# (scripts/install-deps.sh installs them); tests/e2e/boot_loaders.sh says so
# when they are not.
HOBBY_ISO := $(HOBBY_DIR)/grub.iso
# Whether GRUB is there is asked when the recipe runs, after install-deps (a
# parse-time $(shell)/$(wildcard) would see a fresh machine before it).
$(HOBBY_ISO): $(HOBBY_ELF) tests/hobby/grub.cfg tests/hobby/hobby.mk | $(DEPS_STAMP)
	@if ! command -v grub-mkrescue >/dev/null || [ ! -e /usr/lib/grub/i386-pc/multiboot2.mod ]; then \
		echo "note: $@ not built: no grub-mkrescue or GRUB BIOS modules (grub-pc-bin)"; exit 0; fi; \
	rm -rf $(HOBBY_DIR)/iso $@.tmp && mkdir -p $(HOBBY_DIR)/iso/boot/grub && \
	cp $(HOBBY_ELF) $(HOBBY_DIR)/iso/boot/hobby.elf && \
	cp tests/hobby/grub.cfg $(HOBBY_DIR)/iso/boot/grub/grub.cfg && \
	{ grub-mkrescue -d /usr/lib/grub/i386-pc --locales= --fonts= --themes= \
		--install-modules="multiboot multiboot2 normal configfile iso9660 biosdisk part_msdos" \
		-o $@.tmp $(HOBBY_DIR)/iso 2>$(HOBBY_DIR)/grub-mkrescue.log || \
		{ cat $(HOBBY_DIR)/grub-mkrescue.log >&2; exit 1; }; } && \
	mv $@.tmp $@
ALL_TARGETS += $(HOBBY_ISO)
