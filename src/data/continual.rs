//! A training stream of the continual embedded Reber task (Gers, Schmidhuber & Cummins 2000;
//! `seq_tasks::ReberStream` holds a whole, finite stream): embedded Reber strings drawn one at a
//! time from the stream's own RNG, so position p of the stream is the same whichever windows were
//! asked for before (a resumed run jumps straight to its window), and only the symbols from the
//! current window on are kept.

use super::seq_tasks::embedded_reber;
use crate::rng::Rng;

/// One training stream, generated lazily: only the symbols from the current chunk on are kept.
pub struct LazyStream {
    rng: Rng,
    symbols: Vec<u8>,
    legal_next: Vec<u8>,
    /// stream position of `symbols[0]`
    base: usize,
}

impl LazyStream {
    /// The stream drawn from `rng`, one embedded string at a time.
    pub fn new(rng: Rng) -> Self {
        Self { rng, symbols: vec![], legal_next: vec![], base: 0 }
    }

    /// (symbols, legal successors) of positions `start..start + len`.
    pub fn window(&mut self, start: usize, len: usize) -> (&[u8], &[u8]) {
        while self.base + self.symbols.len() < start + len {
            let (s, n) = embedded_reber(&mut self.rng);
            self.symbols.extend(s);
            self.legal_next.extend(n);
        }
        let drop = start.saturating_sub(self.base);
        self.symbols.drain(..drop);
        self.legal_next.drain(..drop);
        self.base += drop;
        let o = start - self.base;
        (&self.symbols[o..o + len], &self.legal_next[o..o + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::seq_tasks::ReberStream;

    #[test]
    fn lazy_streams_give_the_same_symbols_whatever_the_window_order() {
        let mk = || LazyStream::new(Rng::derive(4, "reber/train", 0));
        let whole = ReberStream::generate(&mut Rng::derive(4, "reber/train", 0), 200);
        let (mut a, mut b) = (mk(), mk());
        for k in 0..30 {
            let (s, n) = a.window(k * 50, 50);
            assert_eq!((s, n), (&whole.symbols[k * 50..k * 50 + 50], &whole.legal_next[k * 50..k * 50 + 50]));
        }
        // a resumed run jumps straight to a later window
        assert_eq!(b.window(1450, 50).0, &whole.symbols[1450..1500]);
        assert!(a.symbols.len() < 100, "old symbols are dropped");
    }
}
