-- Stock booked: what the warehouse holds of each stocked product, at its moving average cost, so
-- that the cost of goods sold is relieved from what was booked into Inventory (1300). Goods come
-- in as opening stock (against opening balance equity) or on goods receipts (against accounts
-- payable, 2000). A product that is not stocked (a service hour), or an order line without a
-- product, is bought in for the order: its cost is owed to a supplier, not taken from stock.
-- Applied by sqlx::migrate!; never edit an applied migration.
INSERT INTO accounts (code, name, kind) VALUES ('2000', 'Accounts payable', 'liability');

ALTER TABLE products ADD COLUMN stocked BIGINT NOT NULL DEFAULT 1;

-- Quantity on hand and its value (exact decimal text); the Inventory account's balance is the
-- sum of the values.
CREATE TABLE stock (
    sku TEXT COLLATE "C" PRIMARY KEY REFERENCES products (sku),
    on_hand TEXT NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE goods_receipts (
    id TEXT COLLATE "C" PRIMARY KEY,
    supplier TEXT NOT NULL,
    received_on TEXT NOT NULL,
    total TEXT NOT NULL,
    posted_at TEXT NOT NULL
);

CREATE TABLE goods_receipt_lines (
    receipt_id TEXT COLLATE "C" NOT NULL REFERENCES goods_receipts (id),
    line_no BIGINT NOT NULL,
    sku TEXT COLLATE "C" NOT NULL REFERENCES products (sku),
    quantity TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    PRIMARY KEY (receipt_id, line_no)
);
