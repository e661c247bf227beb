-- krewind trace schema, version 2 (db/db.h DB_SCHEMA_VERSION).
-- Embedded into libkrdb at build time (db/schema.c) and run in one transaction
-- when a trace is created. docs/schema.md documents every table and column.
-- Guest addresses are stored as SQLite integers, i.e. the 64-bit pattern read
-- as signed: 0xffffffff80012345 is -2147409083 (4 bytes on disk), and SQL hex
-- literals compare equal (WHERE pc = 0xffffffff80012345 works).

PRAGMA application_id = 1802663780; -- 0x6b727764 'krwd': marks a krewind trace
PRAGMA user_version = 2;

-- Event kinds (enum db_kind). obj_is_lock: events.obj is a guest object
-- address, interned into locks.id in event_rows.obj. events: how many events
-- of the kind the trace holds (kept up to date with every commit).
CREATE TABLE kinds (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	obj_is_lock INTEGER NOT NULL,
	events INTEGER NOT NULL DEFAULT 0
);
INSERT INTO kinds (id, name, obj_is_lock) VALUES
	(1, 'trap', 0), (2, 'iret', 0), (3, 'irql', 0),
	(4, 'lock_try', 1), (5, 'lock_acq', 1), (6, 'lock_rel', 1),
	(7, 'wait', 1), (8, 'wait_end', 1), (9, 'mutex_acq', 1), (10, 'mutex_rel', 1),
	(11, 'signal', 1), (12, 'switch', 0), (13, 'eoi', 0), (14, 'marker', 0),
	(15, 'bugcheck', 0), (16, 'lock_init', 1), (17, 'lock_fail', 1),
	(18, 'defer_queue', 0), (19, 'defer_run', 0), (20, 'sleep', 0), (21, 'syscall', 0);

-- Guest threads, interned: event_rows.thread_id = threads.id. A thread is its
-- object address (KTHREAD, task_struct) and, where the probe declares
-- `thread-id`, the kernel's thread id: a new tid at a known address (a reused
-- task_struct) is a new row, named like the old one until the tracer renames
-- it. tid NULL: not known. name: the newest name (renamed when it changes).
CREATE TABLE threads (
	id INTEGER PRIMARY KEY,
	addr INTEGER NOT NULL,
	tid INTEGER,
	name TEXT
);

