//! Which stages may start: each stage counts the upstream stages it still waits for, and a
//! stage's end (or a fork's settling) counts its downstream stages down. Finding the next
//! stage to start is a heap pop, not a scan of the flow, so a run is linear in its stages.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(super) struct Frontier {
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    /// A fork's branches: they see the fork once it ends; the stages after the fork see it
    /// once it is settled, when its branches are too.
    branches: Vec<Vec<usize>>,
    fork_of: Vec<Option<usize>>,
    /// Upstream stages not yet over, per stage.
    waiting: Vec<usize>,
    ended: Vec<bool>,
    settled: Vec<bool>,
    priority: Vec<u8>,
    /// Lowest priority number first, then plan order.
    ready: BinaryHeap<Reverse<(u8, usize)>>,
    in_ready: Vec<bool>,
}

impl Frontier {
    pub(super) fn new(
        upstream: Vec<Vec<usize>>,
        branches: Vec<Vec<usize>>,
        priority: Vec<u8>,
    ) -> Self {
        let n = upstream.len();
        let mut downstream = vec![Vec::new(); n];
        for (i, ups) in upstream.iter().enumerate() {
            for &u in ups {
                downstream[u].push(i);
            }
        }
        let mut fork_of = vec![None; n];
        for (fork, bs) in branches.iter().enumerate() {
            for &b in bs {
                fork_of[b] = Some(fork);
            }
        }
        let waiting = upstream.iter().map(Vec::len).collect();
        let mut frontier = Frontier {
            upstream,
            downstream,
            branches,
            fork_of,
            waiting,
            ended: vec![false; n],
            settled: vec![false; n],
            priority,
            ready: BinaryHeap::new(),
            in_ready: vec![false; n],
        };
        for i in 0..n {
            if frontier.waiting[i] == 0 {
                frontier.offer(i);
            }
        }
        frontier
    }

    /// Stage `u` has ended: its branches may start, and it (and the forks it completes) may
    /// settle. Returns the stages that settled, in order.
    pub(super) fn end(&mut self, u: usize) -> Vec<usize> {
        if std::mem::replace(&mut self.ended[u], true) {
            return Vec::new();
        }
        for b in self.branches[u].clone() {
            if self.upstream[b].contains(&u) {
                self.count_down(b);
            }
        }
        let mut settled = Vec::new();
        let mut next = Some(u);
        while let Some(s) = next.take() {
            if self.settled[s]
                || !self.ended[s]
                || !self.branches[s].iter().all(|&b| self.settled[b])
            {
                break;
            }
            self.settled[s] = true;
            settled.push(s);
            for i in self.downstream[s].clone() {
                if !self.branches[s].contains(&i) {
                    self.count_down(i);
                }
            }
            next = self.fork_of[s];
        }
        settled
    }

    /// Whether `u` is over for stage `i`: ended for its own branches, settled for the rest.
    pub(super) fn is_over(&self, u: usize, i: usize) -> bool {
        self.ended[u] && (self.settled[u] || self.branches[u].contains(&i))
    }

    /// `u` succeeded: a `first_success` stage after it may start without waiting for the
    /// rest (`first` tells which stages race). Returns those stages.
    pub(super) fn succeeded(&mut self, u: usize, first: impl Fn(usize) -> bool) -> Vec<usize> {
        let races: Vec<usize> = self.downstream[u]
            .iter()
            .copied()
            .filter(|&i| first(i) && self.is_over(u, i))
            .collect();
        for &i in &races {
            self.offer(i);
        }
        races
    }

    /// The next stage that may start, if any (it leaves the frontier; give it back with
    /// [`Frontier::offer`] when it cannot start yet).
    pub(super) fn pop(&mut self) -> Option<usize> {
        let Reverse((_, i)) = self.ready.pop()?;
        self.in_ready[i] = false;
        Some(i)
    }

    pub(super) fn offer(&mut self, i: usize) {
        if !std::mem::replace(&mut self.in_ready[i], true) {
            self.ready.push(Reverse((self.priority[i], i)));
        }
    }

    fn count_down(&mut self, i: usize) {
        self.waiting[i] = self.waiting[i].saturating_sub(1);
        if self.waiting[i] == 0 {
            self.offer(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Frontier;

    #[test]
    fn stages_become_ready_as_their_upstream_ends_lowest_priority_first() {
        // 0 -> 2, 1 -> 2; 3 alone with priority 0.
        let mut f = Frontier::new(
            vec![vec![], vec![], vec![0, 1], vec![]],
            vec![vec![]; 4],
            vec![2, 2, 2, 0],
        );
        assert_eq!(
            [f.pop(), f.pop(), f.pop(), f.pop()],
            [Some(3), Some(0), Some(1), None]
        );
        assert_eq!(f.end(0), [0]);
        assert_eq!(f.pop(), None);
        assert_eq!(f.end(1), [1]);
        assert_eq!(f.pop(), Some(2));
    }

    #[test]
    fn a_fork_settles_after_its_branches_and_only_then_frees_what_follows() {
        // 0 forks into 1 and 2 (which read it); 3 reads 0.
        let mut f = Frontier::new(
            vec![vec![], vec![0], vec![0], vec![0]],
            vec![vec![1, 2], vec![], vec![], vec![]],
            vec![2; 4],
        );
        assert_eq!(f.pop(), Some(0));
        assert_eq!(
            f.end(0),
            Vec::<usize>::new(),
            "not settled: branches running"
        );
        assert_eq!([f.pop(), f.pop(), f.pop()], [Some(1), Some(2), None]);
        assert_eq!(f.end(1), [1]);
        assert_eq!(f.end(2), [2, 0], "the last branch settles the fork");
        assert_eq!(f.pop(), Some(3));
    }
}
