//! The autoscaling policy: from measured stage costs to worker counts, as a pure function.
//!
//! # Rule
//!
//! Each stage's *cost* is the CPU time it spends per item (busy time ÷ items), the median of
//! the last few ticks so that one noisy tick changes nothing. A stage with `w` workers can
//! pass `w / cost` items per second; the whole pipeline can never pass more than
//! `budget / Σ cost`, where the budget is how many workers may be busy at once (by default
//! the number of cores). Starting from each stage's minimum, the policy gives one more
//! worker at a time to the stage with the least capacity (the bottleneck), as long as that
//! capacity is clearly (5%) below the CPU bound and the stage is below its maximum:
//!
//! ```text
//! W2 (costs 1, 1, 4, 1) on 2 cores: bound 2/7; c has 1/4 < 0.95 × 2/7, so c gets a second
//! worker; then every stage passes at least 2/7: workers 1, 1, 2, 1.
//! ```
//!
//! A pipeline with more stages than cores still gets its heavy stage widened, while its
//! light stages keep the one worker each needs.
//!
//! # Hysteresis
//!
//! A stage moves one worker per tick towards its target. Its first move follows the first
//! measurement; every later one waits until the target has said the same for
//! [`Policy::patience`] ticks in a row. Together with the median over three ticks, a noisy
//! measurement cannot make it oscillate, and a real change of cost is followed within about
//! three ticks.
//!
//! The controller feeds it one sample per *segment*: a fused run of stages counts as one
//! stage, whose cost is the busy time of all its stages per item its first stage takes in.
//! So "stage" below means a segment.
//!
//! This module is pure (no clocks, no threads), so its decisions are tested on simulated
//! measurements.

use std::collections::VecDeque;
use std::fmt;

use crate::metrics::describe_fill;

/// What the controller measured of one stage over the last tick.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StageSample {
    /// The stage's (or the fused segment's `a+b+c`) name.
    pub name: String,
    /// Whether the controller may change its workers.
    pub auto: bool,
    /// Its workers now.
    pub workers: usize,
    /// Bounds on its workers.
    pub min: usize,
    /// See [`min`](StageSample::min).
    pub max: usize,
    /// Items it took in during the tick.
    pub items: u64,
    /// Busy time of its workers during the tick, in nanoseconds.
    pub busy_ns: u64,
    /// Share of its workers' time spent busy during the tick (0 to 1).
    pub busy_share: f64,
    /// Mean fill of its input queue (0 to 1).
    pub queue_fill: f64,
}

/// One change of a stage's (or a fused segment's) worker count, and why; or the split of a
/// run of stages fused at the start, with the count unchanged
/// ([`DecisionReason::Split`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Decision {
    /// The stage's position in the pipeline; for a fused segment, its first stage's.
    pub stage: usize,
    /// Its name; for a fused segment, its stages' names joined by `+` (`a+b+c`).
    pub name: String,
    /// Workers before.
    pub from: usize,
    /// Workers after.
    pub to: usize,
    /// The evidence. Its `Display` reads e.g.
    /// `+1 worker to c: 57% of the chain's cost, 98% busy, input queue full (92%)`.
    pub reason: DecisionReason,
}

/// Why the controller changed a stage's worker count, or split a fused run: the
/// measurements it acted on.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DecisionReason {
    /// The stage's share of the pipeline's CPU cost per item calls for more (or fewer)
    /// workers than it has, within the CPU budget.
    #[non_exhaustive]
    CostShare {
        /// The stage's (or fused segment's `a+b+c`) name.
        stage: String,
        /// Whether it gets a worker (`true`) or gives one up.
        grow: bool,
        /// Its share of the chain's cost per item (0 to 1).
        cost_share: f64,
        /// Share of its workers' time spent busy over the last tick (0 to 1).
        busy_share: f64,
        /// Mean fill of its input queue over the last tick (0 to 1).
        queue_fill: f64,
    },
    /// A fixed stage that started fewer workers than its count (more than the CPU budget,
    /// see [`PipelineBuilder::lazy_workers`](crate::PipelineBuilder::lazy_workers)) had
    /// its workers busy and none waiting for input or room: it starts more, up to its count.
    #[non_exhaustive]
    AllBusy {
        /// The stage's (or fused segment's `a+b+c`) name.
        stage: String,
        /// The worker count the stage set.
        count: usize,
        /// Share of its workers' time spent busy over the last tick (0 to 1).
        busy_share: f64,
    },
    /// Fixed stages with equal worker counts that started fused (see
    /// [`PipelineBuilder::adaptive_fusion`](crate::PipelineBuilder::adaptive_fusion)) had
    /// their workers busy and none waiting for input or room: each stage now runs on
    /// workers of its own (its count of them), so the stages run at once rather than in
    /// turn. The worker count of each stage is unchanged.
    #[non_exhaustive]
    Split {
        /// The fused stages' names, `a+b+c`.
        stages: String,
        /// Share of their workers' time spent busy over the last tick (0 to 1).
        busy_share: f64,
    },
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionReason::CostShare {
                stage,
                grow,
                cost_share,
                busy_share,
                queue_fill,
            } => {
                if *grow {
                    write!(f, "+1 worker to {stage}")?;
                } else {
                    write!(f, "-1 worker from {stage}")?;
                }
                write!(
                    f,
                    ": {:.0}% of the chain's cost, {:.0}% busy, input queue {} ({:.0}%)",
                    cost_share * 100.0,
                    busy_share * 100.0,
                    describe_fill(*queue_fill),
                    queue_fill * 100.0
                )
            }
            DecisionReason::AllBusy {
                stage,
                count,
                busy_share,
            } => write!(
                f,
                "more workers to {stage}: {:.0}% busy, none waiting for input or room (toward its count of {count})",
                busy_share * 100.0
            ),
            DecisionReason::Split { stages, busy_share } => write!(
                f,
                "split {stages} into stages of their own: {:.0}% busy, none waiting for input or room",
                busy_share * 100.0
            ),
        }
    }
}

