-- The indicator catalogue's history and the sales rep breakdown.
-- Applied by sqlx::migrate!; never edit an applied migration.

-- Who sold the order (the user who entered it); NULL for orders recorded before this was kept
-- and for orders that reached the ledger without their lines.
ALTER TABLE orders ADD COLUMN sales_rep TEXT COLLATE "C";

-- One value per indicator per day, taken once (the first snapshot of a day stands), so that a
-- trend can be drawn without recomputing the past. A ratio with nothing to divide by is NULL.
CREATE TABLE kpi_snapshots (
    day TEXT COLLATE "C" NOT NULL,
    kpi TEXT COLLATE "C" NOT NULL,
    value TEXT,
    taken_at TEXT NOT NULL,
    PRIMARY KEY (kpi, day)
);
