-- Budgets per cost centre and calendar month (UTC), and the orders that draw on them. An order's
-- cost centre is its customer's (the sales unit that owns the customer); a customer without one,
-- or a month without a budget for it, is not budget-controlled.
-- Applied by sqlx::migrate!; never edit an applied migration. Versions are unique across the
-- engine's and the ledger's folders: on one database they share one migrations table.
ALTER TABLE customers ADD COLUMN cost_centre TEXT;

CREATE TABLE budgets (
    cost_centre TEXT NOT NULL,
    period TEXT NOT NULL,
    amount TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (cost_centre, period)
);

-- One row per order: reserved when the order passes the check (or when finance approves it over
-- the budget, then over_budget = 1), released when the order is rejected.
CREATE TABLE budget_reservations (
    order_id TEXT PRIMARY KEY,
    cost_centre TEXT NOT NULL,
    period TEXT NOT NULL,
    amount TEXT NOT NULL,
    over_budget INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'released')),
    reserved_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX budget_reservations_by_budget ON budget_reservations (cost_centre, period, state);
