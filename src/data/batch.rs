//! Minibatch order as a pure function of (seed, step): epoch e visits a permutation drawn from
//! the stream ("epoch", e), so a resumed run sees exactly the batches an uninterrupted one would.

use crate::rng::Rng;

pub struct EpochSampler {
    seed: u64,
    n: usize,
    batch: usize,
    cached: Option<(usize, Vec<usize>)>,
}

impl EpochSampler {
    pub fn new(seed: u64, n: usize, batch: usize) -> Self {
        Self { seed, n, batch: batch.clamp(1, n.max(1)), cached: None }
    }

    /// Full batches per epoch (the ragged tail of a permutation is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        (self.n / self.batch).max(1)
    }

    /// Indices of batch number `step`.
    pub fn indices(&mut self, step: usize) -> Vec<usize> {
        let spe = self.steps_per_epoch();
        let epoch = step / spe;
        if self.cached.as_ref().map(|c| c.0) != Some(epoch) {
            let p = Rng::derive(self.seed, "epoch", epoch as u64).permutation(self.n);
            self.cached = Some((epoch, p));
        }
        let p = &self.cached.as_ref().unwrap().1;
        let k = step % spe;
        p[k * self.batch..(k + 1) * self.batch].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn an_epoch_visits_each_example_once_and_order_depends_only_on_seed_and_step() {
        let mut s = EpochSampler::new(3, 10, 5);
        let mut seen: Vec<usize> = (0..2).flat_map(|k| s.indices(k)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let mut fresh = EpochSampler::new(3, 10, 5);
        assert_eq!(fresh.indices(7), s.indices(7));
        assert_ne!(s.indices(2), s.indices(0));
    }
}
