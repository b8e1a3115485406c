//! Deployments: compiled processes stored under their key and version, and the cache of loaded definitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};

use cloverleaf_dsl::calendar::Calendar;
use cloverleaf_dsl::{CompiledProcess, Project};

use crate::store;
use crate::store::{DeploymentRow, Store, Write, WriteOutcome};

use super::{Deployed, Engine, Error};

impl<S: Store> Engine<S> {
    /// Compiles `files` (name, text) together and deploys every process in them. A process whose
    /// compiled form is unchanged keeps its version; a changed one gets the next version.
    pub async fn deploy(&self, files: &[(&str, &str)]) -> Result<Vec<Deployed>, Error> {
        let mut project = Project::new();
        let mut source = String::new();
        for (name, text) in files {
            project.add(*name, *text);
            source.push_str(&format!("# file: {name}\n{text}\n"));
        }
        let compilation = project.compile();
        if compilation.has_errors() {
            return Err(Error::Compile(compilation.render()));
        }
        let mut deployed = Vec::new();
        for process in &compilation.processes {
            deployed.push(self.deploy_compiled(process, &source).await?);
        }
        Ok(deployed)
    }

    /// Deploys one compiled process with the source it came from (idempotent by hash).
    pub async fn deploy_compiled(&self, process: &CompiledProcess, source: &str) -> Result<Deployed, Error> {
        let compiled = process.to_json();
        let hash = store::sha256_hex(compiled.as_bytes());
        let row = DeploymentRow {
            key: process.key.clone(),
            version: 0,
            hash: hash.clone(),
            source: source.to_string(),
            compiled,
            at: self.now(),
        };
        match self.submit(Write::Deploy(row)).await? {
            WriteOutcome::Deployed { version, created } => {
                let newest = {
                    let mut latest = self.inner.latest.write().unwrap_or_else(PoisonError::into_inner);
                    if created {
                        latest.deployed();
                    }
                    let entry = latest.by_key.entry(process.key.clone()).or_insert(version);
                    *entry = (*entry).max(version);
                    *entry == version
                };
                if newest {
                    self.set_schedules(process).await?;
                }
                Ok(Deployed { key: process.key.clone(), version, hash, created })
            }
            other => Err(Error::Write(format!("unexpected outcome {other:?}"))),
        }
    }

    /// The definition an instance runs.
    pub async fn definition(&self, key: &str, version: u32) -> Result<Arc<CompiledProcess>, Error> {
        if let Some(d) =
            self.inner.definitions.read().unwrap_or_else(PoisonError::into_inner).get(&(key.to_string(), version))
        {
            return Ok(Arc::clone(d));
        }
        let row = self
            .inner
            .store
            .deployment(key, Some(version))
            .await?
            .ok_or_else(|| Error::UnknownVersion { process: key.to_string(), version })?;
        let definition: Arc<CompiledProcess> = Arc::new(serde_json::from_str(&row.compiled)?);
        self.inner
            .definitions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key.to_string(), version), Arc::clone(&definition));
        Ok(definition)
    }

    /// The latest deployed version of a process.
    pub async fn latest_version(&self, key: &str) -> Result<u32, Error> {
        let generation = {
            let latest = self.inner.latest.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = latest.by_key.get(key) {
                return Ok(*v);
            }
            latest.generation
        };
        let row = self.inner.store.deployment(key, None).await?.ok_or_else(|| Error::UnknownProcess(key.into()))?;
        let mut latest = self.inner.latest.write().unwrap_or_else(PoisonError::into_inner);
        if latest.generation == generation {
            latest.by_key.insert(key.to_string(), row.version);
        }
        Ok(row.version)
    }

    /// The business calendars the latest version of each deployed process counts on (its own and
    /// its roles'), by name: what an operator checks for years whose holidays are not listed.
    pub async fn calendars(&self) -> Result<BTreeMap<String, Calendar>, Error> {
        let mut calendars = BTreeMap::new();
        for (key, version) in self.latest_versions().await?.iter() {
            let definition = self.definition(key, *version).await?;
            for calendar in definition.calendar.iter().chain(definition.role_calendars.values()) {
                calendars.entry(calendar.name().to_string()).or_insert_with(|| calendar.clone());
            }
        }
        Ok(calendars)
    }

    /// The latest deployed version of every process.
    pub(super) async fn latest_versions(&self) -> Result<Arc<Vec<(String, u32)>>, Error> {
        let generation = {
            let latest = self.inner.latest.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(all) = &latest.all {
                return Ok(Arc::clone(all));
            }
            latest.generation
        };
        let all = Arc::new(self.inner.store.latest_versions().await?);
        let mut latest = self.inner.latest.write().unwrap_or_else(PoisonError::into_inner);
        // Kept only where another node's deployment would be heard of.
        if latest.listening && latest.generation == generation {
            latest.all = Some(Arc::clone(&all));
        }
        Ok(all)
    }
}

/// The latest deployed versions as this node last read or deployed them. Another node's
/// deployment empties it (see [`Engine::connect`](super::Engine::connect)); so does a listener
/// that lost its connection, once it listens again, since a notification may have been lost.
#[derive(Debug, Default)]
pub(super) struct Latest {
    /// Counts the deployments and drops that changed the entries: a read that one of them
    /// overtook is not kept.
    generation: u64,
    by_key: HashMap<String, u32>,
    /// Every process's latest version, kept only while `listening`.
    all: Option<Arc<Vec<(String, u32)>>>,
    /// Other nodes' deployments are heard of (PostgreSQL): without, `all` is read each time.
    listening: bool,
}

impl Latest {
    /// This node deployed a new version: what a read in flight found may be older.
    fn deployed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.all = None;
    }

    /// Drops every entry: versions may have been deployed elsewhere.
    pub(super) fn forget(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.by_key.clear();
        self.all = None;
    }

    /// From now on, another node's deployment calls [`Latest::forget`].
    pub(super) fn listen(&mut self) {
        self.listening = true;
    }
}