-- Lock instances and dispatcher objects, interned: event_rows.obj = locks.id
-- for the kinds with kinds.obj_is_lock. An address is instance 0 when first
-- seen; every later lock_init of it starts instance 1, 2, ... (freed memory
-- reused for a new lock). type: 'spinlock', 'rwlock', 'mutex', 'rwsem',
-- 'semaphore' (from the lock ops' flavor) or 'object'; name: the ELF object
-- symbol (+offset) holding it; init_site: the call site of its lock_init, or
-- NULL; caller: the call site of its first lock event, or NULL (what a class
-- can be derived from when no init was seen); class: filled when the writer
-- closes (see db_lock_class).
CREATE TABLE locks (
	id INTEGER PRIMARY KEY,
	addr INTEGER NOT NULL,
	instance INTEGER NOT NULL,
	name TEXT,
	class TEXT,
	type TEXT NOT NULL,
	init_site INTEGER,
	caller INTEGER
);
-- The readers look locks up by address (newest instance first): without this
-- index every lookup scanned the table, and a Linux boot has ~35,000 locks.
CREATE INDEX locks_by_addr ON locks (addr, id);

-- Guest symbols (from the kernel ELF), for symbolizing addresses.
CREATE TABLE symbols (
	addr INTEGER NOT NULL,
	size INTEGER NOT NULL,
	name TEXT NOT NULL
);

-- Run metadata: qemu_version, cmdline, kernel_path, started_at, outcome,
-- events_total, dropped, schema_version, ...
CREATE TABLE meta (
	key TEXT PRIMARY KEY,
	value TEXT
) WITHOUT ROWID;

-- The events, compact. id order is the order the writer received them (per
-- vCPU, icount order). thread_id 0 = unknown. obj: locks.id when the kind's
-- obj_is_lock (0 = none), else the raw value. state packs the small fields:
-- ctx (enum db_ctx) | flags (enum db_flag) << 2 | lockop (DB_LOCKOP) << 8, one
-- byte for most events. preempt: the preemption count, NULL if not known;
-- caller: the call site of a lock/wait/sleep event, NULL if none.
CREATE TABLE event_rows (
	id INTEGER PRIMARY KEY,
	icount INTEGER,
	vcpu INTEGER,
	kind_id INTEGER,
	pc INTEGER,
	thread_id INTEGER,
	obj INTEGER,
	a INTEGER,
	b INTEGER,
	state INTEGER,
	preempt INTEGER,
	caller INTEGER
);

-- The index of event_rows: a block-range summary (like a BRIN index) kept
-- up to date with every commit. Block b holds ids b*256+1 .. b*256+256; one
-- row per vCPU with events in the block: the vCPU's first and last icount
-- there; kinds, bit (1 << kind_id) for each kind it has there; threads and
-- locks, bit (id % 64) for each threads.id and locks.id (lock kinds) there.
-- Since ids follow icount per vCPU, this finds an icount, a rare kind, a
-- thread or a lock without a per-row B-tree index, which would cost 2 to 4
-- times the insert time (see docs/schema.md).
CREATE TABLE event_blocks (
	block INTEGER NOT NULL,
	vcpu INTEGER NOT NULL,
	first_icount INTEGER NOT NULL,
	last_icount INTEGER NOT NULL,
	kinds INTEGER NOT NULL,
	threads INTEGER NOT NULL,
	locks INTEGER NOT NULL,
	PRIMARY KEY (block, vcpu)
) WITHOUT ROWID;

-- Text payload of markers and serial lines.
CREATE TABLE texts (
	event_id INTEGER PRIMARY KEY,
	text TEXT NOT NULL
);

-- Names of the packed event fields, for the events view.
CREATE TABLE ctx_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO ctx_names VALUES (0, 'process'), (1, 'hardirq'), (2, 'softirq'), (3, 'nmi');
CREATE TABLE flavor_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO flavor_names VALUES (0, 'spin'), (1, 'read'), (2, 'write'), (3, 'mutex'),
	(4, 'rwsem-read'), (5, 'rwsem-write'), (6, 'sem');
CREATE TABLE lockirq_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO lockirq_names VALUES (0, 'none'), (1, 'save'), (2, 'irq'), (3, 'bh'),
	(4, 'raise-dispatch'), (5, 'at-dispatch');

-- What `krewind sql` users query: kinds by name, guest addresses, names, text,
-- and the packed fields unpacked (if_on: RFLAGS.IF; flavor, irq, subclass:
-- the lock op, NULL for other kinds; tid: the thread's kernel id).
CREATE VIEW events AS
SELECT e.id AS id, e.icount AS icount, e.vcpu AS vcpu, k.name AS kind, e.pc AS pc,
	coalesce(t.addr, 0) AS thread,
	CASE WHEN k.obj_is_lock THEN coalesce(l.addr, 0) ELSE e.obj END AS obj,
	e.a AS a, e.b AS b,
	t.name AS thread_name, l.name AS lock_name, x.text AS text,
	(SELECT name FROM ctx_names WHERE id = e.state & 3) AS ctx,
	(e.state >> 2) & 63 AS flags,
	(e.state >> 2) & 1 AS if_on,
	CASE WHEN k.obj_is_lock AND k.id NOT IN (7, 8, 11)
		THEN (SELECT name FROM flavor_names WHERE id = (e.state >> 8) & 15) END AS flavor,
	CASE WHEN k.obj_is_lock AND k.id NOT IN (7, 8, 11)
		THEN (SELECT name FROM lockirq_names WHERE id = (e.state >> 12) & 15) END AS irq,
	CASE WHEN k.obj_is_lock AND k.id NOT IN (7, 8, 11) THEN (e.state >> 16) & 255 END AS subclass,
	e.preempt AS preempt, t.tid AS tid, e.caller AS caller,
	l.instance AS lock_instance
FROM event_rows e
JOIN kinds k ON k.id = e.kind_id
LEFT JOIN threads t ON t.id = e.thread_id
LEFT JOIN locks l ON k.obj_is_lock AND l.id = e.obj
LEFT JOIN texts x ON x.event_id = e.id;

