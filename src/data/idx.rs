//! The idx format of MNIST and Fashion-MNIST (LeCun et al.): a big-endian header
//! `0x00 0x00 <dtype> <ndim>`, `ndim` u32 sizes, then the data. We read u8 data only
//! (magic 2049 = labels, 1 dim; 2051 = images, 3 dims).

use crate::error::DlError;
use std::path::Path;

/// Raw idx content: dimensions and bytes.
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn parse(bytes: &[u8], what: &str) -> Result<Idx, DlError> {
    let bad = |m: String| DlError::Data(format!("{what} is not a valid idx file: {m}. Re-fetch it with `make data`"));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("bad magic number".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!("element type 0x{:02x}, expected unsigned byte (0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> =
        (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let n: usize = dims.iter().product();
    if bytes.len() != header + n {
        return Err(bad(format!("expected {} data bytes for dims {dims:?}, found {}", n, bytes.len() - header)));
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}

pub fn read(path: &Path) -> Result<Idx, DlError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DlError::Data(format!("cannot read {}: {e}. Run `make data`", path.display())))?;
    parse(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_two_image_file_and_rejects_a_truncated_one() {
        let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        b.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        let idx = parse(&b, "t").unwrap();
        assert_eq!(idx.dims, vec![2, 2, 2]);
        assert_eq!(idx.data[7], 8);
        assert!(parse(&b[..b.len() - 1], "t").is_err());
        assert!(parse(&[0, 0, 0x0d, 1, 0, 0, 0, 0], "t").is_err());
    }
}
