# kernel: the NT-style kernel under test, freestanding, never linked with host
# code. Always built into the top build/ (whatever SAN/TSAN say), with its own
# object pattern under build/kernel/obj/ so the host %.o rule never sees it.

KERNEL_ELF := $(TOP_BUILD)/kernel/kernel.elf
KERNEL_C := $(sort $(wildcard kernel/*.c))
KERNEL_S := $(sort $(wildcard kernel/*.S))
KERNEL_OBJS := $(patsubst kernel/%.c,$(TOP_BUILD)/kernel/obj/%.o,$(KERNEL_C)) \
	$(patsubst kernel/%.S,$(TOP_BUILD)/kernel/obj/%.S.o,$(KERNEL_S))
KERNEL_CC := gcc
KERNEL_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
	-ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-omit-frame-pointer \
	-mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-strict-aliasing -MMD -MP -Ikernel
KERNEL_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
	-Wl,-T,kernel/kernel.ld

ALL_TARGETS += $(KERNEL_ELF)
kernel: $(KERNEL_ELF)

$(KERNEL_ELF): $(KERNEL_OBJS) kernel/kernel.ld
	@mkdir -p $(@D)
	$(KERNEL_CC) $(KERNEL_LDFLAGS) -o $@ $(KERNEL_OBJS)

$(patsubst kernel/%.c,$(TOP_BUILD)/kernel/obj/%.o,$(KERNEL_C)): $(TOP_BUILD)/kernel/obj/%.o: kernel/%.c
	@mkdir -p $(@D)
	$(KERNEL_CC) $(KERNEL_CFLAGS) -c $< -o $@

$(patsubst kernel/%.S,$(TOP_BUILD)/kernel/obj/%.S.o,$(KERNEL_S)): $(TOP_BUILD)/kernel/obj/%.S.o: kernel/%.S
	@mkdir -p $(@D)
	$(KERNEL_CC) $(KERNEL_CFLAGS) -c $< -o $@

-include $(wildcard $(TOP_BUILD)/kernel/obj/*.d)
