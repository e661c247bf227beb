# tracer: the QEMU plugin build/tracer/libkrewind.so, the probe/ELF library
# $(BUILD)/tracer/libkrprobe.a for the CLI, and the tracer's unit tests.
#
# The plugin is loaded by QEMU, so it is always built without sanitizers into
# the top build/, from its own objects (build/tracer/obj/), db sources included.

TRACER_PROBE_SRCS := tracer/probe.c tracer/elfsym.c
TRACER_PLUGIN_SRCS := tracer/plugin.c tracer/count.c tracer/insn.c tracer/gdbstub.c $(TRACER_PROBE_SRCS)
PLUGIN := $(TOP_BUILD)/tracer/libkrewind.so
PLUGIN_OBJDIR := $(TOP_BUILD)/tracer/obj
# Recursive (=): GLIB_CFLAGS runs pkg-config, which must happen when the recipe runs,
# after $(DEPS_STAMP) has installed glib, not when make reads this file.
PLUGIN_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
	-D_GNU_SOURCE -fPIC -MMD -MP -I. -I$(TOP_BUILD)/qemu/include $(GLIB_CFLAGS)
PLUGIN_OBJS := $(patsubst %.c,$(PLUGIN_OBJDIR)/%.o,$(TRACER_PLUGIN_SRCS) $(DB_SRCS))

$(PLUGIN_OBJDIR)/%.o: %.c $(PLUGIN_HEADER) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -c $< -o $@

$(PLUGIN_OBJDIR)/db/schema.o: $(DB_SCHEMA)

$(PLUGIN): $(PLUGIN_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(PLUGIN_OBJS) $(GLIB_LIBS) -lcapstone -lelf -lsqlite3 -lpthread

# linuxprobe.c (krewind probe linux) is in the library but not the plugin; it needs libdw.
$(BUILD)/tracer/libkrprobe.a: $(patsubst %.c,$(BUILD)/%.o,$(TRACER_PROBE_SRCS) tracer/linuxprobe.c)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# Unit tests: probe parser + ELF symbols (test_probe), instruction classes (test_tracer).
$(BUILD)/tests/unit/test_probe: $(BUILD)/tests/unit/test_probe.o $(BUILD)/tracer/libkrprobe.a
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lelf
$(BUILD)/tests/unit/test_tracer: $(BUILD)/tests/unit/test_tracer.o $(BUILD)/tracer/insn.o
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lcapstone

# A minimal guest of our own (not the krewind kernel) for tracer_guest.sh:
# xAPIC EOIs over MMIO, a breakpoint, a page fault.
TESTGUEST := $(TOP_BUILD)/tracer/testguest.elf
$(TESTGUEST): tracer/testguest/guest.S tracer/testguest/guest.ld | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -c $< -o $(TOP_BUILD)/tracer/testguest.o
	ld -T tracer/testguest/guest.ld --no-warn-rwx-segments -o $@ $(TOP_BUILD)/tracer/testguest.o

$(BUILD)/krewind: CLI_LDLIBS += -ldw

.PHONY: tracer
tracer: $(PLUGIN) $(BUILD)/tracer/libkrprobe.a $(TESTGUEST)
ALL_TARGETS += $(PLUGIN) $(BUILD)/tracer/libkrprobe.a $(TESTGUEST)
UNIT_TESTS += $(BUILD)/tests/unit/test_probe $(BUILD)/tests/unit/test_tracer

-include $(shell find $(PLUGIN_OBJDIR) -name '*.d' 2>/dev/null)