/// The controller's memory between ticks.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// Workers that may be busy at once.
    pub budget: usize,
    /// Ticks a target must hold before a stage moves.
    pub patience: u32,
    /// How far below the CPU bound a bottleneck must be to get another worker (0 to 1).
    pub tolerance: f64,
    /// Recent costs (ns per item) of each stage, newest last.
    recent: Vec<VecDeque<f64>>,
    streak: Vec<(usize, u32)>,
    /// Whether each stage has moved yet.
    moved: Vec<bool>,
}

/// Ticks of cost history the median is taken over.
const HISTORY: usize = 3;

impl Policy {
    /// A policy for `stages` stages within `budget` busy workers.
    pub(crate) fn new(stages: usize, budget: usize) -> Self {
        Policy {
            budget: budget.max(1),
            patience: 2,
            tolerance: 0.05,
            recent: vec![VecDeque::new(); stages],
            streak: vec![(0, 0); stages],
            moved: vec![false; stages],
        }
    }

    /// A stage's cost: the median of its recent costs, if it has any.
    fn cost(&self, stage: usize) -> Option<f64> {
        let recent = self.recent.get(stage)?;
        if recent.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        Some(sorted[sorted.len() / 2])
    }

    /// The worker counts the measured costs call for (before hysteresis).
    pub(crate) fn targets(&self, samples: &[StageSample]) -> Vec<usize> {
        let costs: Vec<Option<f64>> = (0..samples.len()).map(|i| self.cost(i)).collect();
        let mut workers: Vec<usize> = samples
            .iter()
            .map(|s| if s.auto { s.min.max(1) } else { s.workers })
            .collect();
        if costs.iter().any(Option::is_none) {
            // Until every stage has been measured, keep what there is.
            return samples.iter().map(|s| s.workers).collect();
        }
        let costs: Vec<f64> = costs.into_iter().flatten().map(|c| c.max(1e-3)).collect();
        let bound = self.budget as f64 / costs.iter().sum::<f64>();
        loop {
            let (b, capacity) = workers
                .iter()
                .zip(&costs)
                .map(|(&w, &c)| w as f64 / c)
                .enumerate()
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .expect("a pipeline has stages");
            let s = &samples[b];
            if !s.auto || workers[b] >= s.max || capacity >= (1.0 - self.tolerance) * bound {
                return workers;
            }
            workers[b] += 1;
        }
    }

    /// Takes one tick's samples and returns the changes to make now.
    pub(crate) fn tick(&mut self, samples: &[StageSample]) -> Vec<Decision> {
        for (i, s) in samples.iter().enumerate() {
            if let (true, Some(recent)) = (s.items > 0, self.recent.get_mut(i)) {
                if recent.len() == HISTORY {
                    recent.pop_front();
                }
                recent.push_back(s.busy_ns as f64 / s.items as f64);
            }
        }
        let targets = self.targets(samples);
        let total_cost: f64 = (0..samples.len()).filter_map(|i| self.cost(i)).sum();
        let mut decisions = Vec::new();
        for (i, (s, &target)) in samples.iter().zip(&targets).enumerate() {
            if !s.auto || i >= self.streak.len() {
                continue;
            }
            let streak = &mut self.streak[i];
            if target == s.workers {
                *streak = (target, 0);
                continue;
            }
            if streak.0 == target {
                streak.1 += 1;
            } else {
                *streak = (target, 1);
            }
            // A stage's first move needs one sighting: a wrong first guess costs little and
            // is undone; later moves need the target to hold for `patience` ticks.
            let needed = if self.moved[i] { self.patience } else { 1 };
            if streak.1 < needed {
                continue;
            }
            self.moved[i] = true;
            let to = if target > s.workers {
                s.workers + 1
            } else {
                s.workers - 1
            };
            streak.1 = 0;
            let share = match (self.cost(i), total_cost > 0.0) {
                (Some(c), true) => c / total_cost,
                _ => 0.0,
            };
            let reason = DecisionReason::CostShare {
                stage: s.name.clone(),
                grow: to > s.workers,
                cost_share: share,
                busy_share: s.busy_share,
                queue_fill: s.queue_fill,
            };
            decisions.push(Decision {
                stage: i,
                name: s.name.clone(),
                from: s.workers,
                to,
                reason,
            });
        }
        decisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, workers: usize, items: u64, ns_per_item: u64) -> StageSample {
        StageSample {
            name: name.into(),
            auto: true,
            workers,
            min: 1,
            max: 16,
            items,
            busy_ns: items * ns_per_item,
            busy_share: 0.9,
            queue_fill: 0.9,
        }
    }

