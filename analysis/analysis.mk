# analysis: the checks behind `krewind check` (analysis/analysis.h), their unit,
# reference (lockdep / Driver Verifier cases) and property tests, and the synthetic-trace generator used by bench/check_scale.sh.
ANALYSIS_SRCS := $(sort $(wildcard analysis/*.c))
ANALYSIS_OBJS := $(ANALYSIS_SRCS:%.c=$(BUILD)/%.o)
ANALYSIS_LIB := $(BUILD)/analysis/libkranalysis.a

$(ANALYSIS_LIB): $(ANALYSIS_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

# Unit and property tests drive the analyses from in-memory events: no db.
$(BUILD)/tests/unit/test_analysis: $(BUILD)/tests/unit/test_analysis.o $(ANALYSIS_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)
$(BUILD)/tests/unit/test_property: $(BUILD)/tests/unit/test_property.o $(ANALYSIS_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)
$(BUILD)/tests/unit/test_reference: $(BUILD)/tests/unit/test_reference.o $(ANALYSIS_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)
ANALYSIS_TESTS := $(BUILD)/tests/unit/test_analysis $(BUILD)/tests/unit/test_property \
	$(BUILD)/tests/unit/test_reference
UNIT_TESTS += $(ANALYSIS_TESTS)
ALL_TARGETS += $(ANALYSIS_LIB) $(ANALYSIS_TESTS)

# bench/check_scale.sh: check_gen writes a synthetic trace of N events through
# db_writer; check_run times a bare cursor scan or analysis_run on it.
$(BUILD)/bench/check_gen: $(BUILD)/bench/check_gen.o $(BUILD)/db/libkrdb.a
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(DB_LIBS)
$(BUILD)/bench/check_run: $(BUILD)/bench/check_run.o $(ANALYSIS_LIB) $(BUILD)/db/libkrdb.a
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(DB_LIBS)
ALL_TARGETS += $(BUILD)/bench/check_gen $(BUILD)/bench/check_run
