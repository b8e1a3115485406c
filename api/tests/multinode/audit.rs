//! The audit: triggers that record every change of a job, timer or instance row with the name of
//! the process that wrote it, and the connection names that make those names.

use sqlx::PgPool;

use crate::VICTIM;

/// Every change of a job, timer or instance row, with the `application_name` of the connection
/// that wrote it; `mn_marks` holds the moment of the kill.
pub(crate) const AUDIT: &str = r#"
CREATE TABLE mn_marks (name TEXT PRIMARY KEY, at TIMESTAMPTZ NOT NULL);
CREATE TABLE mn_audit (
    seq BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    app TEXT NOT NULL DEFAULT current_setting('application_name'),
    tbl TEXT NOT NULL,
    op TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    instance_id TEXT,
    node TEXT,
    new_state TEXT,
    new_owner TEXT,
    new_epoch BIGINT,
    old_state TEXT,
    old_owner TEXT,
    old_epoch BIGINT,
    due_at TEXT,
    claimed_until TEXT
);
CREATE INDEX mn_audit_row ON mn_audit (tbl, id);

CREATE FUNCTION mn_audit_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, new_state, new_owner, new_epoch)
        VALUES ('jobs', 'insert', NEW.id, NEW.instance_id, NEW.job_type, NEW.state, NEW.lock_owner, NEW.lock_epoch);
    ELSE
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, new_state, new_owner, new_epoch,
                              old_state, old_owner, old_epoch)
        VALUES ('jobs', 'update', NEW.id, NEW.instance_id, NEW.job_type, NEW.state, NEW.lock_owner,
                NEW.lock_epoch, OLD.state, OLD.lock_owner, OLD.lock_epoch);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mn_audit_jobs AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION mn_audit_jobs();

CREATE FUNCTION mn_audit_timers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, due_at, claimed_until)
        VALUES ('timers', 'delete', OLD.id, OLD.instance_id, OLD.node, OLD.due_at, OLD.claimed_until);
    ELSE
        INSERT INTO mn_audit (tbl, op, id, instance_id, node, due_at, claimed_until)
        VALUES ('timers', lower(TG_OP), NEW.id, NEW.instance_id, NEW.node, NEW.due_at, NEW.claimed_until);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mn_audit_timers AFTER INSERT OR UPDATE OR DELETE ON timers
    FOR EACH ROW EXECUTE FUNCTION mn_audit_timers();

CREATE FUNCTION mn_audit_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mn_audit (tbl, op, id, node) VALUES ('instances', 'insert', NEW.id, NEW.process_key);
    RETURN NULL;
END $$;
CREATE TRIGGER mn_audit_instances AFTER INSERT ON instances FOR EACH ROW EXECUTE FUNCTION mn_audit_instances();
"#;

/// The `application_name` of serve node `index`.
pub(crate) fn serve_name(index: usize) -> String {
    format!("serve-{}", index + 1)
}

/// `url` with the connection named `name` (what the audit records as `app`).
pub(crate) fn connection_url(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// A dunning timer: one at `await_payment` due within a minute of being scheduled (the other
/// two boundaries there are hours away).
pub(crate) const DUNNING_TIMER: &str =
    "a.node = 'await_payment' AND a.due_at::timestamptz < a.at + interval '1 minute'";

/// Dunning timers the victim scheduled that have not fired yet.
pub(crate) async fn victim_timers_pending(pool: &PgPool) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM timers t JOIN mn_audit a ON a.tbl = 'timers' AND a.op = 'insert' AND a.id = t.id \
         WHERE a.app = $1 AND {DUNNING_TIMER}"
    );
    sqlx::query_scalar(&sql).bind(serve_name(VICTIM)).fetch_one(pool).await.expect("pending timers count")
}
