//! Concurrency limits per (region, class of work): additive increase, multiplicative decrease.

use std::collections::{BTreeMap, HashMap};

use crate::state::Limits;

/// Kinds of work with their own concurrency limit in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Class {
    Backup,
    Copy,
    Restore,
    TableOps,
}

/// Additive-increase, multiplicative-decrease limit of one (region, class).
#[derive(Debug)]
struct Gate {
    max: f64,
    limit: f64,
    in_flight: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    gates: HashMap<(String, Class), Gate>,
    pub(crate) peak: BTreeMap<(String, Class), usize>,
}

impl Limiter {
    fn gate(&mut self, scope: &(String, Class), limits: &Limits) -> &mut Gate {
        self.gates.entry(scope.clone()).or_insert_with(|| {
            #[allow(clippy::cast_precision_loss)]
            let max = match scope.1 {
                Class::Backup => limits.backups,
                Class::Copy => limits.copies,
                Class::Restore => limits.restores,
                Class::TableOps => limits.table_ops,
            }
            .max(1) as f64;
            Gate { max, limit: max, in_flight: 0 }
        })
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub(crate) fn try_acquire(&mut self, scope: &(String, Class), limits: &Limits) -> bool {
        let gate = self.gate(scope, limits);
        if gate.in_flight >= (gate.limit.floor() as usize).max(1) {
            return false;
        }
        gate.in_flight += 1;
        let n = gate.in_flight;
        let peak = self.peak.entry(scope.clone()).or_default();
        *peak = (*peak).max(n);
        true
    }

    pub(crate) fn release(&mut self, scope: &(String, Class)) {
        if let Some(g) = self.gates.get_mut(scope) {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }

    pub(crate) fn throttled(&mut self, scope: &(String, Class), limits: &Limits) {
        let g = self.gate(scope, limits);
        g.limit = (g.limit / 2.0).max(1.0);
    }

    pub(crate) fn succeeded(&mut self, scope: &(String, Class), limits: &Limits) {
        let g = self.gate(scope, limits);
        g.limit = (g.limit + 1.0).min(g.max);
    }
}

pub(crate) fn class_name(c: Class) -> &'static str {
    match c {
        Class::Backup => "backup jobs",
        Class::Copy => "copy jobs",
        Class::Restore => "restores",
        Class::TableOps => "table operations",
    }
}
