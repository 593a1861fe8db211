//! `dlhist replay --merge a.json b.json …`: the --json outputs of shards joined into one table
//! (catalogue order) and one exit code, as if one machine had replayed them all.

use crate::error::DlError;
use crate::registry::entries;
use std::path::PathBuf;

/// The rows of every file, each claim once, in catalogue order.
pub fn read(files: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut rows: Vec<serde_json::Value> = vec![];
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            DlError::Usage(format!(
                "cannot read {}: {e}; --merge takes the files `dlhist replay --json` wrote",
                f.display()
            ))
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DlError::Usage(format!("{} is not the JSON of `dlhist replay --json` ({e})", f.display())))?;
        let Some(arr) = v.as_array() else {
            return Err(DlError::Usage(format!(
                "{} holds no list of claims (not `dlhist replay --json` output)",
                f.display()
            ))
            .into());
        };
        for r in arr {
            let name = r["name"].as_str().unwrap_or_default();
            if name.is_empty() || r["status"].as_str().is_none() {
                return Err(DlError::Usage(format!("{}: a row without a name or status", f.display())).into());
            }
            if rows.iter().any(|o| o["name"] == name) {
                return Err(DlError::Usage(format!(
                    "claim `{name}` is in two of the files (in {}): were two shards run with the same K?",
                    f.display()
                ))
                .into());
            }
            rows.push(r.clone());
        }
    }
    let budgets: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r["budget"].as_str()).collect();
    if budgets.len() > 1 {
        return Err(DlError::Usage(format!(
            "the files mix budgets ({}); merge shards of one replay",
            budgets.into_iter().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let order = |r: &serde_json::Value| entries().iter().position(|e| r["name"] == e.name).unwrap_or(usize::MAX);
    rows.sort_by_key(order);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    /// A value read back from a shard's JSON is the f64 that was written, to the last bit (these
    /// landed one ulp away with serde_json's default parser; the crate enables float_roundtrip).
    #[test]
    fn values_read_back_from_json_are_the_written_bits() {
        for v in [
            0.9600791290402413f64,
            0.9908333333333333,
            1.0227224042018255,
            3.2124663096046198,
            0.10453333333333337,
            1.0 / 3.0,
        ] {
            let text = serde_json::to_string(&serde_json::json!({ "value": v })).unwrap();
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["value"].as_f64().unwrap().to_bits(), v.to_bits(), "{text}");
        }
    }
}
