-- The reference finance sub-ledger (SQLite), beside the engine's tables in the same file.
-- Applied by the worker's sqlx::migrate!; never edit an applied migration.
-- Money is TEXT holding an exact decimal ("1234.50"); sums are taken in code, never in SQL,
-- because SQLite's SUM would read the text as a float.

CREATE TABLE ledger_settings (
    key TEXT PRIMARY KEY,
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
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    country TEXT NOT NULL,
    credit_limit TEXT NOT NULL,
    risk_rating TEXT NOT NULL CHECK (risk_rating IN ('A', 'B', 'C', 'D')),
    blocked INTEGER NOT NULL DEFAULT 0,
    payment_terms_days INTEGER NOT NULL CHECK (payment_terms_days >= 0),
    tax_rate TEXT NOT NULL
);

CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    unit_cost TEXT NOT NULL
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    order_date TEXT NOT NULL
);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no INTEGER NOT NULL,
    sku TEXT,
    description TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Gapless numbering: the next number is taken in the same transaction as the invoice it names,
-- so a rolled-back invoice gives its number back.
CREATE TABLE number_sequences (
    name TEXT PRIMARY KEY,
    next_value INTEGER NOT NULL
);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    order_id TEXT UNIQUE,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    issue_date TEXT NOT NULL,
    due_date TEXT NOT NULL,
    net TEXT NOT NULL,
    tax TEXT NOT NULL,
    total TEXT NOT NULL,
    amount_open TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'paid', 'written_off')),
    dunning_level INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX invoices_customer ON invoices (customer_id, status);

CREATE TABLE invoice_lines (
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    line_no INTEGER NOT NULL,
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
    id TEXT PRIMARY KEY,
    customer_id TEXT,
    received_on TEXT NOT NULL,
    amount TEXT NOT NULL,
    reference TEXT NOT NULL,
    applied TEXT NOT NULL DEFAULT '0',
    refunded TEXT NOT NULL DEFAULT '0',
    returned TEXT NOT NULL DEFAULT '0',
    -- The first match decided without a person: exact (within tolerance) or partial.
    matched_automatically INTEGER,
    status TEXT NOT NULL CHECK (status IN ('unapplied', 'partly_applied', 'applied', 'returned'))
);

CREATE TABLE payment_allocations (
    payment_id TEXT NOT NULL REFERENCES payments (id),
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    amount TEXT NOT NULL,
    allocated_on TEXT NOT NULL,
    idempotency_key TEXT NOT NULL
);
CREATE INDEX payment_allocations_invoice ON payment_allocations (invoice_id);

CREATE TABLE accounts (
    code TEXT PRIMARY KEY,
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
    period TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at TEXT
);

CREATE TABLE journal_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_date TEXT NOT NULL,
    period TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    -- The business document it books (an invoice, order or payment id).
    document TEXT,
    posted_at TEXT NOT NULL
);
CREATE INDEX journal_entries_date ON journal_entries (entry_date);
CREATE INDEX journal_entries_document ON journal_entries (kind, document);

CREATE TABLE journal_lines (
    entry_id INTEGER NOT NULL REFERENCES journal_entries (id),
    line_no INTEGER NOT NULL,
    account TEXT NOT NULL REFERENCES accounts (code),
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    customer_id TEXT,
    invoice_id TEXT,
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX journal_lines_account ON journal_lines (account);
CREATE INDEX journal_lines_invoice ON journal_lines (invoice_id);

-- Customer notifications and dunning letters, sent by a mailer that reads this table.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    recipient TEXT,
    invoice_id TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
);

CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    as_of TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One row per job that changed the ledger: a second run with the same key returns this output.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    job_type TEXT NOT NULL,
    output TEXT NOT NULL,
    created_at TEXT NOT NULL
);
