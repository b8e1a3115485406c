//! Human tasks: the inbox, claims, completion and delegation with the role, substitute and `not by` checks.

use chrono::{DateTime, Utc};

use crate::event::Event;
use crate::ids::{InstanceId, TaskId};
use crate::store;
use crate::store::{Guard, Store, TaskInfo, TaskState, Write, WriteOutcome};

use super::{Engine, Error, Extra};

impl<S: Store> Engine<S> {
    /// Open tasks, of one instance or of all.
    pub async fn tasks(&self, instance: Option<&InstanceId>) -> Result<Vec<TaskInfo>, Error> {
        Ok(self.inner.store.open_tasks(instance).await?)
    }

    /// One task, open or closed.
    pub async fn task(&self, task: &TaskId) -> Result<TaskInfo, Error> {
        self.inner.store.task(task).await?.ok_or_else(|| Error::UnknownTask(task.0.clone()))
    }

    /// The open tasks `user` (holding `roles`) may act on: of their roles, assigned to or claimed
    /// by them, or assigned to or claimed by someone they substitute for today.
    pub async fn inbox(&self, user: &str, roles: &[&str]) -> Result<Vec<TaskInfo>, Error> {
        let principals = self.inner.store.principals_of(user, self.now()).await?;
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        Ok(self.inner.store.inbox(user, &roles, &principals).await?)
    }

    /// `user` names `substitute` to act for them from `from` until `until` (out of office);
    /// `None` withdraws it. A substitute acts only for the person who named them: substitutes
    /// do not chain.
    pub async fn set_substitute(
        &self,
        user: &str,
        substitute: Option<&str>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), Error> {
        if let Some(substitute) = substitute {
            if substitute == user {
                return Err(Error::InvalidSubstitute(format!("`{user}` cannot substitute for themselves")));
            }
            if substitute.trim().is_empty() {
                return Err(Error::InvalidSubstitute("the substitute's user name is empty".into()));
            }
            if until <= from {
                return Err(Error::InvalidSubstitute(format!(
                    "the period ends ({}) before it starts ({})",
                    until.to_rfc3339(),
                    from.to_rfc3339()
                )));
            }
        }
        let write =
            Write::SetSubstitute { user: user.to_string(), substitute: substitute.map(str::to_string), from, until };
        self.submit(write).await?;
        Ok(())
    }

    /// The substitute `user` named, with the period.
    pub async fn substitute_of(&self, user: &str) -> Result<Option<store::Substitution>, Error> {
        Ok(self.inner.store.substitute_of(user).await?)
    }

    /// Claims a task for `user`, who must hold one of its roles, be its assignee, or substitute
    /// for its assignee; a user a `not by` rule bars cannot claim it. A substitute claims for the
    /// person they stand in for: the claim is that person's, so it gives the substitute nothing
    /// once the substitution ends, and the person finds the task theirs on return.
    pub async fn claim(&self, task: &TaskId, user: &str, roles: &[&str]) -> Result<(), Error> {
        let (info, principal) = self.open_task_for(task, user, roles).await?;
        self.check_separation(&info, user, principal.as_deref()).await?;
        let claimant = principal.unwrap_or_else(|| user.to_string());
        let write = Write::ClaimTask { task: info.id.0.clone(), user: Some(claimant), by: user.to_string() };
        match self.submit(write).await? {
            WriteOutcome::Claimed(true) => Ok(()),
            _ => Err(Error::TaskClaimed { task: task.0.clone() }),
        }
    }

    /// Releases a task `user` claimed, or claimed for the person `user` stands in for now.
    pub async fn unclaim(&self, task: &TaskId, user: &str) -> Result<(), Error> {
        let info = self.task(task).await?;
        if info.state != TaskState::Open {
            return Err(Error::TaskClosed { task: task.0.clone() });
        }
        let holder = match info.claimed_by {
            Some(claimant) if claimant != user => {
                let principals = self.inner.store.principals_of(user, self.now()).await?;
                if principals.contains(&claimant) { claimant } else { user.to_string() }
            }
            _ => user.to_string(),
        };
        let write = Write::ClaimTask { task: task.0.clone(), user: None, by: holder };
        match self.submit(write).await? {
            WriteOutcome::Claimed(true) => Ok(()),
            _ => Err(Error::TaskClaimed { task: task.0.clone() }),
        }
    }

