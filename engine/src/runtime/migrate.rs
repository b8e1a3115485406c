//! Migrations of running instances to another deployed version of their definition: the core
//! plans each instance ([`crate::migrate`]), and each is written as its own step (its new
//! version, its closed and re-created waits, its `migrated` history entry and the `migrate`
//! event, in one write guarded by its version), so that a refused instance stops no other.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use crate::ids::InstanceId;
use crate::instance::Instance;
use crate::rejection::Rejection;
use crate::step::{Migration, MigrationPlan, check_mapping, migrate};
use crate::store::{InstanceState, Queries, Store};

use super::plan::Before;
use super::writer::Attempt;
use super::{Engine, Error, Extra, MAX_ATTEMPTS};

/// Most instances one [`Engine::migrate`] call takes when the request names no limit.
pub const MIGRATION_BATCH: usize = 500;

/// A migration of running instances from one deployed version to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRequest {
    /// The process key.
    pub process: String,
    /// The version the instances run.
    pub from_version: u32,
    /// The version they move to.
    pub to_version: u32,
    /// Renamed nodes, old name → new name.
    pub mapping: BTreeMap<String, String>,
    /// Only these instances; `None`: every running instance of `from_version`.
    pub instances: Option<Vec<InstanceId>>,
    /// Plan only: nothing is written.
    pub dry_run: bool,
    /// The operator, recorded in each instance's history.
    pub by: String,
    /// Why, recorded in each instance's history.
    pub reason: String,
    /// Only instances whose id sorts after this one (the `next` of the previous batch).
    pub after: Option<InstanceId>,
    /// Most instances in this batch (default [`MIGRATION_BATCH`]).
    pub limit: Option<usize>,
}

/// What became of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationOutcome {
    /// Moved to the new version, as the plan says.
    Migrated(MigrationPlan),
    /// A dry run: it would move as the plan says.
    WouldMigrate(MigrationPlan),
    /// Left as it was: every reason, as (what, why).
    Refused(Vec<(String, String)>),
}

/// One instance of a migration batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMigration {
    /// The instance.
    pub instance: InstanceId,
    /// What became of it.
    pub outcome: MigrationOutcome,
}

/// What one batch of a migration did, in instance id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Every instance of the batch.
    pub instances: Vec<InstanceMigration>,
    /// The last instance of the batch when more are left: pass it as `after` for the next.
    pub next: Option<InstanceId>,
}

impl MigrationReport {
    /// How many instances moved (or, in a dry run, would move).
    pub fn migrated(&self) -> usize {
        self.instances.iter().filter(|i| !matches!(i.outcome, MigrationOutcome::Refused(_))).count()
    }

    /// How many instances were refused.
    pub fn refused(&self) -> usize {
        self.instances.len() - self.migrated()
    }
}

