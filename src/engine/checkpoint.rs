//! Checkpoints as safetensors files, written atomically (temp file, fsync, rename) so a crash
//! or Ctrl-C never leaves half a file under the real name. The header metadata carries the
//! milestone, the config hash, the step and a sha256 of the tensor data, so a file of another
//! milestone, a truncated file and a corrupted file are each caught with a clear error.

use crate::error::DlError;
use anyhow::Context;
use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FORMAT: &str = "dlhist-1";

/// Tensors and metadata read back from a checkpoint.
pub struct Loaded {
    pub tensors: BTreeMap<String, Tensor>,
    pub meta: HashMap<String, String>,
}

impl Loaded {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(|s| s.as_str())
    }
    pub fn get_u64(&self, key: &str) -> u64 {
        self.get(key).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

/// Writes `tensors` (f32) and `meta` to `path` atomically.
pub fn save(path: &Path, tensors: &[(String, Tensor)], meta: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    let mut hasher = Sha256::new();
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in sorted {
        let data: Vec<f32> = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
        let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        hasher.update(name.as_bytes());
        hasher.update(&raw);
        bytes.push((name.clone(), t.dims().to_vec(), raw));
    }
    let mut meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.insert("dlhist.format".into(), FORMAT.into());
    meta.insert("dlhist.sha256".into(), format!("{:x}", hasher.finalize()));
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, shape, raw)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), raw)?)))
        .collect::<anyhow::Result<_>>()?;
    let buf = safetensors::serialize(views, Some(meta))?;
    let dir = path.parent().context("checkpoint path has no parent")?;
    std::fs::create_dir_all(dir)
        .map_err(|e| DlError::Unwritable { path: dir.to_path_buf(), message: e.to_string() })?;
    super::runs::write_atomic(path, &buf)
        .map_err(|e| DlError::Unwritable { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(())
}

/// sha256 of a file's bytes, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(format!("{:x}", Sha256::digest(std::fs::read(path)?)))
}

/// Metadata keys of a checkpoint that holds only a run's own tensors: the file that holds the
/// rest (a frozen base, from `train.init_from`), and that file's sha256.
pub const BASE: &str = "dlhist.base";
pub const BASE_SHA256: &str = "dlhist.base_sha256";

/// Reads a checkpoint like [`load`] and, when it refers to a base file for its frozen tensors,
/// adds the base's tensors it lacks (recursively: a base may have a base), after checking that
/// the base file is there and unchanged.
pub fn load_full(path: &Path, device: &Device) -> Result<Loaded, DlError> {
    let mut top = load(path, device)?;
    let Some(base) = top.get(BASE).map(std::path::PathBuf::from) else { return Ok(top) };
    let want = top.get(BASE_SHA256).unwrap_or("").to_string();
    let mismatch = |message: String| DlError::BaseChanged { path: path.to_path_buf(), base: base.clone(), message };
    let got = sha256_file(&base).map_err(|e| {
        mismatch(format!("it cannot be read ({e}); this run keeps only its own tensors and takes the frozen rest from there. Restore that run, or retrain this one"))
    })?;
    if got != want {
        return Err(mismatch(format!(
            "its sha256 is {}…, but this run was trained on {}…: the base run was retrained or overwritten. Restore it, or retrain this run",
            &got[..12],
            &want[..want.len().min(12)]
        )));
    }
    for (name, t) in load_full(&base, device)?.tensors {
        top.tensors.entry(name).or_insert(t);
    }
    Ok(top)
}

/// Reads a checkpoint, verifying its format and data checksum.
pub fn load(path: &Path, device: &Device) -> Result<Loaded, DlError> {
    let buf = std::fs::read(path).map_err(|e| DlError::MissingCheckpoint {
        path: path.to_path_buf(),
        hint: format!("{e}. Train first (`dlhist train NAME`), or pass a run directory that finished"),
    })?;
    let corrupt = |m: String| DlError::CorruptCheckpoint { path: path.to_path_buf(), message: m };
    let st = safetensors::SafeTensors::deserialize(&buf).map_err(|e| corrupt(e.to_string()))?;
    let (_, md) = safetensors::SafeTensors::read_metadata(&buf).map_err(|e| corrupt(e.to_string()))?;
    let meta: HashMap<String, String> = md.metadata().clone().unwrap_or_default();
    if meta.get("dlhist.format").map(|s| s.as_str()) != Some(FORMAT) {
        return Err(corrupt("not a dlhist checkpoint: its header lacks dlhist.format".into()));
    }
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    let mut hasher = Sha256::new();
    let mut tensors = BTreeMap::new();
    for name in names {
        let view = st.tensor(&name).map_err(|e| corrupt(e.to_string()))?;
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor {name} is {:?}, expected F32", view.dtype())));
        }
        hasher.update(name.as_bytes());
        hasher.update(view.data());
        let t = Tensor::from_raw_buffer(view.data(), candle_core::DType::F32, view.shape(), device)
            .map_err(|e| corrupt(e.to_string()))?;
        tensors.insert(name, t);
    }
    let sum = format!("{:x}", hasher.finalize());
    if meta.get("dlhist.sha256") != Some(&sum) {
        return Err(corrupt("tensor data does not match its checksum".into()));
    }
    Ok(Loaded { tensors, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_with_a_base_takes_the_rest_from_it_and_rejects_a_changed_or_missing_base() {
        let dir = tempfile::tempdir().unwrap();
        let (base, top) = (dir.path().join("base.safetensors"), dir.path().join("top.safetensors"));
        let t = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        save(&base, &[("frozen".into(), t(1.0)), ("adapter".into(), t(2.0))], &BTreeMap::new()).unwrap();
        let meta = BTreeMap::from([
            (BASE.to_string(), base.display().to_string()),
            (BASE_SHA256.to_string(), sha256_file(&base).unwrap()),
        ]);
        save(&top, &[("adapter".into(), t(3.0))], &meta).unwrap();
        let l = load_full(&top, &Device::Cpu).unwrap();
        let v = |n: &str| l.tensors[n].to_vec1::<f32>().unwrap()[0];
        assert_eq!((v("frozen"), v("adapter")), (1.0, 3.0), "the run's own tensors win over the base's");
        save(&base, &[("frozen".into(), t(9.0))], &BTreeMap::new()).unwrap();
        let e = load_full(&top, &Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("retrained or overwritten"), "{e}");
        std::fs::remove_file(&base).unwrap();
        let e = load_full(&top, &Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("cannot be read"), "{e}");
    }

    #[test]
    fn round_trips_and_detects_flipped_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        let t = Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
        let meta = BTreeMap::from([("dlhist.step".to_string(), "7".to_string())]);
        save(&p, &[("w".into(), t)], &meta).unwrap();
        let l = load(&p, &Device::Cpu).unwrap();
        assert_eq!(l.get_u64("dlhist.step"), 7);
        assert_eq!(l.tensors["w"].to_vec1::<f32>().unwrap(), vec![1., 2., 3.]);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(load(&p, &Device::Cpu), Err(DlError::CorruptCheckpoint { .. })));
        std::fs::write(&p, &bytes[..n / 2]).unwrap();
        assert!(matches!(load(&p, &Device::Cpu), Err(DlError::CorruptCheckpoint { .. })));
    }
}
