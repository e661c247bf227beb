#!/usr/bin/env bash
# Schema 2 end to end without QEMU: a trace written by ui-cli/test/mktrace with
# every new field, read back by `krewind events` (text and --json) and
# `krewind sql` (the events view); threads by (address, tid) renamed; lock
# instances; a schema 1 trace refused by the CLI with one line and exit 2.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "schema 2" "$KREWIND or $MKTRACE not built"
	done_testing
fi
T=0xffffffff80011000 L=0xffffffff80005010  # inside dentry_pool: its class is its init site
U=0xffffffff80012000                        # a task struct reused: kworker (tid 50), then cat (51)
db=$TMP/t.db
"$MKTRACE" "$db" <<SCRIPT
sym 0xffffffff80001000 0x80 _raw_spin_lock_irqsave
sym 0xffffffff80002000 0x100 d_splice_alias
sym 0xffffffff80003000 0x100 pool_init
sym 0xffffffff80005000 0x40 dentry_pool
thread $T tid=41 sh
lock_init icount=1 thread=$T obj=$L a=0xffffffff80003010 caller=0xffffffff80003010 tid=41 if=1
lock_try icount=2 thread=$T obj=$L ctx=hardirq if=0 irq=save subclass=2 preempt=65537 tid=41 caller=0xffffffff8000208c pc=0xffffffff80001000
lock_acq icount=3 thread=$T obj=$L ctx=hardirq if=0 irq=save subclass=2 preempt=65537 tid=41 caller=0xffffffff8000208c pc=0xffffffff80001020
lock_rel icount=4 thread=$T obj=$L ctx=hardirq irq=save b=0x246 tid=41 caller=0xffffffff80002090
lock_try icount=5 thread=$T obj=$L flags=16 flavor=read tid=41 caller=0xffffffff800020a0
lock_fail icount=6 thread=$T obj=$L flags=16 flavor=read tid=41 caller=0xffffffff800020a0
thread $T tid=42 ls
lock_init icount=7 thread=$T obj=$L a=0xffffffff80003020 caller=0xffffffff80003020 tid=42
trap icount=8 thread=$T a=14 if=1 flags=3 tid=42
iret icount=9 thread=$T a=-1 flags=8 tid=42
thread $U tid=50 kworker
switch icount=10 thread=$T a=$T b=$U tid=42
marker icount=11 thread=$U tid=50 text=kworker runs
switch icount=12 thread=$U a=$U b=$T tid=50
thread $U tid=51 cat
switch icount=13 thread=$T a=$T b=$U tid=42
marker icount=14 thread=$U tid=51 text=cat runs
SCRIPT
check "mktrace writes every schema 2 field" [ $? -eq 0 ]

"$KREWIND" events "$db" >"$TMP/ev" 2>&1
check "events: hardirq, IF off, irqsave, subclass, preempt, call site" \
	grep -Eq ' sh +lock_acq .*acquire [^ ]+ \(spun 0\) \[hardirq, IF off, irqsave, subclass 2, preempt 65537, from d_splice_alias\+0x8c\]$' "$TMP/ev"
check "events: a failed read trylock" grep -Eq 'trylock failed [^ ]+ \[process, IF off, read, try, from d_splice_alias\+0xa0\]$' "$TMP/ev"
check "events: the thread column names the thread at each event's tid" grep -Eq ' ls +trap ' "$TMP/ev"
check "events: a user-mode trap and an iret to self" \
	sh -c "grep -q 'trap 0x0e #PF \[process, IF on, from user\]$' '$TMP/ev' && grep -q 'iret to self \[process, IF off, no frame\]$' '$TMP/ev'"
"$KREWIND" events "$db" --json >"$TMP/ev.json" 2>&1
check "events --json: the fields, the tid and the thread's name at that tid" \
	jq -e '.[2] | .ctx == "hardirq" and .if == false and .flavor == "spin" and .irq == "save" and .subclass == 2
		and .preempt == 65537 and .tid == 41 and .thread_name == "sh" and .caller == "0xffffffff8000208c"
		and .caller_symbol == "d_splice_alias+0x8c"' "$TMP/ev.json"
