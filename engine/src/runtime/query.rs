//! Read-only queries of the runtime for operators and the HTTP API.
//!
//! Listings read the store's read pool directly; lookups by id answer the runtime's own
//! "unknown" errors, so a caller maps them like any other.

use chrono::TimeDelta;

use super::{Engine, Error};
use crate::ids::InstanceId;
use crate::store::SqliteStore;
use crate::store::query::{
    Cycle, DeploymentSummary, GroupCount, IncidentSummary, InstanceSummary, TimerStats, VersionSummary,
};

impl Engine<SqliteStore> {
    /// The latest deployment of every process key.
    pub async fn deployments(&self) -> Result<Vec<DeploymentSummary>, Error> {
        Ok(self.store().deployments().await?)
    }

    /// Every deployed version of a process, oldest first.
    pub async fn deployment_versions(&self, key: &str) -> Result<Vec<VersionSummary>, Error> {
        let versions = self.store().deployment_versions(key).await?;
        if versions.is_empty() {
            return Err(Error::UnknownProcess(key.to_string()));
        }
        Ok(versions)
    }

    /// The distinct sources the latest deployments were compiled from (the context a new
    /// source compiles against: roles and callable processes).
    pub async fn latest_sources(&self) -> Result<Vec<String>, Error> {
        Ok(self.store().latest_sources().await?)
    }

    /// Instances matching every filter given, newest first.
    pub async fn list_instances(
        &self,
        process: Option<&str>,
        status: Option<&str>,
        business_key: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<InstanceSummary>, Error> {
        Ok(self.store().instances(process, status, business_key, limit, offset).await?)
    }

    /// One instance as listed (status, business key, times).
    pub async fn instance_summary(&self, id: &InstanceId) -> Result<InstanceSummary, Error> {
        self.store().instance_summary(id.as_str()).await?.ok_or_else(|| Error::UnknownInstance(id.0.clone()))
    }

    /// Incidents, oldest first: the open ones, or all with `all`; of one instance when given.
    pub async fn list_incidents(
        &self,
        all: bool,
        instance: Option<&InstanceId>,
    ) -> Result<Vec<IncidentSummary>, Error> {
        Ok(self.store().incidents(all, instance.map(InstanceId::as_str)).await?)
    }

    /// True when a fetch of `job_types` (all types with `None`) would lock something now.
    pub async fn has_due_jobs(&self, job_types: Option<&[String]>) -> Result<bool, Error> {
        Ok(self.store().has_due_jobs(job_types, self.now()).await?)
    }

    /// Instances by `[process, status]`.
    pub async fn instance_counts(&self) -> Result<Vec<GroupCount>, Error> {
        Ok(self.store().instance_counts().await?)
    }

    /// Jobs by `[job_type, state]` (`expired` for leases run out).
    pub async fn job_counts(&self) -> Result<Vec<GroupCount>, Error> {
        Ok(self.store().job_counts(self.now()).await?)
    }

    /// Timers pending, due now, and due longer ago than `late_after`.
    pub async fn timer_stats(&self, late_after: TimeDelta) -> Result<TimerStats, Error> {
        let now = self.now();
        Ok(self.store().timer_stats(now, now - late_after).await?)
    }

    /// Open tasks by `[process, role]` with how many are overdue.
    pub async fn open_tasks_by_role(&self, process: Option<&str>) -> Result<Vec<(GroupCount, i64)>, Error> {
        Ok(self.store().open_tasks_by_role(process, self.now()).await?)
    }

    /// Every event accepted so far (steps).
    pub async fn event_count(&self) -> Result<i64, Error> {
        Ok(self.store().event_count().await?)
    }

    /// Open incidents by `[process]`.
    pub async fn open_incident_counts(&self) -> Result<Vec<GroupCount>, Error> {
        Ok(self.store().open_incident_counts().await?)
    }

    /// Start and end of the completed instances of `process`.
    pub async fn cycles(&self, process: &str) -> Result<Vec<Cycle>, Error> {
        Ok(self.store().cycles(process).await?)
    }

    /// Tasks that missed their due time, by `[process]`.
    pub async fn sla_breaches(&self, process: Option<&str>) -> Result<Vec<GroupCount>, Error> {
        Ok(self.store().sla_breaches(process, self.now()).await?)
    }
}
