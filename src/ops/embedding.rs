//! Embedding lookup with a one-pass scatter-add backward.
//!
//! ids (B, T) u32, table (V, D) -> e (B, T, D), e[b, t] = table[ids[b, t]] (any ids shape works:
//! the output is ids' shape plus D). The backward adds each row of de into a zero (V, D)
//! gradient at its id, accumulating repeated ids:
//!
//!   dtable[ids[i]] += de[i]      for every position i, in order
//!
//! candle_nn's Embedding goes through index_select, whose backward is a general index_add.
//! Here the vocabulary is split into one block of rows per thread; each thread walks all ids
//! and adds only the rows of its block, so no two threads write the same row and every row's
//! sum runs in position order whatever the thread count (the result is deterministic).
//!
//! `embedding_pos` adds learned positions in the same op, as GPT's input x = wte[ids] + wpe:
//! ids (B, T), pos (T, D) -> e[b, t] = table[ids[b, t]] + pos[t], and in the backward also
//! dpos[t] = Σ_b de[b, t] (from zero, in batch order). Composed, that is a broadcast add whose
//! backward is candle's `sum_keepdim` over the batch: a reduction over a leading dimension that
//! candle runs element by element with an index division each, 0.8% of a gpt recipe step. The
//! fused sums are the same additions in the same order, so the same bits.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Below this many gradient floats the scatter runs on one thread (rayon costs more).
const PAR_MIN_FLOATS: usize = 1 << 15;

/// e = table[ids]: ids (...) u32, table (V, D) f32 on CPU -> (..., D).
pub fn embedding(ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`super::fused_on`)
    if !super::fused_on(table.device(), false) {
        return embedding_ref(ids, table);
    }
    super::arg(&table.contiguous()?).apply_op1(Embedding::new(ids, table)?)
}

/// e = table[ids] + pos: ids (..., T) u32, table (V, D) and pos (T, D) f32 on CPU -> (..., T, D),
/// position t of every sequence getting row t of pos.
pub fn embedding_pos(ids: &Tensor, table: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if !super::fused_on(table.device(), false) {
        return embedding_pos_ref(ids, table, pos);
    }
    let op = Embedding::new(ids, table)?;
    let t = ids.dims().last().copied().unwrap_or(1);
    if pos.dims() != [t, op.d] || pos.dtype() != DType::F32 || !pos.device().is_cpu() {
        bail!(
            "embedding_pos: pos must be ({t}, {}) f32 on the CPU for ids {:?}, got {:?}",
            op.d,
            ids.shape(),
            pos.shape()
        )
    }
    super::arg(&table.contiguous()?).apply_op2(&super::arg(&pos.contiguous()?), EmbeddingPos(op))
}

/// The reference: `embedding_ref`, then candle's broadcast add of the positions.
pub fn embedding_pos_ref(ids: &Tensor, table: &Tensor, pos: &Tensor) -> Result<Tensor> {
    embedding_ref(ids, table)?.broadcast_add(pos)
}

/// The reference: `candle_nn::Embedding` (index_select forward, index_add backward).
pub fn embedding_ref(ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    use candle_nn::Module;
    let d = table.dim(1)?;
    candle_nn::Embedding::new(table.clone(), d).forward(ids)
}

/// The custom op on the table; the ids (checked < V) travel inside it.
struct Embedding {
    ids: Vec<u32>,
    v: usize,
    d: usize,
    /// ids' shape plus D
    shape: Shape,
}

impl Embedding {
    /// The op for `ids` into `table`, the ids checked against its V rows.
    fn new(ids: &Tensor, table: &Tensor) -> Result<Self> {
        if !table.device().is_cpu() || table.dtype() != DType::F32 {
            bail!(
                "embedding: only an f32 table on the CPU is implemented, got {:?} on {:?}",
                table.dtype(),
                table.device()
            )
        }
        if ids.dtype() != DType::U32 {
            bail!("embedding: ids must be u32, got {:?}", ids.dtype())
        }
        let (v, d) = table.dims2()?;
        let ids_v = ids.flatten_all()?.to_vec1::<u32>()?;
        if let Some(bad) = ids_v.iter().find(|&&i| i as usize >= v) {
            bail!("embedding: id {bad} is out of range for a vocabulary of {v}")
        }
        let mut dims = ids.dims().to_vec();
        dims.push(d);
        Ok(Embedding { ids: ids_v, v, d, shape: Shape::from(dims) })
    }