check "events --json: the same address later is another thread" jq -e '.[7].tid == 42 and .[7].thread_name == "ls"' "$TMP/ev.json"
check "events: a switch names each thread as it was then (a reused task struct)" \
	sh -c "grep -q 'switch ls -> kworker$' '$TMP/ev' && grep -q 'switch kworker -> ls$' '$TMP/ev' && grep -q 'switch ls -> cat$' '$TMP/ev'"
check "events: no IRQL on a kernel that keeps none (no irql event)" sh -c "! grep -q 'irql' '$TMP/ev'"
"$KREWIND" events "$db" --thread kworker >"$TMP/kw" 2>&1
check "events --thread NAME: that thread only, not the others at its address" \
	sh -c "grep -q 'kworker runs' '$TMP/kw' && ! grep -q 'cat runs' '$TMP/kw'"
out=$("$KREWIND" sql "$db" "SELECT kind || ':' || ctx || ':' || if_on || ':' || coalesce(flavor, '-') || ':' || coalesce(irq, '-')
	|| ':' || coalesce(lock_instance, '-') || ':' || coalesce(tid, '-') FROM events WHERE id IN (2, 5, 7, 8) ORDER BY id" 2>&1 | tr -s ' \n' ' ')
check "sql: the events view unpacks them ($out)" \
	sh -c "echo '$out' | grep -q 'lock_try:hardirq:0:spin:save:0:41 .*lock_try:process:0:read:none:0:41 .*lock_init:process:0:spin:none:1:42 .*trap:process:1:-:-:-:42'"
out=$("$KREWIND" sql "$db" "SELECT count(*) || '/' || count(DISTINCT addr) FROM threads WHERE addr = $((T))" 2>&1 | tr -d ' \n')
check "two threads (tid 41, 42) at one address ($out)" sh -c "echo '$out' | grep -q '2/1'"
out=$("$KREWIND" sql "$db" "SELECT group_concat(instance || '=' || class, ',') FROM locks" 2>&1 | tr -d ' \n')
check "a re-initialised lock is a new instance with its own class ($out)" \
	sh -c "echo '$out' | grep -q '0=alloc@pool_init+0x10,1=alloc@pool_init+0x20'"

# Notes only (a lock still held when the trace ended): exit 0, the note shown.
"$MKTRACE" "$TMP/note.db" <<SCRIPT
meta outcome exit
thread $T tid=42 ls
lock_try icount=1 thread=$T obj=$L tid=42 if=1
lock_acq icount=2 thread=$T obj=$L tid=42 if=1
marker icount=3 thread=$T tid=42 text=end
SCRIPT
"$KREWIND" check "$TMP/note.db" >"$TMP/note" 2>&1
rc=$?
check "check: only notes is exit 0, the note printed ($rc)" \
	sh -c "[ $rc -eq 0 ] && grep -q 'lock-held-at-exit' '$TMP/note' && grep -q '1 note' '$TMP/note'"

# A schema 1 trace: one line, exit 2, before any work.
cp "$db" "$TMP/old.db"
sqlite3 "$TMP/old.db" 'PRAGMA user_version = 1'
"$KREWIND" events "$TMP/old.db" >"$TMP/out" 2>"$TMP/err"
rc=$?
check "a schema 1 trace: exit 2 ($rc)" [ "$rc" -eq 2 ]
check "...with one line that says to record it again" \
	sh -c "[ \$(wc -l <'$TMP/err') -eq 1 ] && grep -q '^krewind: error: .*schema version 1 .*record it again' '$TMP/err' && [ ! -s '$TMP/out' ]"
"$KREWIND" check "$TMP/old.db" >/dev/null 2>"$TMP/err"
check "check refuses it the same way" sh -c "[ $? -eq 2 ] && grep -q 'schema version 1' '$TMP/err'"

done_testing
