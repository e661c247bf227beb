# tests/fuzz: libFuzzer targets, built with clang -fsanitize=fuzzer,address,undefined
# straight from the modules' sources into build/fuzz/ (whatever SAN/TSAN say).
#
#   probe   tracer/probe.c   probe-file text
#   elfsym  tracer/elfsym.c  ELF files
#   trace   db/ reader + analysis/ (what `krewind check` runs), trace databases
#   json    replay/json.c    QMP JSON
#
# `make fuzz` runs each for FUZZ_SECONDS (default 60) from its seeds
# (tests/fuzz/corpus/NAME), growing build/fuzz/corpus/NAME; crashers land in
# build/fuzz/crashes/. `make test` runs tests/e2e/fault_fuzz_inputs.sh, which
# replays the seeds and every regression input (tests/fuzz/regress/NAME) once.
FUZZ_BUILD := $(TOP_BUILD)/fuzz
FUZZ_CC := clang
FUZZ_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-D_GNU_SOURCE -I.
FUZZ_SECONDS ?= 60
FUZZ_NAMES := probe elfsym trace json
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

FUZZ_SRCS_probe := tracer/probe.c tracer/elfsym.c
FUZZ_LIBS_probe := -lelf
FUZZ_SRCS_elfsym := tracer/probe.c tracer/elfsym.c
FUZZ_LIBS_elfsym := -lelf
FUZZ_SRCS_trace := $(DB_SRCS) $(ANALYSIS_SRCS)
FUZZ_LIBS_trace := -lsqlite3 -lpthread -lm
FUZZ_SRCS_json := replay/json.c
FUZZ_LIBS_json :=
FUZZ_HEADERS := $(wildcard db/*.h tracer/*.h replay/*.h analysis/*.h) $(DB_SCHEMA)

define FUZZ_RULE
$(FUZZ_BUILD)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) $(FUZZ_HEADERS) | $(DEPS_STAMP)
	@mkdir -p $$(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $$@ tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RULE,$(n))))

ALL_TARGETS += $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@tests/fuzz/run.sh fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_NAMES)
