# make install / uninstall, the man page and the bash completion.
#
#   make install PREFIX=/usr/local [DESTDIR=/tmp/stage]    make uninstall (same vars)
#
# The layout is the one replay/paths.c looks for, relative to the binary:
#   PREFIX/bin/krewind
#   PREFIX/lib/krewind/libkrewind.so                 the QEMU plugin
#   PREFIX/share/krewind/kernel.elf                  the kernel under test
#   PREFIX/share/krewind/probes/*.probe
#   PREFIX/share/krewind/krewind-gdb.py, krewind-bisect.py
#   PREFIX/share/man/man1/krewind.1                  from the binary's help texts
#   PREFIX/share/bash-completion/completions/krewind
# Only the top build/ is installed (never a SAN/TSAN variant).

PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_BIN := $(TOP_BUILD)/krewind
MAN_PAGE := $(TOP_BUILD)/krewind.1
KREWIND_PROBES := $(sort $(wildcard probes/*.probe))
KREWIND_GDB_PY := replay/krewind-gdb.py replay/krewind-bisect.py
COMPLETION := scripts/krewind-completion.bash

# The man page is generated from the help texts, so it follows every change of them
# (install writes it again, for its PREFIX in FILES).
$(MAN_PAGE): $(INSTALL_BIN) scripts/mkman.sh
	scripts/mkman.sh $(INSTALL_BIN) $@ $(PREFIX)
ifeq ($(SAN)$(TSAN),)
ALL_TARGETS += $(MAN_PAGE)
endif

# Every installed path, for uninstall and the install test.
INSTALLED = $(DESTDIR)$(PREFIX)/bin/krewind \
	$(DESTDIR)$(PREFIX)/lib/krewind/libkrewind.so \
	$(DESTDIR)$(PREFIX)/share/krewind/kernel.elf \
	$(KREWIND_PROBES:%=$(DESTDIR)$(PREFIX)/share/krewind/%) \
	$(addprefix $(DESTDIR)$(PREFIX)/share/krewind/,$(notdir $(KREWIND_GDB_PY))) \
	$(DESTDIR)$(PREFIX)/share/man/man1/krewind.1 \
	$(DESTDIR)$(PREFIX)/share/bash-completion/completions/krewind

.PHONY: install uninstall man
man: $(MAN_PAGE)
install: $(INSTALL_BIN) $(PLUGIN) $(KERNEL_ELF) $(MAN_PAGE)
	install -D -m 755 $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/bin/krewind
	install -D -m 644 $(PLUGIN) $(DESTDIR)$(PREFIX)/lib/krewind/libkrewind.so
	install -D -m 644 $(KERNEL_ELF) $(DESTDIR)$(PREFIX)/share/krewind/kernel.elf
	install -d $(DESTDIR)$(PREFIX)/share/krewind/probes
	install -m 644 $(KREWIND_PROBES) $(DESTDIR)$(PREFIX)/share/krewind/probes/
	install -m 644 $(KREWIND_GDB_PY) $(DESTDIR)$(PREFIX)/share/krewind/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	scripts/mkman.sh $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/share/man/man1/krewind.1 $(PREFIX)
	chmod 644 $(DESTDIR)$(PREFIX)/share/man/man1/krewind.1
	install -D -m 644 $(COMPLETION) $(DESTDIR)$(PREFIX)/share/bash-completion/completions/krewind

uninstall:
	rm -f $(INSTALLED)
	-rmdir $(DESTDIR)$(PREFIX)/share/krewind/probes $(DESTDIR)$(PREFIX)/share/krewind \
		$(DESTDIR)$(PREFIX)/lib/krewind 2>/dev/null
