# db: the trace database library (db/db.h), its tests, tools and benchmark.
#
# DB_SRCS and DB_LIBS are for other modules: the tracer compiles its own
# non-sanitized copy of DB_SRCS into libkrewind.so (schema.o must depend on
# DB_SCHEMA: schema.c embeds it with .incbin, path relative to the top).

DB_SRCS := db/queue.c db/reader.c db/schema.c db/util.c db/writer.c
DB_SCHEMA := db/schema.sql
DB_LIBS := -lsqlite3 -lpthread
DB_LIB := $(BUILD)/db/libkrdb.a

$(BUILD)/db/schema.o: $(DB_SCHEMA)

$(DB_LIB): $(DB_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

# Helper programs: the SIGKILL e2e test's event pusher, the writer benchmark.
$(BUILD)/db/db_push: $(BUILD)/db/tools/db_push.o $(DB_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(DB_LIBS)
$(BUILD)/bench/db_bench: $(BUILD)/bench/db_bench.o $(DB_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(DB_LIBS)

$(BUILD)/tests/unit/test_db: $(BUILD)/tests/unit/test_db.o $(DB_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(DB_LIBS)
$(BUILD)/tests/unit/test_db_stress: $(BUILD)/tests/unit/test_db_stress.o $(DB_LIB)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(DB_LIBS)

ALL_TARGETS += $(DB_LIB) $(BUILD)/db/db_push $(BUILD)/bench/db_bench \
	$(BUILD)/tests/unit/test_db $(BUILD)/tests/unit/test_db_stress
UNIT_TESTS += $(BUILD)/tests/unit/test_db $(BUILD)/tests/unit/test_db_stress

# The stress harness under ThreadSanitizer (build/tsan), longer run, and the
# unit tests (concurrent pushes, readers following a writer) too.
.PHONY: test-tsan
test-tsan:
	$(MAKE) TSAN=1 build/tsan/tests/unit/test_db_stress build/tsan/tests/unit/test_db
	CMOCKA_MESSAGE_OUTPUT=TAP KREWIND_STRESS_ROUNDS=20 build/tsan/tests/unit/test_db_stress
	CMOCKA_MESSAGE_OUTPUT=TAP build/tsan/tests/unit/test_db