    /// e (N, D), N = number of ids: the rows of `table`, plus row i mod T of `pos` (T, D) if given.
    fn gather(&self, table: &[f32], pos: Option<&[f32]>) -> Vec<f32> {
        let d = self.d;
        // One thread, no zero-fill: a row copy is memory-bound, and at the workload sizes (2048
        // rows) rayon's hand-off cost more than it saved (measured).
        let mut e = Vec::with_capacity(self.ids.len() * d);
        match pos {
            None => self.ids.iter().for_each(|&id| e.extend_from_slice(&table[id as usize * d..][..d])),
            Some(_) if d == 0 => {}
            Some(pos) => {
                for (&id, p) in self.ids.iter().zip(pos.chunks_exact(d).cycle()) {
                    e.extend(table[id as usize * d..][..d].iter().zip(p).map(|(w, p)| w + p));
                }
            }
        }
        e
    }

    /// dtable (V, D) on `dev` from de (N, D).
    fn dtable(&self, de_data: &[f32], dev: &candle_core::Device) -> Result<Tensor> {
        let (v, d) = (self.v, self.d);
        let mut dtable = vec![0f32; v * d]; // (V, D)

        // the rows [lo, lo + block.len() / D) of dtable, from every position whose id falls there
        let scatter = |(bi, block): (usize, &mut [f32]), rows: usize| {
            let lo = bi * rows;
            for (&id, de_i) in self.ids.iter().zip(de_data.chunks_exact(d)) {
                let Some(r) = (id as usize).checked_sub(lo).filter(|&r| r < rows) else { continue };
                if let Some(dst) = block.get_mut(r * d..(r + 1) * d) {
                    for (a, g) in dst.iter_mut().zip(de_i) {
                        *a += g;
                    }
                }
            }
        };
        if d > 0 && v > 0 {
            if de_data.len() >= PAR_MIN_FLOATS {
                let rows = v.div_ceil(rayon::current_num_threads());
                dtable.par_chunks_mut(rows * d).enumerate().for_each(|blk| scatter(blk, rows));
            } else {
                scatter((0, &mut dtable), v);
            }
        }
        Tensor::from_vec(dtable, (v, d), dev)
    }
}

impl CustomOp1 for Embedding {
    fn name(&self) -> &'static str {
        "embedding-gather"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let table = super::cpu::cpu_f32(s, l, "embedding (table)")?;
        Ok((CpuStorage::F32(self.gather(table, None)), self.shape.clone()))
    }

    fn bwd(&self, table: &Tensor, _e: &Tensor, de: &Tensor) -> Result<Option<Tensor>> {
        if !table.track_op() {
            return Ok(None);
        }
        let de = de.contiguous()?;
        let (s, l) = de.storage_and_layout();
        Ok(Some(self.dtable(super::cpu::storage_f32(&s, l, "embedding (gradient)")?, table.device())?))
    }
}

/// `Embedding` with positions added (`embedding_pos`): the op on (table, pos).
struct EmbeddingPos(Embedding);

impl CustomOp2 for EmbeddingPos {
    fn name(&self) -> &'static str {
        "embedding-gather-positions"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let table = super::cpu::cpu_f32(s1, l1, "embedding (table)")?;
        let pos = super::cpu::cpu_f32(s2, l2, "embedding (positions)")?;
        Ok((CpuStorage::F32(self.0.gather(table, Some(pos))), self.0.shape.clone()))
    }

    fn bwd(&self, table: &Tensor, pos: &Tensor, _e: &Tensor, de: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let de = de.contiguous()?;
        let (s, l) = de.storage_and_layout();
        let de_data = super::cpu::storage_f32(&s, l, "embedding (gradient)")?;
        let dtable = table.track_op().then(|| self.0.dtable(de_data, table.device())).transpose()?;
        let dpos = match pos.track_op() {
            false => None,
            true => {
                // (T, D): Σ over the sequences of each position's rows, from zero in batch order,
                // as candle's sum over the broadcast dimension adds them
                let (t, d) = pos.dims2()?;
                let mut dpos = vec![0f32; t * d];
                // (an empty position table has nothing to sum, and chunks of 0 would panic)
                if !dpos.is_empty() {
                    for seq in de_data.chunks_exact(t * d) {
                        dpos.iter_mut().zip(seq).for_each(|(a, g)| *a += g);
                    }
                }
                Some(Tensor::from_vec(dpos, (t, d), pos.device())?)
            }
        };
        Ok((dtable, dpos))
    }
}

