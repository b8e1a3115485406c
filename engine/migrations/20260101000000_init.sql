-- Cloverleaf engine schema (SQLite). Applied by sqlx::migrate!; never edit an applied migration.

CREATE TABLE deployments (
    process_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    compiled TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    PRIMARY KEY (process_key, version)
);
CREATE UNIQUE INDEX deployments_key_hash ON deployments (process_key, hash);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    process_key TEXT NOT NULL,
    process_version INTEGER NOT NULL,
    status TEXT NOT NULL,
    business_key TEXT,
    parent_id TEXT,
    parent_call TEXT,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    history_seq INTEGER NOT NULL,
    history_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX instances_business_key ON instances (business_key);
CREATE INDEX instances_status ON instances (process_key, status);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    job_type TEXT NOT NULL,
    input TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    retries INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    lock_owner TEXT,
    lock_epoch INTEGER NOT NULL DEFAULT 0,
    lock_expires_at TEXT,
    due_at TEXT NOT NULL
);
-- Only live jobs are indexed for fetch-and-lock: finished ones never slow it down.
CREATE INDEX jobs_ready ON jobs (job_type, due_at) WHERE state = 'ready';
CREATE INDEX jobs_leased ON jobs (job_type, lock_expires_at) WHERE state = 'locked';
CREATE INDEX jobs_instance ON jobs (instance_id);

CREATE TABLE timers (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    due_at TEXT NOT NULL
);
CREATE INDEX timers_due ON timers (due_at);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    title TEXT NOT NULL,
    roles TEXT NOT NULL,
    assignee TEXT,
    form TEXT NOT NULL,
    due_at TEXT,
    state TEXT NOT NULL DEFAULT 'open',
    claimed_by TEXT,
    completed_by TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX tasks_instance ON tasks (instance_id);
CREATE INDEX tasks_state ON tasks (state);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    message_name TEXT NOT NULL,
    correlation_key TEXT NOT NULL
);
CREATE INDEX subscriptions_match ON subscriptions (message_name, correlation_key);

-- Every message received: buffered until a subscription appears, or delivered. The message id
-- makes delivery idempotent.
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    message_name TEXT NOT NULL,
    correlation_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    instance_id TEXT,
    received_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX messages_buffered ON messages (message_name, correlation_key, state);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    job_id TEXT,
    message TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    raised_at TEXT NOT NULL
);
CREATE INDEX incidents_instance ON incidents (instance_id);

-- Events owed to an instance by another one (a child's end, a parent's cancel, a child's start),
-- written in the sender's transaction and consumed in the receiver's.
CREATE TABLE pending_events (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    event TEXT NOT NULL
);

-- The event log: every accepted event, in order, for replay.
CREATE TABLE events (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

-- Append-only, tamper-evident audit trail: hash = sha256(prev_hash || canonical row JSON).
CREATE TABLE history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    node TEXT,
    who TEXT,
    on_behalf_of TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
