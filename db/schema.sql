-- krewind trace schema, version 1 (db/db.h DB_SCHEMA_VERSION).
-- Embedded into libkrdb at build time (db/schema.c) and run in one transaction
-- when a trace is created. docs/schema.md documents every table and column.
-- Guest addresses are stored as SQLite integers, i.e. the 64-bit pattern read
-- as signed: 0xffffffff80012345 is -2147409083 (4 bytes on disk), and SQL hex
-- literals compare equal (WHERE pc = 0xffffffff80012345 works).

PRAGMA application_id = 1802663780; -- 0x6b727764 'krwd': marks a krewind trace
PRAGMA user_version = 1;

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

-- Guest threads (KTHREAD addresses), interned: event_rows.thread_id = threads.id.
CREATE TABLE threads (
	id INTEGER PRIMARY KEY,
	addr INTEGER NOT NULL UNIQUE,
	name TEXT
);

-- Locks and dispatcher objects, interned: event_rows.obj = locks.id for the
-- kinds with kinds.obj_is_lock. type: 'spinlock', 'mutex' or 'object';
-- init_site: pc of KeInitializeSpinLock's caller (DB_LOCK_INIT), or NULL;
-- class: filled when the writer closes (see db_lock_class).
CREATE TABLE locks (
	id INTEGER PRIMARY KEY,
	addr INTEGER NOT NULL UNIQUE,
	name TEXT,
	class TEXT,
	type TEXT NOT NULL,
	init_site INTEGER
);

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
-- obj_is_lock (0 = none), else the raw value.
CREATE TABLE event_rows (
	id INTEGER PRIMARY KEY,
	icount INTEGER,
	vcpu INTEGER,
	kind_id INTEGER,
	pc INTEGER,
	thread_id INTEGER,
	obj INTEGER,
	a INTEGER,
	b INTEGER
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

-- What `krewind sql` users query: kinds by name, guest addresses, names, text.
CREATE VIEW events AS
SELECT e.id AS id, e.icount AS icount, e.vcpu AS vcpu, k.name AS kind, e.pc AS pc,
	coalesce(t.addr, 0) AS thread,
	CASE WHEN k.obj_is_lock THEN coalesce(l.addr, 0) ELSE e.obj END AS obj,
	e.a AS a, e.b AS b,
	t.name AS thread_name, l.name AS lock_name, x.text AS text
FROM event_rows e
JOIN kinds k ON k.id = e.kind_id
LEFT JOIN threads t ON t.id = e.thread_id
LEFT JOIN locks l ON k.obj_is_lock AND l.id = e.obj
LEFT JOIN texts x ON x.event_id = e.id;

