-- krewind trace schema, version 1 (db/db.h DB_SCHEMA_VERSION).
-- Embedded into libkrdb at build time (db/schema.c) and run in one transaction
-- when a trace is created. docs/schema.md documents every table and column.
-- Guest addresses are stored as SQLite integers, i.e. the 64-bit pattern read
-- as signed: 0xffffffff80012345 is -2147409083 (4 bytes on disk), and SQL hex
-- literals compare equal (WHERE pc = 0xffffffff80012345 works).

PRAGMA application_id = 1802663780; -- 0x6b727764 'krwd': marks a krewind trace
PRAGMA user_version = 1;

-- Event kinds (enum db_kind). obj_is_lock: events.obj is a guest object
-- address, interned into locks.id in event_rows.obj.
CREATE TABLE kinds (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	obj_is_lock INTEGER NOT NULL
);
INSERT INTO kinds VALUES
	(1, 'trap', 0), (2, 'iret', 0), (3, 'irql', 0),
	(4, 'lock_try', 1), (5, 'lock_acq', 1), (6, 'lock_rel', 1),
	(7, 'wait', 1), (8, 'wait_end', 1), (9, 'mutex_acq', 1), (10, 'mutex_rel', 1),
	(11, 'signal', 1), (12, 'switch', 0), (13, 'eoi', 0), (14, 'marker', 0),
	(15, 'bugcheck', 0), (16, 'lock_init', 1);

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

-- @indexes
-- Built by db_writer_close (and by db_update_meta on a trace whose writer was
-- killed), not while recording: keeping them up to date per row would cost
-- three times the insert time, and an index built in one sorted pass has full
-- pages, so it is also smaller. Readers work without them, only slower.
CREATE INDEX IF NOT EXISTS event_rows_icount ON event_rows (vcpu, icount);
CREATE INDEX IF NOT EXISTS event_rows_kind ON event_rows (kind_id);