    /// W2's costs: spin 1, 1, 4, 1.
    fn w2(workers: [usize; 4]) -> Vec<StageSample> {
        ["a", "b", "c", "d"]
            .iter()
            .zip(workers)
            .zip([1, 1, 4, 1])
            .map(|((name, w), cost)| sample(name, w, 1000, cost * 1000))
            .collect()
    }

    #[test]
    fn targets_follow_each_stages_share_of_the_cost() {
        let mut p = Policy::new(4, 2);
        p.tick(&w2([1, 1, 1, 1]));
        assert_eq!(p.targets(&w2([1, 1, 1, 1])), vec![1, 1, 2, 1]);
        let mut p = Policy::new(4, 7);
        p.tick(&w2([1, 1, 1, 1]));
        assert_eq!(p.targets(&w2([1, 1, 1, 1])), vec![1, 1, 4, 1]);
    }

    #[test]
    fn the_first_move_is_at_once_and_later_ones_wait_for_the_target_to_hold() {
        let mut p = Policy::new(4, 7);
        let d = p.tick(&w2([1, 1, 1, 1]));
        assert_eq!(d.len(), 1, "the first move follows the first measurement");
        assert_eq!((d[0].name.as_str(), d[0].from, d[0].to), ("c", 1, 2));
        assert!(
            d[0].reason
                .to_string()
                .starts_with("+1 worker to c: 57% of the chain's cost, 90% busy, input queue full"),
            "{}",
            d[0].reason
        );
        assert!(p.tick(&w2([1, 1, 2, 1])).is_empty(), "one sighting: wait");
        let d = p.tick(&w2([1, 1, 2, 1]));
        assert_eq!((d[0].from, d[0].to), (2, 3), "one worker at a time");
    }

    #[test]
    fn noise_that_does_not_persist_changes_nothing() {
        let mut p = Policy::new(2, 2);
        let steady = |w: [usize; 2], c: [u64; 2]| {
            vec![sample("x", w[0], 1000, c[0]), sample("y", w[1], 1000, c[1])]
        };
        for _ in 0..5 {
            assert!(p.tick(&steady([1, 1], [1000, 1000])).is_empty());
        }
        // One outlier tick, then back to equal costs: no move.
        assert!(p.tick(&steady([1, 1], [1000, 9000])).is_empty());
        for _ in 0..5 {
            assert!(p.tick(&steady([1, 1], [1000, 1000])).is_empty());
        }
    }

    #[test]
    fn a_change_of_cost_mid_run_is_followed() {
        let mut p = Policy::new(2, 4);
        let mut workers = [1usize, 1];
        let run = |p: &mut Policy, workers: &mut [usize; 2], cost: [u64; 2], ticks: usize| {
            for _ in 0..ticks {
                let s = vec![
                    sample("x", workers[0], 1000, cost[0]),
                    sample("y", workers[1], 1000, cost[1]),
                ];
                for d in p.tick(&s) {
                    workers[d.stage] = d.to;
                }
            }
        };
        run(&mut p, &mut workers, [3000, 1000], 20);
        assert_eq!(workers, [3, 1]);
        run(&mut p, &mut workers, [1000, 3000], 20);
        assert_eq!(workers, [1, 3]);
    }

    #[test]
    fn bounds_and_fixed_stages_are_respected() {
        let mut p = Policy::new(2, 8);
        let mut s = vec![sample("x", 1, 1000, 7000), sample("y", 1, 1000, 1000)];
        s[0].max = 2;
        s[1].auto = false;
        p.tick(&s);
        assert_eq!(p.targets(&s), vec![2, 1]);
    }

    #[test]
    fn stages_without_items_keep_their_workers() {
        let mut p = Policy::new(2, 4);
        let s = vec![sample("x", 2, 0, 0), sample("y", 1, 0, 0)];
        for _ in 0..4 {
            assert!(p.tick(&s).is_empty());
        }
    }
}
