//! Timers and cron starts: what is due fires. The loop that sleeps until the next one is the
//! [`Scheduler`](super::Scheduler).

use std::collections::BTreeMap;

use chrono::Utc;
use cloverleaf_dsl::CompiledProcess;
use cloverleaf_dsl::model::{NodeKind, Trigger};
use tokio::task::JoinSet;

use crate::event::Event;
use crate::ids::{InstanceId, TimerId};
use crate::store::{Store, Write};

use super::plan::firing_order;
use super::{Engine, Error, Extra, NewInstance, never};

impl<S: Store> Engine<S> {
    /// Fires every timer due now (each instance's timers in due order); returns how many fired.
    pub async fn fire_due_timers(&self) -> Result<usize, Error> {
        let mut fired = 0usize;
        let mut refused: std::collections::HashSet<(TimerId, InstanceId)> = std::collections::HashSet::new();
        for _round in 0..10_000 {
            let now = self.now();
            let due = self.inner.store.due_timers(now, 1024).await?;
            let mut by_instance: BTreeMap<InstanceId, Vec<TimerId>> = BTreeMap::new();
            for (timer, instance) in due {
                if !refused.contains(&(timer.clone(), instance.clone())) {
                    by_instance.entry(instance).or_default().push(timer);
                }
            }
            if by_instance.is_empty() {
                break;
            }
            let mut set = JoinSet::new();
            for (instance, timers) in by_instance {
                let engine = self.clone();
                set.spawn(async move {
                    let mut out = Vec::new();
                    for timer in timers {
                        let result = engine.fire_timer(&instance, &timer).await;
                        let refused = matches!(result, Err(Error::Rejected(_)));
                        out.push((timer.clone(), instance.clone(), result));
                        if refused {
                            out.extend(engine.fire_timers_behind(&instance, &timer).await);
                        }
                    }
                    out
                });
            }
            let mut pending = Vec::new();
            while let Some(joined) = set.join_next().await {
                let results = joined.map_err(|e| Error::Write(format!("timer task: {e}")))?;
                for (timer, instance, result) in results {
                    match result {
                        Ok(stepped) => {
                            fired += 1;
                            pending.extend(stepped.pending);
                        }
                        Err(Error::Rejected(rejection)) => {
                            tracing::warn!(%timer, %instance, %rejection, "timer refused");
                            refused.insert((timer, instance));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            self.settle(pending).await?;
        }
        Ok(fired)
    }

    async fn fire_timer(&self, instance: &InstanceId, timer: &TimerId) -> Result<super::Stepped, Error> {
        self.run(instance.as_str(), Event::TimerFired { timer: timer.clone() }, Extra::default()).await
    }

    /// An instance's timer row names only its earliest timer: when the core refuses that one, the
    /// instance's other due timers fire without it, in due order, rather than wait behind it.
    async fn fire_timers_behind(
        &self,
        instance: &InstanceId,
        refused: &TimerId,
    ) -> Vec<(TimerId, InstanceId, Result<super::Stepped, Error>)> {
        let now = self.now();
        let state = match self.instance(instance).await {
            Ok(state) => state,
            Err(e) => return vec![(refused.clone(), instance.clone(), Err(e))],
        };
        let mut due: Vec<_> =
            state.timers().iter().filter(|(timer, wait)| *timer != refused && wait.at <= now).collect();
        due.sort_by_key(|(timer, wait)| firing_order(timer, wait));
        let due: Vec<TimerId> = due.into_iter().map(|(timer, _)| timer.clone()).collect();
        let mut out = Vec::new();
        for timer in due {
            let result = self.fire_timer(instance, &timer).await;
            out.push((timer, instance.clone(), result));
        }
        out
    }

    /// Points the cron starts of `process` (its latest version) at their next fires; a schedule
    /// that did not change keeps its cursor, so redeploying never skips or repeats a fire.
    pub(super) async fn set_schedules(&self, process: &CompiledProcess) -> Result<(), Error> {
        let now = self.now();
        let mut nodes = Vec::new();
        for node in &process.nodes {
            if let NodeKind::Start { trigger: Trigger::Schedule { schedule }, .. } = &node.kind {
                let next = schedule.next_after(now).map_or_else(never, |t| t.with_timezone(&Utc));
                nodes.push((node.name.clone(), serde_json::to_string(schedule)?, next));
            }
        }
        self.submit(Write::SetSchedules { process: process.key.clone(), nodes }).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Starts an instance for every due cron start and returns how many started. Catch-up
    /// policy "coalesce": fires missed while no engine ran start ONE instance, for the latest
    /// missed fire; the schedule then goes on from now. An instance started by a fire has the id
    /// `{process}@{fire}`, so two engine nodes firing together start it once.
    pub async fn fire_due_schedules(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut started = 0;
        for (process, node, fire) in self.inner.store.due_schedules(now).await? {
            let version = self.latest_version(&process).await?;
            let definition = self.definition(&process, version).await?;
            let schedule = definition.nodes.iter().find(|n| n.name == node).and_then(|n| match &n.kind {
                NodeKind::Start { trigger: Trigger::Schedule { schedule }, .. } => Some(schedule.clone()),
                _ => None,
            });
            let Some(schedule) = schedule else {
                self.set_schedules(&definition).await?;
                continue;
            };
            let mut latest = fire;
            while let Some(next) = schedule.next_after(latest).map(|t| t.with_timezone(&Utc)) {
                if next > now {
                    break;
                }
                latest = next;
            }
            let id = format!("{process}@{}", latest.format("%Y%m%dT%H%M%SZ"));
            let new = NewInstance {
                id: &id,
                business_key: None,
                variables: serde_json::json!({}),
                start: Some(node.clone()),
                starter: None,
            };
            let start = self.start_instance(&definition, version, new, Extra::default()).await;
            match start {
                Ok(Some(_)) => started += 1,
                Ok(None) => {}
                // A start the process refuses would be refused at every fire: it is logged, and
                // the schedule moves on rather than retrying forever.
                Err(e) => tracing::warn!(%process, %node, fire = %latest, error = %e, "scheduled start refused"),
            }
            let next = schedule.next_after(latest).map_or_else(never, |t| t.with_timezone(&Utc));
            self.submit(Write::AdvanceSchedule { process, node, from: fire, to: next }).await?;
        }
        Ok(started)
    }
}
