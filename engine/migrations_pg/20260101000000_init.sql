-- Cloverleaf engine schema (PostgreSQL). Applied by sqlx::migrate!; never edit an applied migration.
--
-- Instants are stored as text in the store's fixed-width RFC 3339 form (`ts()`: microseconds,
-- `Z`), exactly as on SQLite, so that history rows hash the same text on both backends. Every
-- such column, and every id that is ordered on, uses the "C" collation: byte order is then time
-- order (and id order) whatever the database's default collation.

CREATE TABLE deployments (
    process_key TEXT NOT NULL,
    version BIGINT NOT NULL,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    compiled TEXT NOT NULL,
    deployed_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (process_key, version)
);
CREATE UNIQUE INDEX deployments_key_hash ON deployments (process_key, hash);

CREATE TABLE instances (
    id TEXT COLLATE "C" PRIMARY KEY,
    process_key TEXT NOT NULL,
    process_version BIGINT NOT NULL,
    status TEXT NOT NULL,
    business_key TEXT,
    parent_id TEXT,
    parent_call TEXT,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    history_seq BIGINT NOT NULL,
    history_hash TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX instances_business_key ON instances (business_key);
CREATE INDEX instances_status ON instances (process_key, status);

CREATE TABLE jobs (
    id TEXT COLLATE "C" PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    job_type TEXT COLLATE "C" NOT NULL,
    input TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    retries BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    lock_owner TEXT,
    lock_epoch BIGINT NOT NULL DEFAULT 0,
    lock_expires_at TEXT COLLATE "C",
    due_at TEXT COLLATE "C" NOT NULL
);
-- Only live jobs are indexed for fetch-and-lock: finished ones never slow it down.
CREATE INDEX jobs_ready ON jobs (job_type, due_at) WHERE state = 'ready';
CREATE INDEX jobs_leased ON jobs (job_type, lock_expires_at) WHERE state = 'locked';
CREATE INDEX jobs_instance ON jobs (instance_id);

-- `claimed_until`: a node that took the timer to fire it holds it until then, so other nodes
-- leave it alone; a node that dies mid-fire leaves a claim that simply runs out.
CREATE TABLE timers (
    id TEXT COLLATE "C" PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    due_at TEXT COLLATE "C" NOT NULL,
    claimed_until TEXT COLLATE "C"
);
CREATE INDEX timers_due ON timers (due_at);

CREATE TABLE tasks (
    id TEXT COLLATE "C" PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    title TEXT NOT NULL,
    roles TEXT NOT NULL,
    assignee TEXT,
    form TEXT NOT NULL,
    due_at TEXT COLLATE "C",
    state TEXT NOT NULL DEFAULT 'open',
    claimed_by TEXT,
    completed_by TEXT,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX tasks_instance ON tasks (instance_id);
CREATE INDEX tasks_state ON tasks (state);

-- `seq` keeps the order subscriptions were opened in (SQLite's rowid).
CREATE TABLE subscriptions (
    seq BIGSERIAL NOT NULL,
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
    seq BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    message_name TEXT NOT NULL,
    correlation_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    instance_id TEXT,
    received_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX messages_buffered ON messages (message_name, correlation_key, state);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node TEXT NOT NULL,
    job_id TEXT,
    message TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    raised_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX incidents_instance ON incidents (instance_id);

-- Events owed to an instance by another one (a child's end, a parent's cancel, a child's start),
-- written in the sender's transaction and consumed in the receiver's. `seq`: oldest first.
CREATE TABLE pending_events (
    seq BIGSERIAL NOT NULL,
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX pending_events_seq ON pending_events (seq);

-- The event log: every accepted event, in order, for replay.
CREATE TABLE events (
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

-- Append-only, tamper-evident audit trail: hash = sha256(prev_hash || canonical row JSON).
CREATE TABLE history (
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    node TEXT,
    who TEXT,
    on_behalf_of TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

-- Out-of-office: while `from_at <= now < until_at`, `substitute` acts for `user_name`.
-- One substitute per user at a time; substitutes do not chain.
CREATE TABLE substitutes (
    user_name TEXT COLLATE "C" PRIMARY KEY,
    substitute TEXT NOT NULL,
    from_at TEXT COLLATE "C" NOT NULL,
    until_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX substitutes_by_substitute ON substitutes (substitute);

-- Cron starts: the next fire of each scheduled start of each process's latest version. Shared by
-- every engine node; an instance started by a fire has an id derived from the fire, so two nodes
-- firing the same schedule start one instance.
CREATE TABLE schedules (
    process_key TEXT NOT NULL,
    node TEXT NOT NULL,
    schedule TEXT NOT NULL,
    next_fire_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (process_key, node)
);
CREATE INDEX schedules_due ON schedules (next_fire_at);
