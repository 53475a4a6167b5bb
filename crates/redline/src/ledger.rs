//! The probe budget and log each client keeps for one channel, as plain state (the client
//! stores it). Every probe is checked against it before this side starts or answers, and is
//! logged from the moment this side commits to it, with its result or why it aborted.
//!
//! A probe counts against the budget as soon as it starts, even if it later aborts: the side
//! that asked learns the result before the other does, so an abort does not undo a probe.

use serde::{Deserialize, Serialize};

use crate::error::{RedlineError, Result};
use crate::messages::ProbeId;
use crate::probe::ProbeResult;
use crate::terms::{MayAsk, ProbeTerms, normalise_label};

/// How many probes a channel allows, agreed by both sides and enforced by each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeBudget {
    /// Probes per issue within one phase (a package probe counts for each of its issues).
    pub per_issue: u32,
    /// Probes of any kind within one phase.
    pub per_phase: u32,
}

/// One side's budget and log for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeLedger {
    me: String,
    budget: ProbeBudget,
    log: ProbeLog,
}

/// Every probe this side asked or answered, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeLog {
    entries: Vec<LogEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub probe_id: ProbeId,
    pub terms: ProbeTerms,
    pub asked_by: AskedBy,
    pub status: ProbeStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AskedBy {
    Us,
    Them,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeStatus {
    /// Started or answered; no result yet.
    Running,
    Done(ProbeResult),
    /// Aborted, with the error shown to the user.
    Aborted(String),
}

impl ProbeLog {
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    pub fn get(&self, id: &ProbeId) -> Option<&LogEntry> {
        self.entries.iter().find(|e| e.probe_id == *id)
    }

    /// Probes in `phase`, and those of them touching `issue` when given. Phases and issues are
    /// compared normalised ([`normalise_label`]): "Months " and "months" share one budget.
    fn count(&self, phase: &str, issue: Option<&str>) -> u32 {
        let (phase, issue) = (normalise_label(phase), issue.map(normalise_label));
        let touches = |e: &&LogEntry| {
            issue.as_ref().is_none_or(|i| e.terms.issues().into_iter().any(|t| normalise_label(t) == *i))
        };
        let n =
            self.entries.iter().filter(|e| normalise_label(&e.terms.phase) == phase).filter(touches).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl ProbeLedger {
    /// A ledger for the side labelled `me` under the channel's agreed budget.
    pub fn new(me: impl Into<String>, budget: ProbeBudget) -> Self {
        Self { me: me.into(), budget, log: ProbeLog::default() }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn budget(&self) -> ProbeBudget {
        self.budget
    }

    pub fn log(&self) -> &ProbeLog {
        &self.log
    }

    /// Probes still allowed on `issue` in `phase`.
    pub fn remaining(&self, phase: &str, issue: &str) -> u32 {
        let on_issue = self.budget.per_issue.saturating_sub(self.log.count(phase, Some(issue)));
        on_issue.min(self.budget.per_phase.saturating_sub(self.log.count(phase, None)))
    }

    /// May this side start a probe under `terms` now?
    pub fn check_start(&self, terms: &ProbeTerms) -> Result<()> {
        if matches!(&terms.may_ask, MayAsk::Only(side) if *side != self.me) {
            return Err(RedlineError::NotAllowedToAsk(self.me.clone()));
        }
        self.check_budget(terms)
    }

    /// May this side answer the probe `id` under `terms` now? Refuses a probe answered before.
    pub fn check_answer(&self, terms: &ProbeTerms, id: &ProbeId) -> Result<()> {
        if self.log.get(id).is_some() {
            return Err(RedlineError::Replayed);
        }
        if matches!(&terms.may_ask, MayAsk::Only(side) if *side == self.me) {
            return Err(RedlineError::NotAllowedToAsk("the other side".into()));
        }
        self.check_budget(terms)
    }

    fn check_budget(&self, terms: &ProbeTerms) -> Result<()> {
        let spent = |scope: String, used: u32, limit: u32| RedlineError::BudgetSpent { scope, used, limit };
        let in_phase = self.log.count(&terms.phase, None);
        if in_phase >= self.budget.per_phase {
            return Err(spent(format!("in phase \"{}\"", terms.phase), in_phase, self.budget.per_phase));
        }
        for issue in terms.issues() {
            let used = self.log.count(&terms.phase, Some(issue));
            if used >= self.budget.per_issue {
                return Err(spent(format!("on issue \"{issue}\""), used, self.budget.per_issue));
            }
        }
        Ok(())
    }

    /// Commits to a probe: from here on it counts against the budget.
    pub(crate) fn open(&mut self, probe_id: ProbeId, terms: &ProbeTerms, asked_by: AskedBy) {
        let status = ProbeStatus::Running;
        self.log.entries.push(LogEntry { probe_id, terms: terms.clone(), asked_by, status });
    }

    /// Records how a running probe ended.
    pub(crate) fn close(&mut self, id: &ProbeId, status: ProbeStatus) -> Result<()> {
        let entry =
            self.log.entries.iter_mut().find(|e| e.probe_id == *id && e.status == ProbeStatus::Running);
        let entry = entry.ok_or(RedlineError::ApiMisuse("no running probe with this id in this ledger"))?;
        entry.status = status;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terms::tests::{packages, single};

    #[test]
    fn budget_counts_per_issue_and_per_phase() {
        let mut ledger = ProbeLedger::new("A", ProbeBudget { per_issue: 2, per_phase: 3 });
        let months = single(120);
        for _ in 0..2 {
            ledger.check_start(&months).unwrap();
            ledger.open(ProbeId::random(), &months, AskedBy::Us);
        }
        assert_eq!(ledger.remaining("exploratory", "months"), 0);
        let err = ledger.check_start(&months).unwrap_err();
        assert_eq!(err, RedlineError::BudgetSpent { scope: "on issue \"months\"".into(), used: 2, limit: 2 });
        let mut other_issue = single(120);
        if let crate::terms::ProbeKind::Single(s) = &mut other_issue.kind {
            s.issue = "troops".into();
        }
        ledger.check_start(&other_issue).unwrap();
        ledger.open(ProbeId::random(), &other_issue, AskedBy::Them);
        assert!(matches!(ledger.check_start(&packages(2, 2, 2)), Ok(())), "another phase");
        let mut again = single(120);
        again.phase = "exploratory".into();
        if let crate::terms::ProbeKind::Single(s) = &mut again.kind {
            s.issue = "ports".into();
        }
        assert!(matches!(ledger.check_start(&again), Err(RedlineError::BudgetSpent { limit: 3, .. })));
    }

    #[test]
    fn who_may_ask_is_enforced_on_both_ends() {
        let mut terms = single(10);
        terms.may_ask = MayAsk::Only("B".into());
        let a = ProbeLedger::new("A", ProbeBudget { per_issue: 9, per_phase: 9 });
        let b = ProbeLedger::new("B", ProbeBudget { per_issue: 9, per_phase: 9 });
        assert_eq!(a.check_start(&terms), Err(RedlineError::NotAllowedToAsk("A".into())));
        assert!(b.check_start(&terms).is_ok());
        assert!(a.check_answer(&terms, &ProbeId::random()).is_ok());
        assert!(b.check_answer(&terms, &ProbeId::random()).is_err());
    }

    #[test]
    fn an_answered_probe_cannot_be_answered_again() {
        let mut b = ProbeLedger::new("B", ProbeBudget { per_issue: 9, per_phase: 9 });
        let id = ProbeId::random();
        b.open(id, &single(10), AskedBy::Them);
        assert_eq!(b.check_answer(&single(10), &id), Err(RedlineError::Replayed));
        b.close(&id, ProbeStatus::Aborted("x".into())).unwrap();
        assert!(b.close(&id, ProbeStatus::Running).is_err(), "closed once");
    }
}
