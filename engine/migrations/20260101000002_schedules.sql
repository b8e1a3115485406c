-- Cron starts: the next fire of each scheduled start of each process's latest version. Shared by
-- every engine node; an instance started by a fire has an id derived from the fire, so two nodes
-- firing the same schedule start one instance.
CREATE TABLE schedules (
    process_key TEXT NOT NULL,
    node TEXT NOT NULL,
    schedule TEXT NOT NULL,
    next_fire_at TEXT NOT NULL,
    PRIMARY KEY (process_key, node)
);
CREATE INDEX schedules_due ON schedules (next_fire_at);
