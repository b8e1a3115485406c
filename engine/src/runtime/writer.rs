//! The write path: load, step, plan and submit to the group-commit writer, retrying on conflicts; owed events settled after the commit.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use cloverleaf_dsl::CompiledProcess;
use tokio::sync::{mpsc, oneshot};

use crate::effect::Effect;
use crate::event::Event;
use crate::ids::{InstanceId, SubscriptionId};
use crate::instance::Instance;
use crate::step::{Transition, step};
use crate::store;
use crate::store::{Guard, JobChange, JobState, PendingRow, StepWrite, Store, Write, WriteError, WriteOutcome};

use super::gather::gather;
use super::plan::{Before, NewChild, plan};

use super::{CACHE_LIMIT, Cached, Counters, Engine, Error, Extra, MAX_ATTEMPTS, Request, Stepped};

impl<S: Store> Engine<S> {
    /// Applies owed events (and the events they cause in turn).
    pub(super) async fn settle(&self, mut work: Vec<PendingRow>) -> Result<(), Error> {
        while let Some(row) = work.pop() {
            let event: Event = serde_json::from_str(&row.event)?;
            let start = matches!(event, Event::Start { .. });
            let extra = Extra { consume_pending: Some(row.id.clone()), ..Extra::default() };
            match self.run(&row.instance_id, event, extra).await {
                Ok(stepped) => work.extend(stepped.pending),
                Err(Error::Rejected(rejection)) => {
                    // A called process refusing its start: it fails, and its caller hears so.
                    if start && let Some(stepped) = self.refuse_start(&row, &rejection).await? {
                        work.extend(stepped.pending);
                        continue;
                    }
                    // Refused by the stored state: either another node applied it between our
                    // read of the owed events and our step (its row is gone: nothing to say), or
                    // the instance cannot take it.
                    if let WriteOutcome::Dropped(true) = self.submit(Write::DropPending(row.id)).await? {
                        tracing::warn!(instance = %row.instance_id, %rejection, "owed event refused; dropped");
                    }
                }
                // Someone else applied it already.
                Err(Error::AlreadyApplied) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Fails the called instance of the owed start `row`, which the core refused, with
    /// [`START_REFUSED`](crate::event::START_REFUSED), consuming the owed row in the same write;
    /// its caller is owed the failure. `None` when the instance is no longer waiting for its start
    /// (another node started or failed it meanwhile).
    async fn refuse_start(&self, row: &PendingRow, rejection: &crate::Rejection) -> Result<Option<Stepped>, Error> {
        let refused = Event::StartRefused { reason: rejection.to_string() };
        let extra = Extra { consume_pending: Some(row.id.clone()), ..Extra::default() };
        match self.run(&row.instance_id, refused, extra).await {
            Ok(stepped) => {
                tracing::warn!(instance = %row.instance_id, %rejection, "called process refused its start; it failed");
                Ok(Some(stepped))
            }
            Err(Error::Rejected(_) | Error::AlreadyApplied) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Loads, steps and writes `event` for an existing instance, retrying on conflicts.
    pub(super) async fn run(&self, instance: &str, event: Event, extra: Extra) -> Result<Stepped, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let cached = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).get(instance).cloned();
            let from_cache = cached.is_some();
            let cached = match cached {
                Some(c) => c,
                None => {
                    let row = self
                        .inner
                        .store
                        .load_instance(&InstanceId::from(instance))
                        .await?
                        .ok_or_else(|| Error::UnknownInstance(instance.to_string()))?;
                    Arc::new(Cached::of_row(&row)?)
                }
            };
            let definition = self.definition(cached.instance.process(), cached.instance.process_version()).await?;
            let before = Before {
                instance: &cached.instance,
                expected_version: Some(cached.version),
                parent: cached.parent.clone(),
                history_seq: cached.history_seq,
                history_hash: cached.history_hash.clone(),
            };
            match self.step_and_write(&definition, &before, event.clone(), &extra).await {
                Err(Attempt::Again) => {
                    self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).remove(instance);
                }
                // The cache may lag behind a step another task just committed: read the store.
                Err(Attempt::Failed(Error::Rejected(_))) if from_cache => {
                    self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner).remove(instance);
                }
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(stepped) => return Ok(stepped),
            }
        }
        Err(Error::Contention(instance.to_string()))
    }

    pub(super) async fn step_and_write(
        &self,
        definition: &CompiledProcess,
        before: &Before<'_>,
        event: Event,
        extra: &Extra,
    ) -> Result<Stepped, Attempt> {
        let now = self.now();
        let id = before.instance.id().as_str();
        let span = tracing::info_span!("step", instance = %id, process = %definition.key, event = event.name(),
            node = tracing::field::Empty);
        let first = span.in_scope(|| step(definition, before.instance, event.clone(), now)).map_err(Error::from)?;
        self.write_steps(definition, before, (event, first), now, extra, span).await
    }