impl<S: Store + Queries> Engine<S> {
    /// Runs one batch of a migration: checks the request (the versions exist and differ, the
    /// mapping names nodes of both, a reason is given: else [`Error::InvalidMigration`]), then
    /// plans each instance and, unless a dry run, writes each in its own step.
    pub async fn migrate(&self, request: &MigrationRequest) -> Result<MigrationReport, Error> {
        let mut problems = Vec::new();
        if request.from_version == request.to_version {
            problems.push(("to_version".to_string(), "it is the version migrated from: name another".to_string()));
        }
        if request.reason.trim().is_empty() {
            problems.push(("reason".to_string(), "say why: it goes into each instance's history".to_string()));
        }
        if request.by.trim().is_empty() {
            problems.push(("by".to_string(), "name the operator".to_string()));
        }
        let from = self.definition(&request.process, request.from_version).await?;
        let to = self.definition(&request.process, request.to_version).await?;
        problems.extend(check_mapping(&from, &to, &request.mapping));
        if !problems.is_empty() {
            return Err(Error::InvalidMigration(problems));
        }
        let migration = Migration {
            from: &from,
            to: &to,
            to_version: request.to_version,
            mapping: &request.mapping,
            by: &request.by,
            reason: &request.reason,
        };
        let mut ids = match &request.instances {
            Some(ids) => ids.clone(),
            None => self.candidates(&request.process, request.from_version).await?,
        };
        ids.sort();
        ids.dedup();
        if let Some(after) = &request.after {
            ids.retain(|id| id > after);
        }
        let limit = request.limit.unwrap_or(MIGRATION_BATCH).max(1);
        let next = (ids.len() > limit).then(|| ids[limit - 1].clone());
        ids.truncate(limit);
        let mut instances = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = match self.migrate_one(&migration, request.from_version, &id, request.dry_run).await {
                Ok(plan) if request.dry_run => MigrationOutcome::WouldMigrate(plan),
                Ok(plan) => MigrationOutcome::Migrated(plan),
                Err(Error::Rejected(Rejection::CannotMigrate { problems })) => MigrationOutcome::Refused(problems),
                Err(Error::Rejected(other)) => MigrationOutcome::Refused(vec![("instance".into(), other.to_string())]),
                Err(Error::UnknownInstance(_)) => {
                    MigrationOutcome::Refused(vec![("instance".into(), "no such instance".into())])
                }
                Err(Error::Contention(_)) => MigrationOutcome::Refused(vec![(
                    "instance".into(),
                    "it kept changing while it was migrated: try it again".into(),
                )]),
                Err(other) => return Err(other),
            };
            instances.push(InstanceMigration { instance: id, outcome });
        }
        Ok(MigrationReport { instances, next })
    }

    /// The running instances of `process` at `version`.
    async fn candidates(&self, process: &str, version: u32) -> Result<Vec<InstanceId>, Error> {
        const PAGE: i64 = 1000;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .inner
                .store
                .instances(Some(process), Some(InstanceState::Running.as_str()), None, PAGE, offset)
                .await?;
            let len = page.len();
            out.extend(page.into_iter().filter(|i| i.process_version == version).map(|i| i.id));
            if i64::try_from(len).unwrap_or(0) < PAGE {
                return Ok(out);
            }
            offset += PAGE;
        }
    }

    /// Plans one instance from its stored state and, unless a dry run, writes it; conflicts
    /// (someone stepped it meanwhile) plan again from the new state.
    async fn migrate_one(
        &self,
        migration: &Migration<'_>,
        from_version: u32,
        id: &InstanceId,
        dry_run: bool,
    ) -> Result<MigrationPlan, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let row = self.inner.store.load_instance(id).await?.ok_or_else(|| Error::UnknownInstance(id.0.clone()))?;
            let instance = Instance::from_json(&row.state)?;
            if instance.process() != migration.from.key || instance.process_version() != from_version {
                let problem = format!(
                    "it runs version {} of `{}`, not version {from_version} of `{}`",
                    instance.process_version(),
                    instance.process(),
                    migration.from.key
                );
                return Err(Rejection::CannotMigrate { problems: vec![("instance".into(), problem)] }.into());
            }
            let now = self.now();
            let (transition, plan) = migrate(migration, &instance, now)?;
            if dry_run {
                return Ok(plan);
            }
            let before = Before {
                instance: &instance,
                expected_version: Some(row.version),
                parent: row.parent_id.clone().zip(row.parent_call.clone()),
                history_seq: row.history_seq,
                history_hash: row.history_hash.clone(),
            };
            let event = migration.event(&instance);
            let span = tracing::info_span!("migrate", instance = %id, process = %migration.to.key,
                to_version = migration.to_version);
            match self.write_steps(migration.to, &before, (event, transition), now, &Extra::default(), span).await {
                Ok(stepped) => {
                    self.settle(stepped.pending).await?;
                    return Ok(plan);
                }
                Err(Attempt::Again) => {
                    self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).remove(id.as_str());
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Contention(id.0.clone()))
    }
}
