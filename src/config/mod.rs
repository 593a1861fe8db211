//! Config resolution: milestone defaults <- variant <- preset (or `-c FILE`) <- `--set k=v`.
//!
//! Every layer is merged into the defaults table with checks: a key the defaults lack is an
//! error naming the closest key; a value of another type is an error with an example. The
//! merged table is then deserialised into the milestone's typed config (serde, deny_unknown_fields).

mod train;

pub use train::{GroupConfig, OptimKind, ScheduleKind, TrainConfig, GROUP_KEYS};

use crate::error::{closest, DlError};
use toml::{Table, Value};

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn example(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Checks that `new` may replace `old` and returns the value to store. Integers widen to
/// floats (also inside lists); list elements must have the default elements' type.
fn coerce(key: &str, old: &Value, new: Value) -> Result<Value, DlError> {
    let widen = |v: &Value| match v {
        Value::Integer(i) => Value::Float(*i as f64),
        o => o.clone(),
    };
    let same = |a: &Value, b: &Value| std::mem::discriminant(a) == std::mem::discriminant(b);
    let out = match (old, &new) {
        (Value::Float(_), Value::Integer(_)) => Some(widen(&new)),
        (Value::Array(a), Value::Array(b)) => match a.first() {
            None => Some(new.clone()),
            Some(Value::Float(_)) => {
                let b: Vec<Value> = b.iter().map(widen).collect();
                b.iter().all(|x| same(x, &a[0])).then_some(Value::Array(b))
            }
            Some(first) => b.iter().all(|x| same(x, first)).then(|| new.clone()),
        },
        (a, b) => same(a, b).then(|| new.clone()),
    };
    out.ok_or_else(|| DlError::WrongType {
        key: key.to_string(),
        expected: type_name(old).into(),
        got: format!("{} ({})", type_name(&new), example(&new)),
        example: example(old),
    })
}

fn all_keys(t: &Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if let Value::Table(sub) = v {
            if prefix == "train.groups" {
                // a group's table lists only the keys set so far; it may set any of these
                out.extend(GROUP_KEYS.iter().map(|g| format!("{path}.{g}")));
            } else {
                all_keys(sub, &path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// The value whose type a group key `train.groups.NAME.KEY` takes: `[train]`'s `KEY`, when NAME
/// is a declared group and KEY one of [`GROUP_KEYS`] (a group inherits what it does not set).
fn group_key_default<'a>(root: &'a Table, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix("train.groups.")?;
    let (group, key) = rest.split_once('.')?;
    let declared = root.get("train")?.get("groups")?.get(group)?.is_table();
    (declared && GROUP_KEYS.contains(&key)).then(|| root.get("train")?.get(key))?
}

fn unknown_key(root: &Table, key: &str, milestone: &str) -> DlError {
    let mut keys = vec![];
    all_keys(root, "", &mut keys);
    let last = key.rsplit('.').next().unwrap_or(key);
    // try the full dotted path first, then the last segment against every key's last segment
    let suggestion = closest(key, keys.iter().map(|s| s.as_str()))
        .or_else(|| keys.iter().find(|k| k.rsplit('.').next() == Some(last)).cloned());
    let section = key.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or_default();
    let mut valid: Vec<&String> = keys
        .iter()
        .filter(|k| {
            k.rsplit_once('.').map(|(s, _)| s) == Some(section.as_str()) || (section.is_empty() && !k.contains('.'))
        })
        .collect();
    if valid.is_empty() {
        valid = keys.iter().collect();
    }
    let valid = valid.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    DlError::UnknownKey { key: key.to_string(), suggestion, valid, milestone: milestone.to_string() }
}

/// `--set data=fashion` where `data` is a section: name its keys, and suggest the one that takes
/// a value of that type (`--set data.dataset=fashion`).
fn not_a_table(path: &str, table: &Table, given: &Value) -> DlError {
    let same = |v: &Value| std::mem::discriminant(v) == std::mem::discriminant(given);
    let keys: Vec<String> = table.iter().filter(|(_, v)| !v.is_table()).map(|(k, _)| format!("{path}.{k}")).collect();
    let raw = match given {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let example = match table.iter().find(|(_, v)| same(v)) {
        Some((k, _)) => format!("; e.g. --set {path}.{k}={raw}"),
        None => String::new(),
    };
    DlError::BadValue {
        context: format!("`{path}`"),
        message: format!("it is a section, not a value: set one of its keys ({}){example}", keys.join(", ")),
    }
}

/// serde's "unknown variant `adamm`, expected one of `sgd`, `adam`…\nin `optimizer`" as one line
/// that names the key, suggests the closest name and lists the others.
fn tidy_serde_error(section: &str, raw: &str) -> (String, String) {
    let raw = raw.trim();
    let (msg, field) = match raw.rsplit_once("\nin `") {
        Some((m, f)) => (m.trim(), Some(f.trim_end_matches('`'))),
        None => (raw, None),
    };
    let context = match field {
        Some(f) => format!("{section}.{f}"),
        None => format!("[{section}]"),
    };
    let unknown = msg.strip_prefix("unknown variant `").and_then(|r| r.split_once("`, expected one of "));
    let message = match unknown {
        Some((bad, list)) => {
            let names: Vec<&str> = list.split(", ").map(|n| n.trim_matches('`')).collect();
            let hint =
                closest(bad, names.iter().copied()).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default();
            format!("unknown value `{bad}`{hint}; it takes one of {}", names.join(", "))
        }
        // serde names Rust's types: "invalid value: integer `-3`, expected usize"
        None => msg.replace('\n', " ").replace("expected usize", "expected a whole number of 0 or more"),
    };
    (context, message)
}

/// Merges `over` into `base`, rejecting keys `base` lacks and values of the wrong type.
pub fn merge(base: &mut Table, over: &Table, milestone: &str) -> Result<(), DlError> {
    let root = base.clone();
    merge_at(base, over, "", &root, milestone)
}

fn merge_at(base: &mut Table, over: &Table, prefix: &str, root: &Table, milestone: &str) -> Result<(), DlError> {
    for (k, v) in over {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match base.get_mut(k) {
            None => match group_key_default(root, &path) {
                Some(old) => {
                    base.insert(k.clone(), coerce(&path, old, v.clone())?);
                }
                None => return Err(unknown_key(root, &path, milestone)),
            },
            Some(Value::Table(bt)) => match v {
                Value::Table(ot) => merge_at(bt, ot, &path, root, milestone)?,
                other => return Err(not_a_table(&path, bt, other)),
            },
            Some(old) => *old = coerce(&path, old, v.clone())?,
        }
    }
    Ok(())
}

/// Parses TOML text into a table; `what`/`path` name it in the error.
pub fn parse_toml(text: &str, what: &'static str, path: &str) -> Result<Table, DlError> {
    text.parse::<Table>().map_err(|e| DlError::Malformed {
        what,
        path: path.to_string(),
        message: e.to_string().trim().replace('\n', " "),
    })
}

/// Applies one `--set key.path=value`. The value is read as TOML (`256`, `0.1`, `true`,
/// `[512, 256]`, `"adam"`); a bare word is taken as a string when the key holds a string.
pub fn apply_set(base: &mut Table, assignment: &str, milestone: &str) -> Result<(), DlError> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| {
        DlError::Usage(format!("--set expects key=value (e.g. --set train.lr=0.01), got `{assignment}`"))
    })?;
    let key = key.trim();
    let raw = raw.trim();
    let parts: Vec<&str> = key.split('.').collect();
    // find the current value to learn its type
    let root = base.clone();
    let whole = Value::Table(base.clone());
    let mut cur: &Value = &whole;
    for p in &parts {
        cur = match cur {
            Value::Table(t) => match t.get(*p) {
                Some(v) => v,
                None => group_key_default(&root, key).ok_or_else(|| unknown_key(&root, key, milestone))?,
            },
            _ => return Err(unknown_key(&root, key, milestone)),
        };
    }
    let parsed = match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap(),
        Err(_) => Value::String(raw.to_string()),
    };
    let value = match (cur, parsed) {
        (Value::String(_), p) if !matches!(p, Value::String(_)) => Value::String(raw.to_string()),
        (_, p) => p,
    };
    // build a nested override table and merge it
    let mut over = Table::new();
    let mut node = &mut over;
    for p in &parts[..parts.len() - 1] {
        node = node.entry(p.to_string()).or_insert_with(|| Value::Table(Table::new())).as_table_mut().unwrap();
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    merge(base, &over, milestone)
}

/// The dotted keys whose values differ between two resolved configs, with the value in `a` and
/// in `b` (a key only one of them has counts as different; its missing value reads "-").
pub fn diff_keys(a: &Table, b: &Table) -> Vec<(String, String, String)> {
    fn walk(a: Option<&Value>, b: Option<&Value>, path: &str, out: &mut Vec<(String, String, String)>) {
        match (a, b) {
            (Some(Value::Table(ta)), Some(Value::Table(tb))) => {
                let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(ta.get(k), tb.get(k), &p, out);
                }
            }
            (x, y) if x != y => {
                let show = |v: Option<&Value>| v.map_or("-".to_string(), example);
                out.push((path.to_string(), show(x), show(y)));
            }
            _ => {}
        }
    }
    let mut out = vec![];
    walk(Some(&Value::Table(a.clone())), Some(&Value::Table(b.clone())), "", &mut out);
    out
}

/// One layer of a config: TOML text and where it came from (named in errors).
pub struct Layer<'a> {
    pub text: std::borrow::Cow<'a, str>,
    /// "preset", "config file", …
    pub what: &'static str,
    pub path: String,
}

/// Resolves a config in layers: `defaults`, then each of `layers` in order, then each
/// `--set KEY=VALUE` of `sets`. Every layer is checked against what came before: a key the
/// defaults lack is an error naming the closest key, a value of another type an error with
/// an example.
pub fn layered(mut defaults: Table, layers: &[Layer], sets: &[String], milestone: &str) -> Result<Table, DlError> {
    for l in layers {
        merge(&mut defaults, &parse_toml(&l.text, l.what, &l.path)?, milestone)?;
    }
    for s in sets {
        apply_set(&mut defaults, s, milestone)?;
    }
    Ok(defaults)
}

/// The `[train]` section of a resolved config, checked: it needs a budget (steps or epochs),
/// a batch of at least one, and a positive, finite learning rate.
pub fn train_section(table: &Table) -> Result<TrainConfig, DlError> {
    let train: TrainConfig = section(table, "train")?;
    if train.steps == 0 && train.epochs == 0 {
        return Err(DlError::BadValue {
            context: "[train]".into(),
            message: "both steps and epochs are 0; set one (e.g. --steps 1000)".into(),
        });
    }
    if train.batch_size == 0 {
        return Err(DlError::BadValue { context: "train.batch_size".into(), message: "must be at least 1".into() });
    }
    if !(train.lr.is_finite() && train.lr > 0.0) {
        return Err(DlError::BadValue {
            context: "train.lr".into(),
            message: format!("must be a positive number, got {}", train.lr),
        });
    }
    if !(0.0..1.0).contains(&train.ema) {
        return Err(DlError::BadValue {
            context: "train.ema".into(),
            message: format!("is the weight on the past average, in [0, 1) (e.g. 0.999; 0 = off), got {}", train.ema),
        });
    }
    Ok(train)
}

/// A stable short hash of a resolved config (sha256 of its TOML text).
pub fn config_hash(cfg: &Table) -> String {
    use sha2::{Digest, Sha256};
    let text = toml::to_string(cfg).unwrap_or_default();
    let d = Sha256::digest(text.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Deserialises a resolved table into a typed section, mapping serde errors to a usage error.
pub fn section<T: serde::de::DeserializeOwned>(cfg: &Table, name: &str) -> Result<T, DlError> {
    let v = cfg.get(name).cloned().unwrap_or(Value::Table(Table::new()));
    v.try_into::<T>().map_err(|e| {
        let (context, message) = tidy_serde_error(name, &e.to_string());
        DlError::BadValue { context, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Table {
        parse_toml("[train]\nlr = 0.1\nsteps = 10\noptimizer = \"adam\"\n[model]\nhidden = [512, 256]\n", "t", "t")
            .unwrap()
    }

    #[test]
    fn set_overrides_with_type_checks() {
        let mut b = base();
        apply_set(&mut b, "train.lr=1", "m").unwrap();
        assert_eq!(b["train"]["lr"].as_float(), Some(1.0));
        apply_set(&mut b, "train.optimizer=sgd", "m").unwrap();
        assert_eq!(b["train"]["optimizer"].as_str(), Some("sgd"));
        apply_set(&mut b, "model.hidden=[64]", "m").unwrap();
        assert!(matches!(apply_set(&mut b, "train.steps=abc", "m"), Err(DlError::WrongType { .. })));
        assert!(matches!(apply_set(&mut b, "train.steps=1.5", "m"), Err(DlError::WrongType { .. })));
    }

    #[test]
    fn a_declared_group_takes_the_optimizer_keys_of_train_with_their_types() {
        let mut b = parse_toml(
            "[train]\nlr = 0.1\noptimizer = \"adam\"\nsteps = 1\n[train.groups.generator]\n[train.groups.discriminator]\n",
            "t",
            "t",
        )
        .unwrap();
        apply_set(&mut b, "train.groups.discriminator.lr=4e-4", "m").unwrap();
        apply_set(&mut b, "train.groups.generator.optimizer=sgd", "m").unwrap();
        apply_set(&mut b, "train.groups.generator.lr=1", "m").unwrap();
        assert_eq!(b["train"]["groups"]["discriminator"]["lr"].as_float(), Some(4e-4));
        assert_eq!(b["train"]["groups"]["generator"]["lr"].as_float(), Some(1.0), "integers widen like [train]'s");
        let over = parse_toml("[train.groups.generator]\nbeta1 = 0.5\n", "t", "t").unwrap();
        assert!(merge(&mut b, &over, "m").is_err(), "beta1 is not in this [train]");
        assert!(matches!(apply_set(&mut b, "train.groups.generator.lr=fast", "m"), Err(DlError::WrongType { .. })));
        assert!(matches!(apply_set(&mut b, "train.groups.generator.seed=1", "m"), Err(DlError::UnknownKey { .. })));
        match apply_set(&mut b, "train.groups.discriminatr.lr=1", "m") {
            Err(DlError::UnknownKey { suggestion, .. }) => {
                assert_eq!(suggestion.as_deref(), Some("train.groups.discriminator.lr"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn setting_a_section_to_a_value_suggests_its_key_of_that_type() {
        let mut b = parse_toml("[data]\ndataset = \"mnist\"\ntrain_size = 0\n", "t", "t").unwrap();
        let e = apply_set(&mut b, "data=fashion", "m").unwrap_err().to_string();
        assert!(e.contains("--set data.dataset=fashion") && e.contains("data.train_size"), "{e}");
    }

    #[test]
    fn an_unknown_optimizer_name_suggests_the_closest_in_one_line() {
        let raw = "unknown variant `adamm`, expected one of `sgd`, `momentum`, `adam`\nin `optimizer`\n";
        let (context, message) = tidy_serde_error("train", raw);
        assert_eq!(context, "train.optimizer");
        assert_eq!(message, "unknown value `adamm` (did you mean `adam`?); it takes one of sgd, momentum, adam");
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let mut b = base();
        match apply_set(&mut b, "train.lrr=1", "m") {
            Err(DlError::UnknownKey { suggestion, .. }) => {
                assert_eq!(suggestion.as_deref(), Some("train.lr"))
            }
            other => panic!("{other:?}"),
        }
        let over = parse_toml("[modle]\nhidden = [1]\n", "t", "t").unwrap();
        assert!(matches!(merge(&mut b, &over, "m"), Err(DlError::UnknownKey { .. })));
    }
}
