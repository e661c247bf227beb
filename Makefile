# krewind: the one entry point. Non-recursive: each module adds its rules through
# its own fragment (MODULE/MODULE.mk). Everything is built out of tree in build/.
#
#   make            build everything (installs missing dependencies first)
#   make kernel     the kernel under test only
#   make test       unit tests + end-to-end tests under real QEMU, one summary line
#   make demo       record eoi-before-switch, diagnose it, print the replay command
#   make bench      benchmarks (ratios measured side by side in one run)
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60)
#   make check-all  test + SAN=1 test + test-tsan + fuzz (slow; docs/verification.md)
#   make check-fresh FRESH_CMD="make test"  a README command in a fresh Debian 12
#                   chroot, from a clean clone of this checkout's HEAD (root, heavy)
#   make install    PREFIX=/usr/local (DESTDIR too); make uninstall (scripts/install.mk)
#   make clean
#
# SAN=1 builds host code with ASan+UBSan (build/san/), TSAN=1 with TSan (build/tsan/).

BUILD := build
ifeq ($(SAN),1)
BUILD := build/san
endif
ifeq ($(TSAN),1)
BUILD := build/tsan
endif
# qemu-plugin.h and the dependency stamp live in the top build/ whatever the variant.
TOP_BUILD := build
PLUGIN_HEADER := $(TOP_BUILD)/qemu/include/qemu-plugin.h
DEPS_STAMP := $(TOP_BUILD)/.deps-ok

CC ?= cc
HOST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
	-D_GNU_SOURCE -fPIC -MMD -MP -I.
HOST_LDFLAGS :=
ifeq ($(SAN),1)
HOST_CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
HOST_LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
HOST_CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=thread
HOST_LDFLAGS += -fsanitize=thread
endif

# Recursive (=) on purpose, here and wherever they are used: pkg-config may only run
# in a recipe, after $(DEPS_STAMP), never while make reads the Makefiles (on a fresh
# machine glib is not installed yet then). tests/e2e/build_fresh.sh checks it.
GLIB_CFLAGS = $(shell pkg-config --cflags glib-2.0 2>/dev/null)
GLIB_LIBS = $(shell pkg-config --libs glib-2.0 2>/dev/null)

# Filled in by the fragments.
ALL_TARGETS :=
UNIT_TESTS :=        # cmocka binaries, run by tests/run.sh
E2E_TESTS :=         # tests/e2e/*.sh scripts, run by tests/run.sh after the build
BENCHES :=           # bench/*.sh scripts

.PHONY: all kernel test demo bench clean deps check-all check-fresh fuzz
all:

include kernel/kernel.mk
include db/db.mk
include tracer/tracer.mk
include analysis/analysis.mk
include replay/replay.mk
include ui-cli/cli.mk
include tests/tests.mk
include tests/hobby/hobby.mk
include bench/bench.mk
include tests/fuzz/fuzz.mk
include scripts/install.mk

all: $(ALL_TARGETS)
# Nothing is built before the dependencies are in place.
$(ALL_TARGETS) $(UNIT_TESTS): | $(DEPS_STAMP)

# Dependencies: installed once on a fresh machine, re-checked when the script changes.
$(DEPS_STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh --check || scripts/install-deps.sh
	@mkdir -p $(@D) && touch $@
$(PLUGIN_HEADER): | $(DEPS_STAMP)
	@test -s $@ || scripts/install-deps.sh
deps: $(DEPS_STAMP)

# Host objects: build/<variant>/<dir>/<file>.o from <dir>/<file>.c
$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) $(CFLAGS_$(dir $<)) -c $< -o $@

# A plain `make test` also runs the unit tests built with ASan+UBSan
# (build/san) and the writer's stress test under TSan (build/tsan);
# docs/verification.md. SAN=1 / TSAN=1 run their variant only.
ifeq ($(SAN)$(TSAN),)
SAN_UNIT_TESTS := $(patsubst $(BUILD)/%,build/san/%,$(UNIT_TESTS))
TSAN_UNIT_TESTS := build/tsan/tests/unit/test_db_stress
.PHONY: san-units tsan-units
san-units: | $(DEPS_STAMP)
	@$(MAKE) --no-print-directory SAN=1 $(SAN_UNIT_TESTS)
tsan-units: | $(DEPS_STAMP)
	@$(MAKE) --no-print-directory TSAN=1 $(TSAN_UNIT_TESTS)
test: san-units tsan-units
endif

test: all $(UNIT_TESTS)
	@tests/run.sh $(BUILD) $(UNIT_TESTS) $(SAN_UNIT_TESTS) $(TSAN_UNIT_TESTS) -- $(E2E_TESTS)

# Everything, slow parts included: make test, the whole suite again with
# ASan+UBSan (e2e included), the TSan runs of db (longer stress), and every
# fuzzer for FUZZ_SECONDS. docs/verification.md.
check-all:
	$(MAKE) test
	$(MAKE) SAN=1 test
	$(MAKE) test-tsan
	$(MAKE) fuzz

# ../shared/tools/fresh-machine.sh: a debootstrap chroot with only gcc, make and git.
FRESH_CMD ?= make test
FRESH_MACHINE ?= ../shared/tools/fresh-machine.sh
check-fresh:
	$(FRESH_MACHINE) "$(FRESH_CMD)"

demo: all
	@scripts/demo.sh $(BUILD)

bench: all
	@bench/run.sh $(BUILD) $(BENCHES)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
