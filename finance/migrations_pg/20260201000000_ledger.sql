-- The reference finance sub-ledger (PostgreSQL), beside the engine's tables in the same database.
-- Applied by the worker's sqlx::migrate!; never edit an applied migration. The tables match
-- `worker/migrations/` column for column, so one set of SQL serves both backends:
-- - money is TEXT holding an exact decimal ("1234.50") and is summed in code, as on SQLite;
-- - integers are BIGINT, so that they read back as i64 through sqlx's Any driver;
-- - ids, dates and periods use the "C" collation: they compare and sort byte by byte, as on SQLite,
--   whatever the database's default collation.
-- Version 2026-02: the engine's PostgreSQL migrations are 2026-01, and both record themselves in
-- the one `_sqlx_migrations` table.

CREATE TABLE ledger_settings (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
-- Used when an order reaches invoicing without recorded lines: cost of goods at this share of
-- the net amount, and the customer's tax rate unless it has its own.
INSERT INTO ledger_settings (key, value) VALUES
    ('standard_cost_rate', '0.62'),
    ('default_tax_rate', '0.20'),
    ('currency', 'EUR'),
    ('max_payment_difference', '0.05');

CREATE TABLE customers (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    country TEXT NOT NULL,
    credit_limit TEXT NOT NULL,
    risk_rating TEXT NOT NULL CHECK (risk_rating IN ('A', 'B', 'C', 'D')),
    blocked BIGINT NOT NULL DEFAULT 0,
    payment_terms_days BIGINT NOT NULL CHECK (payment_terms_days >= 0),
    tax_rate TEXT NOT NULL
);

CREATE TABLE products (
    sku TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    unit_cost TEXT NOT NULL
);

CREATE TABLE orders (
    id TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    order_date TEXT COLLATE "C" NOT NULL
);

CREATE TABLE order_lines (
    order_id TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    sku TEXT COLLATE "C",
    description TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Gapless numbering: the next number is taken in the same transaction as the invoice it names,
-- so a rolled-back invoice gives its number back.
CREATE TABLE number_sequences (
    name TEXT COLLATE "C" PRIMARY KEY,
    next_value BIGINT NOT NULL
);

CREATE TABLE invoices (
    id TEXT COLLATE "C" PRIMARY KEY,
    number TEXT COLLATE "C" NOT NULL UNIQUE,
    order_id TEXT COLLATE "C" UNIQUE,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    issue_date TEXT COLLATE "C" NOT NULL,
    due_date TEXT COLLATE "C" NOT NULL,
    net TEXT NOT NULL,
    tax TEXT NOT NULL,
    total TEXT NOT NULL,
    amount_open TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'paid', 'written_off')),
    dunning_level BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX invoices_customer ON invoices (customer_id, status);

CREATE TABLE invoice_lines (
    invoice_id TEXT COLLATE "C" NOT NULL REFERENCES invoices (id),
    line_no BIGINT NOT NULL,
    description TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    net TEXT NOT NULL,
    tax_rate TEXT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

-- A customer payment as the bank reported it. What is not applied to invoices, refunded or
-- returned sits on the unapplied-cash account.
CREATE TABLE payments (
    id TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT COLLATE "C",
    received_on TEXT COLLATE "C" NOT NULL,
    amount TEXT NOT NULL,
    reference TEXT NOT NULL,
    applied TEXT NOT NULL DEFAULT '0',
    refunded TEXT NOT NULL DEFAULT '0',
    returned TEXT NOT NULL DEFAULT '0',
    -- The first match decided without a person (1): exact (within tolerance) or partial.
    matched_automatically BIGINT,
    status TEXT NOT NULL CHECK (status IN ('unapplied', 'partly_applied', 'applied', 'returned'))
);

CREATE TABLE payment_allocations (
    payment_id TEXT COLLATE "C" NOT NULL REFERENCES payments (id),
    invoice_id TEXT COLLATE "C" NOT NULL REFERENCES invoices (id),
    amount TEXT NOT NULL,
    allocated_on TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT NOT NULL
);
CREATE INDEX payment_allocations_invoice ON payment_allocations (invoice_id);

CREATE TABLE accounts (
    code TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('asset', 'liability', 'equity', 'revenue', 'expense'))
);
INSERT INTO accounts (code, name, kind) VALUES
    ('1000', 'Bank', 'asset'),
    ('1200', 'Accounts receivable', 'asset'),
    ('1300', 'Inventory', 'asset'),
    ('2200', 'VAT payable', 'liability'),
    ('2300', 'Unapplied customer cash', 'liability'),
    ('3000', 'Opening balance equity', 'equity'),
    ('4000', 'Revenue', 'revenue'),
    ('5000', 'Cost of goods sold', 'expense'),
    ('6800', 'Bad debt expense', 'expense'),
    ('6900', 'Payment differences', 'expense');

CREATE TABLE periods (
    period TEXT COLLATE "C" PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at TEXT COLLATE "C"
);

CREATE TABLE journal_entries (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    entry_date TEXT COLLATE "C" NOT NULL,
    period TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL,
    -- The business document it books (an invoice, order or payment id).
    document TEXT COLLATE "C",
    posted_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX journal_entries_date ON journal_entries (entry_date);
CREATE INDEX journal_entries_document ON journal_entries (kind, document);

CREATE TABLE journal_lines (
    entry_id BIGINT NOT NULL REFERENCES journal_entries (id),
    line_no BIGINT NOT NULL,
    account TEXT COLLATE "C" NOT NULL REFERENCES accounts (code),
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    customer_id TEXT COLLATE "C",
    invoice_id TEXT COLLATE "C",
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX journal_lines_account ON journal_lines (account);
CREATE INDEX journal_lines_invoice ON journal_lines (invoice_id);

-- Customer notifications and dunning letters, sent by a mailer that reads this table.
CREATE TABLE outbox (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    customer_id TEXT COLLATE "C" NOT NULL,
    recipient TEXT,
    invoice_id TEXT COLLATE "C",
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    sent_at TEXT COLLATE "C"
);

CREATE TABLE reports (
    id TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT NOT NULL,
    as_of TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);

-- One row per job that changed the ledger: a second run with the same key returns this output.
CREATE TABLE idempotency_keys (
    key TEXT COLLATE "C" PRIMARY KEY,
    job_type TEXT NOT NULL,
    output TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