/// The embedding workloads, forward + backward: the LSTM's (V 65, D 64) and the GPT's
/// token table (V 65, D 128), both on B 32 × T 64 ids; and the GPT's input with its 64 learned
/// positions added (`embedding_pos` against the lookup and candle's broadcast add).
pub fn benches() -> Result<Vec<super::OpBench>> {
    use candle_core::{Device, Var};
    // (ids, table, positions) -> e; the plain lookups ignore the positions
    type Lookup = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let mut rng = crate::rng::Rng::new(13);
    let (b, t, v) = (32, 64, 65);
    let mut out = Vec::new();
    for (name, d, positions) in
        [("embedding lstm", 64, false), ("embedding gpt", 128, false), ("embedding+positions gpt", 128, true)]
    {
        let ids: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
        let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu)?;
        let mut randn = |n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
        let table = Var::from_tensor(&Tensor::from_vec(randn(v * d), (v, d), &Device::Cpu)?)?.as_tensor().clone();
        let pos = Var::from_tensor(&Tensor::from_vec(randn(t * d), (t, d), &Device::Cpu)?)?.as_tensor().clone();
        let r = Tensor::from_vec(randn(b * t * d), (b, t, d), &Device::Cpu)?;
        let run = move |f: Lookup| {
            let (ids, table, pos, r) = (ids.clone(), table.clone(), pos.clone(), r.clone());
            move || -> Result<()> { (f(&ids, &table, &pos)? * &r)?.sum_all()?.backward().map(|_| ()) }
        };
        let (fused, reference): (Lookup, Lookup) = match positions {
            true => (embedding_pos, embedding_pos_ref),
            false => (|ids, table, _| embedding(ids, table), |ids, table, _| embedding_ref(ids, table)),
        };
        let mut shape = format!("ids [{b}, {t}], table [{v}, {d}]");
        if positions {
            shape += &format!(", positions [{t}, {d}]");
        }
        out.push(super::OpBench { name, shape, fused: Box::new(run(fused)), reference: Box::new(run(reference)) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{Device, Var};

    /// e and dtable of loss = Σ e ⊙ r, fused vs candle_nn's Embedding. e must match exactly (a
    /// copy). dtable: tolerance 1e-5 relative to its largest entry: each row sums the r rows of
    /// the positions holding that id (up to N of them) — the same terms in the same (position)
    /// order as index_add, so in practice exact; 1e-5 allows for a different summation order
    /// (√N·eps ≈ 1e-6 for N ~ 300), while a wrong row or a lost repeat is of order 1.
    fn check(ids_dims: &[usize], v: usize, d: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let n: usize = ids_dims.iter().product();
        let ids: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
        let ids = Tensor::from_vec(ids, ids_dims, &Device::Cpu).unwrap();
        let table: Vec<f32> = (0..v * d).map(|_| rng.normal() as f32).collect();
        let table = Var::from_tensor(&Tensor::from_vec(table, (v, d), &Device::Cpu).unwrap()).unwrap();
        let (e, e_ref) = (embedding(&ids, &table).unwrap(), embedding_ref(&ids, &table).unwrap());
        assert_eq!(e.dims(), e_ref.dims());
        let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>();
        assert_eq!(diff(&e, &e_ref).unwrap(), 0.0, "e for ids {ids_dims:?}, table ({v}, {d})");
        let r: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let r = Tensor::from_vec(r, e.dims(), &Device::Cpu).unwrap();
        let g = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (e_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (dt, dt_ref) = (g.get(&table).unwrap(), g_ref.get(&table).unwrap());
        let scale = dt_ref.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
        let err = diff(dt, dt_ref).unwrap() / scale;
        assert!(err < 1e-5, "dtable differs by {err} for ids {ids_dims:?}, table ({v}, {d})");
    }

    #[test]
    fn matches_candle_workload_shapes() {
        check(&[32, 64], 65, 64, 1); // LSTM; the parallel scatter path, every id repeated
        check(&[32, 64], 65, 128, 2); // GPT
    }

    #[test]
    fn matches_candle_odd_sizes_batch_one() {
        check(&[1, 7], 13, 5, 3);
        check(&[1, 1], 3, 1, 4);
        check(&[3, 11], 101, 17, 5); // most ids unused: zero rows
        check(&[9], 4, 3, 6); // 1-D ids
        check(&[40, 50], 7, 33, 7); // parallel path with V not a multiple of the threads
    }

    /// Repeated ids accumulate: id 1 appears three times.
    #[test]
    fn repeated_ids_accumulate() {
        let ids = Tensor::from_vec(vec![1u32, 0, 1, 1], (1, 4), &Device::Cpu).unwrap();
        let table = Var::from_tensor(&Tensor::from_vec(vec![1f32, 2., 3., 4.], (2, 2), &Device::Cpu).unwrap()).unwrap();
        let e = embedding(&ids, &table).unwrap();
        assert_eq!(e.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [3., 4., 1., 2., 3., 4., 3., 4.]);
        let de: Vec<f32> = vec![1., 10., 2., 20., 3., 30., 4., 40.];
        let de = Tensor::from_vec(de, (1, 4, 2), &Device::Cpu).unwrap();
        let g = (e * de).unwrap().sum_all().unwrap().backward().unwrap();
        let dt = g.get(&table).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dt, [2., 20., 8., 80.]); // row 0 from position 1; row 1 from positions 0, 2, 3
    }

    /// `embedding_pos` against `embedding_ref` + candle's broadcast add: e, dtable and dpos
    /// bit for bit (the same additions in the same order), with the positions a narrowed part
    /// of a longer table as in GPT, and with a frozen token table.
    #[test]
    fn positions_match_the_broadcast_add_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for (b, t, v, d, block, frozen) in
            [(6, 64, 65, 128, 64, false), (3, 5, 11, 17, 9, false), (2, 4, 7, 3, 4, true)]
        {
            let mut rng = Rng::new(b as u64);
            let ids: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
            let ids = Tensor::from_vec(ids, (b, t), &dev)?;
            let mut randn = |n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
            let table = Tensor::from_vec(randn(v * d), (v, d), &dev)?;
            let table = if frozen { table } else { Var::from_tensor(&table)?.as_tensor().clone() };
            let wpe = Var::from_tensor(&Tensor::from_vec(randn(block * d), (block, d), &dev)?)?;
            let r = Tensor::from_vec(randn(b * t * d), (b, t, d), &dev)?;
            let run = |f: fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>| -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
                let e = f(&ids, &table, &wpe.narrow(0, 0, t)?)?;
                let g = (&e * &r)?.sum_all()?.backward()?;
                let mut grads = vec![g.get(&wpe).expect("dwpe").flatten_all()?.to_vec1()?];
                if let Some(dt) = g.get(&table) {
                    grads.push(dt.flatten_all()?.to_vec1()?);
                }
                Ok((e.flatten_all()?.to_vec1()?, grads))
            };
            let (fused, reference) = (run(embedding_pos)?, run(embedding_pos_ref)?);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused.0), bits(&reference.0), "e at B {b} T {t} V {v} D {d}");
            assert_eq!(fused.1.len(), if frozen { 1 } else { 2 }, "a frozen table gets no gradient");
            for (i, (f, r)) in fused.1.iter().zip(&reference.1).enumerate() {
                assert_eq!(bits(f), bits(r), "gradient {i} (0: wpe, 1: table) at B {b} T {t} V {v} D {d}");
            }
        }
        Ok(())
    }

    /// Zero-width vectors and empty sequences give empty outputs and gradients, no panic.
    #[test]
    fn empty_positions_and_widths_work() -> Result<()> {
        for (t, d) in [(3, 0), (0, 4)] {
            let ids = Tensor::zeros((2, t), DType::U32, &Device::Cpu)?;
            let table = Var::from_tensor(&Tensor::zeros((5, d), DType::F32, &Device::Cpu)?)?;
            let pos = Var::from_tensor(&Tensor::zeros((t, d), DType::F32, &Device::Cpu)?)?;
            let e = embedding_pos(&ids, &table, &pos)?;
            assert_eq!(e.dims(), [2, t, d]);
            let g = e.sum_all()?.backward()?;
            assert_eq!(g.get(&pos).map(|g| g.dims().to_vec()), Some(vec![t, d]));
        }
        Ok(())
    }

    #[test]
    fn rejects_positions_of_the_wrong_shape() {
        let table = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![0u32, 1, 2], (1, 3), &Device::Cpu).unwrap();
        let pos = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(); // 2 rows for T = 3
        let err = embedding_pos(&ids, &table, &pos).unwrap_err().to_string();
        assert!(err.contains("pos must be (3, 3)"), "{err}");
    }

    #[test]
    fn rejects_bad_ids() {
        let table = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![0u32, 4], (1, 2), &Device::Cpu).unwrap();
        assert!(embedding(&ids, &table).is_err()); // id 4 with V = 4
        let ids = Tensor::from_vec(vec![0f32, 1.], (1, 2), &Device::Cpu).unwrap();
        assert!(embedding(&ids, &table).is_err()); // not u32
    }
}