    /// Writes an accepted transition (and the event that caused it, stepped at `now`) with the
    /// buffered messages it lets in, as one step write guarded by the instance's version;
    /// `definition` is the one the instance runs after the transition. The called processes it
    /// starts take their first step in the same write.
    pub(super) async fn write_steps(
        &self,
        definition: &CompiledProcess,
        before: &Before<'_>,
        (event, first): (Event, Transition),
        now: chrono::DateTime<chrono::Utc>,
        extra: &Extra,
        span: tracing::Span,
    ) -> Result<Stepped, Attempt> {
        let id = before.instance.id().as_str();
        if let Some(node) = first.effects.iter().find_map(|e| match e {
            Effect::History(h) => h.node.clone(),
            _ => None,
        }) {
            span.record("node", node.as_str());
        }
        let mut taken = Vec::new();
        let delivered =
            self.deliver_buffered(definition, before.instance, (event, first), now, &mut taken, &span).await?;
        let Delivered { mut steps, guards: opened, consumed } = delivered;
        let called = self.called(&steps).await?;
        let after = &steps[steps.len() - 1].1.instance;
        // A called process belongs to its caller's case: the person who started that, and its
        // business key (the order number its pages and searches show).
        let case = Case {
            started_by: after.started_by().map(str::to_string),
            business_key: after.business_key().map(str::to_string),
        };
        let mut owed = Vec::new();
        let mut started = Vec::new();
        for child in called {
            match self.start_called(id, &case, child, now, &mut taken).await? {
                Ok(first_step) => started.push(first_step),
                Err(child) => owed.push(child),
            }
        }
        let mut write = plan(before, &steps, owed, now, || self.next_id("p")).map_err(Error::from)?;
        write.guards = extra.guards.iter().cloned().chain(opened).collect();
        write.consume_messages = consumed;
        write.record_message = extra.record_message.clone();
        write.consume_pending = extra.consume_pending.clone();
        let (cached_children, started): (Vec<_>, Vec<_>) = started.into_iter().unzip();
        write.started = started;
        // A message one of these instances takes is no longer waiting for the others.
        if !taken.is_empty() {
            let guards = write.guards.iter_mut().chain(write.started.iter_mut().flat_map(|w| w.guards.iter_mut()));
            for guard in guards {
                if let Guard::NoBufferedMessage { except, .. } = guard {
                    except.extend_from_slice(&taken);
                }
            }
        }
        let wakes = write.with_started().any(|w| !w.timers_upsert.is_empty());
        let readies_jobs = write.with_started().flat_map(|w| &w.jobs).any(|j| match j {
            JobChange::Insert(_) => true,
            JobChange::Update { state, .. } => *state == JobState::Ready,
        });
        let pending: Vec<PendingRow> = write.with_started().flat_map(|w| w.pending.iter().cloned()).collect();
        // The children this step creates go on on this node next (the owed start events of those
        // not started yet are settled right after the commit): kept as written, they need not be
        // read back.
        let mut created: Vec<(String, Cached)> = write
            .children
            .iter()
            .chain(write.started.iter().flat_map(|w| &w.children))
            .map(|row| Ok((row.id.clone(), Cached::of_row(row)?)))
            .collect::<Result<_, Error>>()?;
        created.extend(cached_children.into_iter().flatten());
        let (version, history_seq, history_hash) =
            (write.instance.version, write.instance.history_seq, write.instance.history_hash.clone());
        match self.submit_raw(Write::Step(Box::new(write))).await? {
            Ok(_) => {
                if wakes {
                    self.inner.wake.notify_one();
                }
                if readies_jobs {
                    self.inner.jobs_ready.send_modify(|n| *n = n.wrapping_add(1));
                }
                let (_, last) = steps.pop().ok_or(Error::Stopped)?;
                let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() + created.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                for (child, cached) in created {
                    // An entry there already is as new or newer: another task stepped the child
                    // in between (should it have ended the child meanwhile, the entry is stale,
                    // and the next write conflicts and evicts it).
                    cache.entry(child).or_insert_with(|| Arc::new(cached));
                }
                if last.instance.status().is_final() {
                    cache.remove(id);
                } else {
                    let cached = Cached {
                        instance: last.instance,
                        version,
                        parent: before.parent.clone(),
                        history_seq,
                        history_hash,
                    };
                    // A slower task must not replace a newer entry with its older one.
                    if cache.get(id).is_none_or(|c| c.version < version) {
                        cache.insert(id.to_string(), Arc::new(cached));
                    }
                }
                Ok(Stepped { pending })
            }
            Err(WriteError::Conflict(_) | WriteError::BufferedMessageWaiting) => Err(Attempt::Again),
            Err(e) => Err(write_error(e).into()),
        }
    }