    /// `user` (holding `roles`) completes a task with a form. The user must hold one of the task's
    /// roles, be its assignee, or substitute for its assignee (then they act on the assignee's
    /// behalf), and the task must not be claimed by someone else; the core checks the form and
    /// separation of duties (`not by`).
    pub async fn complete_task(
        &self,
        task: &TaskId,
        user: &str,
        roles: &[&str],
        form: serde_json::Value,
    ) -> Result<(), Error> {
        let (info, principal) = self.open_task_for(task, user, roles).await?;
        let event = Event::TaskCompleted { task: task.clone(), by: user.to_string(), on_behalf_of: principal, form };
        self.step_task(info, user, event).await
    }

    /// `user` (holding `roles`) hands a task to `to`, who then completes it on `user`'s behalf, so
    /// `not by` rules follow the task. Any claim is released.
    pub async fn delegate(&self, task: &TaskId, user: &str, roles: &[&str], to: &str) -> Result<(), Error> {
        if to.trim().is_empty() {
            return Err(Error::InvalidSubstitute("the delegate's user name is empty".into()));
        }
        let (info, principal) = self.open_task_for(task, user, roles).await?;
        let by = principal.unwrap_or_else(|| user.to_string());
        let event = Event::TaskDelegated { task: task.clone(), by, to: to.to_string() };
        self.step_task(info, user, event).await
    }

    /// Applies a task event, guarded so that the task is still open and not claimed by anyone
    /// but its holder when the step commits.
    pub(super) async fn step_task(&self, info: TaskInfo, user: &str, event: Event) -> Result<(), Error> {
        let holder = info.claimed_by.unwrap_or_else(|| user.into());
        let extra = Extra { guards: vec![Guard::TaskFree { task: info.id.0, user: holder }], ..Extra::default() };
        let stepped = self.run(info.instance_id.as_str(), event, extra).await?;
        self.settle(stepped.pending).await
    }

    /// The open task and, when `user` acts as someone's substitute, that person.
    pub(super) async fn open_task_for(
        &self,
        task: &TaskId,
        user: &str,
        roles: &[&str],
    ) -> Result<(TaskInfo, Option<String>), Error> {
        let info = self.task(task).await?;
        // A claim alone gives no right to act: the claimant must still be the assignee, hold one
        // of the roles or stand in for someone who does (a role taken away, a substitution ended).
        let own = info.assignee.as_deref() == Some(user)
            || (info.assignee.is_none() && info.roles.iter().any(|r| roles.contains(&r.as_str())));
        let principal = if own {
            None
        } else {
            let principals = self.inner.store.principals_of(user, self.now()).await?;
            let mut held_for = [info.claimed_by.as_ref(), info.assignee.as_ref()].into_iter().flatten();
            match held_for.find(|p| principals.contains(p)) {
                Some(p) => Some(p.clone()),
                None => return Err(Error::NotCandidate { user: user.to_string(), task: task.0.clone() }),
            }
        };
        // Whether it is still open is told to its candidates only.
        if info.state != TaskState::Open {
            return Err(Error::TaskClosed { task: task.0.clone() });
        }
        let holder = principal.as_deref().unwrap_or(user);
        // A claim the substitute made in their own name (before claims were their principal's)
        // still lets them act while the substitution lasts.
        if info.claimed_by.as_deref().is_some_and(|c| c != holder && c != user) {
            return Err(Error::TaskClaimed { task: task.0.clone() });
        }
        Ok((info, principal))
    }

    pub(super) async fn check_separation(
        &self,
        info: &TaskInfo,
        user: &str,
        principal: Option<&str>,
    ) -> Result<(), Error> {
        let instance = self.instance(&info.instance_id).await?;
        let definition = self.definition(&instance.process, instance.process_version).await?;
        crate::step::check_separation(&definition, &instance, &info.id, user, principal, self.now())?;
        Ok(())
    }
}
