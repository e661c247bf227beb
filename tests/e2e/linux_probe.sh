#!/usr/bin/env bash
# krewind probe linux on a fake vmlinux built here with gcc -g
# (tests/linux/fakevmlinux): the v6.2+ shape (struct pcpu_hot), members inside
# anonymous structs and unions, offsets checked against the compiler's own
# offsetof, only the entry points the ELF has, a name two static functions
# share left out, the probe loadable as the tracer will, bad input refused.
# No download: the stock Debian kernel is tests/e2e/linux_boot.sh's.
source "$(dirname "$0")/lib.sh"
K=$BUILD/krewind
[ -e "$K" ] || { skip "probe linux" "$K not built"; done_testing; }
src=tests/linux/fakevmlinux
vm=$TMP/vmlinux
gcc -g -O1 -nostdlib -static -no-pie -Wl,-e,_start -Wl,--build-id -o "$vm" "$src/fake.c" "$src/fake2.c" ||
	{ not_ok "build the fake vmlinux"; done_testing; }
# The offsets as the compiler laid them out: int offsets[4] in .data.
read -r comm pid cur pc < <(gdb -batch -ex 'p offsets' "$vm" 2>/dev/null | sed -n 's/.*{\(.*\)}.*/\1/p' | tr -d ,)
p=$TMP/p
$K probe linux "$vm" -o "$p"
check "probe linux: exit 0" [ $? -eq 0 ]
hex() { printf '0x%x' "$1"; }
check "current is pcpu_hot.current_task (gs:pcpu_hot+$(hex "$cur"))" grep -qx "thread *gs:pcpu_hot+$(hex "$cur")" "$p"
check "thread-name at task_struct.comm, inside no anonymous member ($(hex "$comm") 16)" grep -qx "thread-name *$(hex "$comm") 16" "$p"
check "thread-id at task_struct.pid, inside an anonymous struct ($(hex "$pid") 4)" grep -qx "thread-id *$(hex "$pid") 4" "$p"
check "preempt-count is pcpu_hot.preempt_count, with Linux's context bits" \
	grep -qx "preempt-count *gs:pcpu_hot+$(hex "$pc") 4 hardirq=0xf0000 softirq=0x100 bh=0xff00 nmi=0xf00000" "$p"
check "the banner names the build" grep -q "^# Probe for Linux version 6.9.0-krewind-fake, build-id [0-9a-f]*\.$" "$p"
check "irqsave acquire and irqrestore release" grep -qx "_raw_spin_lock_irqsave *lock-acquire lock=rdi irq=save" "$p" &&
	grep -qx "_raw_spin_unlock_irqrestore *lock-release lock=rdi irq=save restore=rsi" "$p"
check "read lock and mutex flavors" grep -qx "_raw_read_lock *lock-acquire lock=rdi flavor=read" "$p" &&
	grep -qx "mutex_lock *lock-acquire lock=rdi flavor=mutex" "$p"
n=$(grep -cE '^(_raw_spin_lock_bh|_raw_write_lock|mutex_trylock|down_read|schedule|complete) ' "$p")
check "nothing the ELF does not have ($n)" [ "$n" -eq 0 ]
check "a name two static functions share is not probed" grep -q "^# process_one_work: 2 static functions share the name" "$p" &&
	! grep -q "^process_one_work " "$p"
check "handle_softirqs is the softirq context, not also __do_softirq" grep -qx "handle_softirqs *context softirq" "$p" &&
	! grep -q "^__do_softirq " "$p"
check "the same ELF gives the same probe" cmp -s "$p" <($K probe linux "$vm")
$K probe linux --schema 1 "$vm" -o "$TMP/p1"
check "--schema 1: loads with today's parser and resolves" $K probe check "$TMP/p1" "$vm"
check "--schema 1: no schema-2 lines" bash -c "! grep -qE '^(thread-id|preempt-count)|flavor=|irq=|context|panic text' '$TMP/p1'"
check "--schema 1: panic as bugcheck, mutex as mutex-acquire" grep -qx "panic *bugcheck text=str:rdi" "$TMP/p1" &&
	grep -qx "mutex_lock *mutex-acquire mutex=rdi at=return" "$TMP/p1"
$K probe linux "$vm" --json | jq -e '.schema == 2 and (.probe | startswith("# Probe for"))' >/dev/null
check "--json" [ $? -eq 0 ]

# Bad input: one line, exit 2, and -o FILE left as it was.
echo keep >"$TMP/out"
objcopy --strip-debug "$vm" "$TMP/nodwarf"
$K probe linux "$TMP/nodwarf" -o "$TMP/out" 2>"$TMP/err"
check "an ELF without DWARF: exit 2, says so" [ $? -eq 2 ] && grep -q "no DWARF" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ]
check "  and -o FILE is untouched" [ "$(cat "$TMP/out")" = keep ]
objcopy --strip-all "$vm" "$TMP/stripped"
$K probe linux "$TMP/stripped" 2>"$TMP/err" >/dev/null
check "a stripped ELF: exit 2, asks for the unstripped vmlinux" [ $? -eq 2 ] && grep -q "unstripped" "$TMP/err"
$K probe linux "$KERNEL" 2>"$TMP/err" >/dev/null
check "a kernel that is not Linux: exit 2" [ $? -eq 2 ] && grep -q "not a Linux vmlinux" "$TMP/err"
echo 'not an elf' >"$TMP/junk"
$K probe linux "$TMP/junk" 2>"$TMP/err" >/dev/null
check "not an ELF: exit 2" [ $? -eq 2 ]
$K probe windows "$vm" 2>"$TMP/err" >/dev/null
check "an unknown kind: exit 2" [ $? -eq 2 ]
$K probe linux "$vm" --schema 3 2>"$TMP/err" >/dev/null
check "--schema 3: exit 2" [ $? -eq 2 ]
$K probe check "$TMP/p1" 2>"$TMP/err" >/dev/null
check "probe check without the ELF: exit 2" [ $? -eq 2 ]
done_testing