    /// Delivers, after `first`, the buffered messages the subscriptions it opened wait for (none
    /// of `taken`, which grows by those delivered), each as a further step; the guards that no
    /// other message waits for the subscriptions still open.
    async fn deliver_buffered(
        &self,
        definition: &CompiledProcess,
        before: &Instance,
        first: (Event, Transition),
        now: chrono::DateTime<chrono::Utc>,
        taken: &mut Vec<i64>,
        span: &tracing::Span,
    ) -> Result<Delivered, Attempt> {
        let mut steps: Vec<(Event, Transition)> = vec![first];
        let mut consumed = Vec::new();
        // Messages a subscription cannot take: out of its own search and guard only (another
        // receive, or a child started in the same write, may take what it could not).
        let mut skipped: Vec<(SubscriptionId, i64)> = Vec::new();
        while consumed.len() < STEP_CHAIN_LIMIT && skipped.len() < SKIPPED_LIMIT {
            let current = &steps[steps.len() - 1].1.instance;
            let mut next = None;
            for (sid, sub) in current.subscriptions() {
                if before.subscriptions().contains_key(sid) {
                    continue;
                }
                let excluded: Vec<i64> = taken.iter().copied().chain(passed_over(&skipped, sid)).collect();
                if let Some(found) =
                    self.inner.store.buffered_message(&sub.message, &sub.correlation_key, now, &excluded).await?
                {
                    next = Some((sid.clone(), found));
                    break;
                }
            }
            let Some((subscription, found)) = next else { break };
            let payload: serde_json::Value = serde_json::from_str(&found.payload).map_err(Error::from)?;
            let event = Event::MessageCorrelated { subscription: subscription.clone(), payload };
            match span.in_scope(|| step(definition, current, event.clone(), now)) {
                Ok(t) => {
                    taken.push(found.seq);
                    consumed.push(found.seq);
                    steps.push((event, t));
                }
                // A message the instance cannot take (a payload that does not fit) stays buffered
                // until it expires, as its sender would have been refused had the instance been
                // waiting when it came: it must not refuse the step that opened the subscription,
                // which would then never be taken.
                Err(rejection) => {
                    tracing::warn!(instance = %before.id(), seq = found.seq, %rejection,
                        "a buffered message the instance waiting for it cannot take; left to expire");
                    skipped.push((subscription, found.seq));
                }
            }
        }
        let last = &steps[steps.len() - 1].1.instance;
        let guards = last
            .subscriptions()
            .iter()
            .filter(|(sid, _)| !before.subscriptions().contains_key(*sid))
            .map(|(sid, sub)| Guard::NoBufferedMessage {
                name: sub.message.clone(),
                key: sub.correlation_key.clone(),
                now,
                // The write's deliveries are added once every instance of it has stepped.
                except: passed_over(&skipped, sid).collect(),
            })
            .collect();
        Ok(Delivered { steps, guards, consumed })
    }

    /// The called processes `steps` start, each at its latest version.
    async fn called(&self, steps: &[(Event, Transition)]) -> Result<Vec<NewChild>, Error> {
        let mut children = Vec::new();
        for (_, t) in steps {
            for effect in &t.effects {
                if let Effect::StartChild { call, process, inputs, .. } = effect {
                    let version = self.latest_version(process).await?;
                    children.push(NewChild {
                        id: call.0.clone(),
                        process: process.clone(),
                        version,
                        inputs: inputs.clone(),
                    });
                }
            }
        }
        Ok(children)
    }

