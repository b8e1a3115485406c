-- The rows of a batch as the planner should see them: few. A statement that finds a batch's rows
-- by id joins these, so that the plan PostgreSQL caches for it reads the primary key whatever
-- the table's size when the plan was made. `jsonb_to_recordset` is estimated at 100 rows: while
-- a table was new and small, hashing those and scanning the whole table looked cheaper, and the
-- cached plan kept scanning it, dead rows included, for every batch as the table grew.
-- STRICT keeps the functions from being inlined, so that their ROWS estimate holds.
CREATE FUNCTION batch_rows(batch jsonb) RETURNS SETOF jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 1
    AS $$ SELECT jsonb_array_elements(batch) $$;

CREATE FUNCTION batch_ids(batch jsonb) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 1
    AS $$ SELECT jsonb_array_elements_text(batch) $$;
