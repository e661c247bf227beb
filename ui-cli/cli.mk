# ui-cli: the krewind command. Every ui-cli/*.c is part of it (main.c, the
# shared helpers, one cmd_NAME.c per subcommand); it links the modules' libraries.
CLI_SRCS := $(sort $(wildcard ui-cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
# The report page (ui-cli/report/report.html), embedded by cmd_report.c.
CLI_OBJS += $(BUILD)/ui-cli/report/page.o
$(BUILD)/ui-cli/report/page.c: ui-cli/report/report.html ui-cli/report/embed.sh
	@mkdir -p $(@D)
	ui-cli/report/embed.sh $@ $<
$(BUILD)/ui-cli/report/page.o: $(BUILD)/ui-cli/report/page.c
	$(CC) $(HOST_CFLAGS) -c $< -o $@
CLI_MODULE_LIBS := $(BUILD)/analysis/libkranalysis.a $(BUILD)/replay/libkrreplay.a \
	$(BUILD)/tracer/libkrprobe.a $(BUILD)/db/libkrdb.a
CLI_LDLIBS := -lsqlite3 -lcapstone -lelf -lpthread -lm

$(BUILD)/krewind: $(CLI_OBJS) $(CLI_MODULE_LIBS)
	$(CC) $(HOST_LDFLAGS) -o $@ $(CLI_OBJS) $(CLI_MODULE_LIBS) $(CLI_LDLIBS)

# The helpers that need no other module, unit-tested on their own.
CLI_PURE_OBJS := $(addprefix $(BUILD)/ui-cli/,util.o json.o describe.o)
$(BUILD)/tests/unit/test_cli: $(BUILD)/tests/unit/test_cli.o $(CLI_PURE_OBJS)
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lm
UNIT_TESTS += $(BUILD)/tests/unit/test_cli
# The protobuf writer of export --format perfetto.
$(BUILD)/tests/unit/test_pbwire: $(BUILD)/tests/unit/test_pbwire.o $(BUILD)/ui-cli/pbwire.o
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)
UNIT_TESTS += $(BUILD)/tests/unit/test_pbwire

# mktrace: writes exact traces from a text script for the e2e tests (tests/e2e/cli_*.sh).
$(BUILD)/ui-cli/test/mktrace: $(BUILD)/ui-cli/test/mktrace.o $(BUILD)/db/libkrdb.a
	$(CC) $(HOST_LDFLAGS) -o $@ $^ -lsqlite3 -lpthread

ALL_TARGETS += $(BUILD)/krewind $(BUILD)/tests/unit/test_cli $(BUILD)/tests/unit/test_pbwire $(BUILD)/ui-cli/test/mktrace
