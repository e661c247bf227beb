# replay: QMP client, QEMU process control, recordings, replay, gdb, bisection.
REPLAY_SRCS := replay/disk.c replay/json.c replay/qemu.c replay/qmp.c replay/recording.c replay/sha256.c replay/record.c replay/paths.c replay/session.c replay/snapshot.c replay/state.c replay/util.c
REPLAY_SRCS += replay/smp.c
REPLAY_OBJS := $(REPLAY_SRCS:%.c=$(BUILD)/%.o)
REPLAY_LIB := $(BUILD)/replay/libkrreplay.a

$(REPLAY_LIB): $(REPLAY_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

ALL_TARGETS += $(REPLAY_LIB)

$(BUILD)/tests/unit/test_replay: $(BUILD)/tests/unit/test_replay.o $(REPLAY_LIB) $(BUILD)/db/libkrdb.a
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lsqlite3 -lpthread -lm
UNIT_TESTS += $(BUILD)/tests/unit/test_replay
ALL_TARGETS += $(BUILD)/tests/unit/test_replay