    /// The first step of a called process, written with its caller's step (no owed start event,
    /// no second write) and what to cache of it once written (nothing when it ended at once).
    /// `Err(child)` when its start is refused or its definition cannot be read: the child is
    /// then created, and its start owed, so that what goes wrong is met and reported where any
    /// owed event's is (a refused start fails the child), never by its caller's step.
    async fn start_called(
        &self,
        parent: &str,
        case: &Case,
        child: NewChild,
        now: chrono::DateTime<chrono::Utc>,
        taken: &mut Vec<i64>,
    ) -> Result<Result<(Option<(String, Cached)>, StepWrite), NewChild>, Attempt> {
        let Ok(definition) = self.definition(&child.process, child.version).await else {
            return Ok(Err(child));
        };
        let instance = Instance::new(child.id.as_str(), child.process.as_str(), child.version);
        let event = Event::Start {
            variables: child.inputs.clone(),
            business_key: case.business_key.clone(),
            start: None,
            started_by: case.started_by.clone(),
            on_behalf_of: None,
        };
        let span = tracing::info_span!("step", instance = %child.id, process = %definition.key, event = event.name());
        let Ok(first) = span.in_scope(|| step(&definition, &instance, event.clone(), now)) else {
            return Ok(Err(child));
        };
        let before = Before {
            instance: &instance,
            expected_version: None,
            parent: Some((parent.to_string(), child.id.clone())),
            history_seq: 0,
            history_hash: store::GENESIS_HASH.to_string(),
        };
        let delivered = self.deliver_buffered(&definition, &instance, (event, first), now, taken, &span);
        let Delivered { steps, guards, consumed } = delivered.await?;
        // What it calls in turn is started the usual way, by owed start events.
        let called = self.called(&steps).await?;
        let mut write = plan(&before, &steps, called, now, || self.next_id("p")).map_err(Error::from)?;
        write.guards = guards;
        write.consume_messages = consumed;
        let last = steps.into_iter().next_back().map(|(_, t)| t.instance).ok_or(Error::Stopped)?;
        let cached = (!last.status().is_final()).then(|| {
            let cached = Cached {
                instance: last,
                version: write.instance.version,
                parent: before.parent.clone(),
                history_seq: write.instance.history_seq,
                history_hash: write.instance.history_hash.clone(),
            };
            (child.id.clone(), cached)
        });
        Ok(Ok((cached, write)))
    }

    pub(super) async fn submit_raw(&self, write: Write) -> Result<Result<WriteOutcome, WriteError>, Error> {
        let (reply, answer) = oneshot::channel();
        self.inner.writer.send(Request { write, reply }).map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    pub(super) async fn submit(&self, write: Write) -> Result<WriteOutcome, Error> {
        self.submit_raw(write).await?.map_err(write_error)
    }

    pub(super) fn next_id(&self, kind: &str) -> String {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{kind}-{}-{n}", self.inner.prefix)
    }
}

/// The buffered messages (by `seq`) that `subscription` could not take.
fn passed_over<'a>(
    skipped: &'a [(SubscriptionId, i64)],
    subscription: &'a SubscriptionId,
) -> impl Iterator<Item = i64> + 'a {
    skipped.iter().filter(move |(sid, _)| sid == subscription).map(|(_, seq)| *seq)
}

/// A transition followed by the buffered messages it let in.
struct Delivered {
    /// The transitions, with the events that caused them.
    steps: Vec<(Event, Transition)>,
    /// That no buffered message waits for the subscriptions they opened.
    guards: Vec<Guard>,
    /// The buffered messages delivered, by `seq`.
    consumed: Vec<i64>,
}

/// Most buffered messages delivered in one step.
pub(super) const STEP_CHAIN_LIMIT: usize = 64;

/// Most buffered messages one instance passes over in one step because it cannot take them; past
/// that, while more wait, the write is refused and retried until it gives up with a contention
/// error (as past [`STEP_CHAIN_LIMIT`] deliveries).
const SKIPPED_LIMIT: usize = 1_024;

/// Why one attempt at a step did not land.
pub(super) enum Attempt {
    /// A conflict: load and step again.
    Again,
    /// A refusal or failure.
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

impl From<store::Error> for Attempt {
    fn from(e: store::Error) -> Self {
        Attempt::Failed(Error::Store(e))
    }
}

pub(super) fn write_error(e: WriteError) -> Error {
    match e {
        WriteError::Conflict(id) => Error::Contention(id),
        WriteError::StaleEpoch { job, epoch } => Error::StaleLock { job, epoch },
        WriteError::TaskTaken { task } => Error::TaskClaimed { task },
        WriteError::DuplicateMessage(id) => Error::DuplicateMessage(id),
        WriteError::PendingGone => Error::AlreadyApplied,
        other => Error::Write(other.to_string()),
    }
}

pub(super) async fn write_loop<S: Store>(
    store: S,
    mut requests: mpsc::UnboundedReceiver<Request>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    let mut company_before = false;
    loop {
        let linger = Duration::from_micros(counters.linger_micros.load(Ordering::Relaxed));
        let Some(batch) = gather(&mut requests, max_batch, linger, company_before).await else { break };
        company_before = batch.len() > 1;
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().map(|r| (r.write, r.reply)).unzip();
        let size = writes.len();
        let started = std::time::Instant::now();
        let results = store.write(writes).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.writes.fetch_add(size as u64, Ordering::Relaxed);
        counters.busy_micros.fetch_add(micros, Ordering::Relaxed);
        tracing::trace!(size, micros, "batch committed");
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have gone away; the write stands.
            let _ = reply.send(result);
        }
    }
}

/// What a called process takes from its caller's case when it starts.
struct Case {
    /// The person who started the caller.
    started_by: Option<String>,
    /// The caller's business key.
    business_key: Option<String>,
}
