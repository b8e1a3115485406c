//! Starting instances: by key, by version, for a person, once per business key.

use cloverleaf_dsl::CompiledProcess;

use crate::event::Event;
use crate::ids::InstanceId;
use crate::instance::Instance;
use crate::store;
use crate::store::Store;

use super::plan::Before;

use super::writer::Attempt;
use super::{Engine, Error, Extra, MAX_ATTEMPTS, NewInstance, Starter};

impl<S: Store> Engine<S> {
    /// Starts an instance of the latest version of `process`.
    pub async fn start(
        &self,
        process: &str,
        business_key: Option<&str>,
        variables: serde_json::Value,
    ) -> Result<InstanceId, Error> {
        let version = self.latest_version(process).await?;
        self.start_version(process, version, business_key, variables).await
    }

    /// Starts an instance of one deployed version of `process`.
    pub async fn start_version(
        &self,
        process: &str,
        version: u32,
        business_key: Option<&str>,
        variables: serde_json::Value,
    ) -> Result<InstanceId, Error> {
        let definition = self.definition(process, version).await?;
        let id = self.next_id("i");
        let business_key = business_key.map(str::to_string);
        let start = NewInstance { id: &id, business_key, variables, start: None, starter: None };
        self.start_instance(&definition, version, start, Extra::default()).await?.ok_or(Error::Contention(id))
    }

    /// Starts an instance of `process` (the latest version, or `version`) for an authenticated
    /// user, who is recorded as its starter. With `once_id`, at most once per id: when that
    /// instance exists already (or existed, and was archived) nothing starts and the answer is
    /// it with `false`.
    pub async fn start_for(
        &self,
        starter: &Starter,
        process: &str,
        version: Option<u32>,
        business_key: Option<&str>,
        variables: serde_json::Value,
        once_id: Option<&str>,
    ) -> Result<(InstanceId, bool), Error> {
        if let Some(id) = once_id
            && self.inner.store.load_instance(&InstanceId::from(id)).await?.is_some()
        {
            return Ok((InstanceId(id.to_string()), false));
        }
        let version = match version {
            Some(v) => v,
            None => self.latest_version(process).await?,
        };
        let definition = self.definition(process, version).await?;
        let id = once_id.map_or_else(|| self.next_id("i"), str::to_string);
        let business_key = business_key.map(str::to_string);
        let start = NewInstance { id: &id, business_key, variables, start: None, starter: Some(starter.clone()) };
        match self.start_instance(&definition, version, start, Extra::default()).await? {
            Some(id) => Ok((id, true)),
            None if once_id.is_some() => Ok((InstanceId(id), false)),
            None => Err(Error::Contention(id)),
        }
    }

    /// Starts an instance of `process` (the latest version, or `version`) under the id `id`,
    /// once: when an instance with that id exists already (or existed, and was archived),
    /// nothing starts and the answer is that instance with `false`. Lets a client retry a start
    /// whose answer it never got.
    pub async fn start_once(
        &self,
        id: &str,
        process: &str,
        version: Option<u32>,
        business_key: Option<&str>,
        variables: serde_json::Value,
    ) -> Result<(InstanceId, bool), Error> {
        if self.inner.store.load_instance(&InstanceId::from(id)).await?.is_some() {
            return Ok((InstanceId(id.to_string()), false));
        }
        let version = match version {
            Some(v) => v,
            None => self.latest_version(process).await?,
        };
        let definition = self.definition(process, version).await?;
        let start =
            NewInstance { id, business_key: business_key.map(str::to_string), variables, start: None, starter: None };
        let started = self.start_instance(&definition, version, start, Extra::default()).await?;
        Ok((InstanceId(id.to_string()), started.is_some()))
    }

    /// Starts an instance with a chosen id (at a chosen start node); `None` when an instance with
    /// that id exists already, which makes scheduled and message starts idempotent.
    pub(super) async fn start_instance(
        &self,
        definition: &CompiledProcess,
        version: u32,
        new: NewInstance<'_>,
        extra: Extra,
    ) -> Result<Option<InstanceId>, Error> {
        let NewInstance { id, business_key, variables, start, starter } = new;
        let instance = Instance::new(id, definition.key.as_str(), version);
        let (started_by, on_behalf_of) = starter.map_or((None, None), |s| (Some(s.user), s.on_behalf_of));
        let event = Event::Start { variables, business_key, start, started_by, on_behalf_of };
        let before = Before {
            instance: &instance,
            expected_version: None,
            parent: None,
            history_seq: 0,
            history_hash: store::GENESIS_HASH.to_string(),
        };
        for _ in 0..MAX_ATTEMPTS {
            match self.step_and_write(definition, &before, event.clone(), &extra).await {
                Ok(stepped) => {
                    self.settle(stepped.pending).await?;
                    return Ok(Some(InstanceId(id.to_string())));
                }
                // Either the id exists (another node started it, or it ended and was archived:
                // done), or a message the new instance waits for was buffered meanwhile: start
                // again, and it is delivered.
                Err(Attempt::Again) => {
                    let id = InstanceId::from(id);
                    if self.inner.store.load_instance(&id).await?.is_some() || self.inner.store.is_archived(&id).await?
                    {
                        return Ok(None);
                    }
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Contention(id.to_string()))
    }
}
