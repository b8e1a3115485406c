//! Messages: correlation to waiting instances, buffering, and message starts.

use std::sync::Arc;

use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::model::{NodeKind, Trigger};

use crate::event::Event;
use crate::ids::InstanceId;
use crate::rejection::Rejection;
use crate::store::{MessageRow, Store, Write, WriteError};

use super::writer::write_error;
use super::{Correlation, Engine, Error, Extra, MAX_ATTEMPTS, Message, NewInstance, Starter};

impl<S: Store> Engine<S> {
    /// Delivers a message to the instance waiting for it (the oldest subscription), or buffers it.
    pub async fn correlate(&self, message: Message) -> Result<Correlation, Error> {
        self.correlate_from(message, None).await
    }

    /// [`Engine::correlate`] for an authenticated sender, recorded as the starter of any
    /// instance the message starts.
    pub async fn correlate_from(&self, message: Message, sender: Option<&str>) -> Result<Correlation, Error> {
        let message_id = message.message_id.clone().unwrap_or_else(|| self.next_id("m"));
        let payload = message.payload.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let now = self.now();
            // A message seen before is found by the write that records it (under the message
            // id's lock): a read here would cost every message a round trip to spare a duplicate
            // its step.
            let row = MessageRow {
                message_id: message_id.clone(),
                name: message.name.clone(),
                correlation_key: message.correlation_key.clone(),
                payload: payload.clone(),
                instance_id: None,
                received_at: now,
                expires_at: now + message.ttl,
            };
            let subscriptions = self.inner.store.subscriptions_for(&message.name, &message.correlation_key).await?;
            if let Some((subscription, instance)) = subscriptions.into_iter().next() {
                let event = Event::MessageCorrelated { subscription, payload: message.payload.clone() };
                let record = MessageRow { instance_id: Some(instance.to_string()), ..row };
                match self
                    .run(instance.as_str(), event, Extra { record_message: Some(record), ..Extra::default() })
                    .await
                {
                    Ok(stepped) => {
                        self.settle(stepped.pending).await?;
                        return Ok(Correlation::Delivered { instance });
                    }
                    Err(Error::DuplicateMessage(_)) => return Ok(Correlation::Duplicate),
                    // The subscription closed meanwhile: look again.
                    Err(Error::Rejected(Rejection::UnknownSubscription { .. })) => continue,
                    Err(e) => return self.unless_seen(&message_id, e).await,
                }
            }
            // Nobody waits: a process that starts on this message starts now.
            match self.start_on_message(&message, &message_id, &row, sender).await {
                Ok(Some(instance)) => return Ok(Correlation::Delivered { instance }),
                Ok(None) => {}
                Err(Error::DuplicateMessage(_)) => return Ok(Correlation::Duplicate),
                Err(e) => return self.unless_seen(&message_id, e).await,
            }
            match self.submit_raw(Write::BufferMessage(row)).await? {
                Ok(_) => return Ok(Correlation::Buffered),
                Err(WriteError::DuplicateMessage(_)) => return Ok(Correlation::Duplicate),
                Err(WriteError::SubscriptionExists) => continue,
                Err(e) => return Err(write_error(e)),
            }
        }
        Err(Error::Contention(message_id))
    }

    /// `error`, unless the message was seen before: then a duplicate, as it is when its write
    /// finds it (a duplicate stepped into a newer definition may be refused before its write).
    async fn unless_seen(&self, message_id: &str, error: Error) -> Result<Correlation, Error> {
        if self.inner.store.message_seen(message_id).await? {
            return Ok(Correlation::Duplicate);
        }
        Err(error)
    }

    /// The latest deployed definitions that a message named `name` starts (through `start on
    /// message`), so that a caller can check who may send it.
    pub async fn started_by_message(&self, name: &str) -> Result<Vec<Arc<CompiledProcess>>, Error> {
        let mut found = Vec::new();
        for (key, version) in self.latest_versions().await?.iter().map(|(key, version)| (key.as_str(), *version)) {
            let definition = self.definition(key, version).await?;
            if definition.nodes.iter().any(
                |n| matches!(&n.kind, NodeKind::Start { trigger: Trigger::Message { message: m }, .. } if m == name),
            ) {
                found.push(definition);
            }
        }
        Ok(found)
    }

    /// Starts every process (latest version) with a start on `message`'s name, the payload as its
    /// inputs and the correlation key as business key; the first one records the message so
    /// that a redelivery is a duplicate. Ids derive from the message id: starting twice is one start.
    pub(super) async fn start_on_message(
        &self,
        message: &Message,
        message_id: &str,
        row: &MessageRow,
        sender: Option<&str>,
    ) -> Result<Option<InstanceId>, Error> {
        let mut first = None;
        for (key, version) in self.latest_versions().await?.iter().map(|(key, version)| (key.as_str(), *version)) {
            let definition = self.definition(key, version).await?;
            let node = definition.nodes.iter().find(|n| {
                matches!(&n.kind, NodeKind::Start { trigger: Trigger::Message { message: m }, .. } if *m == message.name)
            });
            let Some(node) = node else { continue };
            let id = format!("{key}~{}", crate::ids::segment(message_id));
            let record = first.is_none().then(|| MessageRow { instance_id: Some(id.clone()), ..row.clone() });
            let extra = Extra { record_message: record, ..Extra::default() };
            let new = NewInstance {
                id: &id,
                business_key: Some(message.correlation_key.clone()),
                variables: message.payload.clone(),
                start: Some(node.name.clone()),
                starter: sender.map(Starter::user),
            };
            let started = self.start_instance(&definition, version, new, extra).await?;
            if first.is_none() {
                first = started;
            }
        }
        Ok(first)
    }
}
