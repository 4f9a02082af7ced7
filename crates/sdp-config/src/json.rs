//! JSON text exactly as the original tool writes it (Python's `json.dumps(obj, indent=2, sort_keys=True,
//! separators=(',', ': '), ensure_ascii=False)`), so that values round-trip byte for byte between the tools.

use serde::Serialize;
use serde_json::Value;

/// Merges `fields` into the object `into` (made an object if it is not one): each field replaces the one of
/// that name, a null removes it. Returns whether anything changed.
pub fn merge_fields(into: &mut Value, fields: &serde_json::Map<String, Value>) -> bool {
    if !into.is_object() {
        *into = Value::Object(Default::default());
    }
    let target = into.as_object_mut().expect("made an object above");
    let mut changed = false;
    for (k, v) in fields {
        changed |= if v.is_null() {
            target.remove(k).is_some()
        } else {
            target.insert(k.clone(), v.clone()).as_ref() != Some(v)
        };
    }
    changed
}

/// Canonical text of a JSON value: 2-space indent, sorted keys, non-ASCII kept, no trailing newline.
pub fn to_canonical(value: &Value) -> String {
    // Written as bytes, strings and scalars by serde_json straight into the buffer (no text per key or value).
    let mut out = Vec::new();
    write_value(&mut out, value, 0);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Canonical text of any serializable value.
pub fn to_canonical_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    Ok(to_canonical(&serde_json::to_value(value)?))
}

fn indent(out: &mut Vec<u8>, level: usize) {
    out.push(b'\n');
    for _ in 0..level {
        out.extend_from_slice(b"  ");
    }
}

/// serde_json's compact text of `value` (a string, a scalar), appended to `out`.
fn write_compact<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("writing JSON to a Vec does not fail");
}

fn write_value(out: &mut Vec<u8>, value: &Value, level: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push(b'{');
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(out, level + 1);
                write_compact(out, k.as_str());
                out.extend_from_slice(b": ");
                write_value(out, v, level + 1);
            }
            indent(out, level);
            out.push(b'}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(out, level + 1);
                write_value(out, v, level + 1);
            }
            indent(out, level);
            out.push(b']');
        }
        Value::Number(n) if n.is_f64() => out.extend_from_slice(python_float(n).as_bytes()),
        other => write_compact(out, other),
    }
}

/// Python prints floats with `repr`: `1e+16`, `1.5e-07`, `100.0`; serde_json prints `1e16`, `1.5e-7`.
fn python_float(n: &serde_json::Number) -> String {
    let text = n.to_string();
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", exp.trim_start_matches('+')),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_dumps() {
        let v = json!({"workflow": {"version": "0.1.0", "id": "testdask", "type": "realtime"},
                       "sbi_id": null, "parameters": {}, "list": [], "pb_id": "x", "n": [1, 2.5, "é"]});
        let expected = "{\n  \"list\": [],\n  \"n\": [\n    1,\n    2.5,\n    \"é\"\n  ],\n  \"parameters\": {},\n  \"pb_id\": \"x\",\n  \"sbi_id\": null,\n  \"workflow\": {\n    \"id\": \"testdask\",\n    \"type\": \"realtime\",\n    \"version\": \"0.1.0\"\n  }\n}";
        assert_eq!(to_canonical(&v), expected);
    }

    #[test]
    fn floats_like_python_repr() {
        assert_eq!(to_canonical(&json!(1e16)), "1e+16");
        assert_eq!(to_canonical(&json!(1.5e-7)), "1.5e-07");
        assert_eq!(to_canonical(&json!(100.0)), "100.0");
        assert_eq!(to_canonical(&json!("a\"b\n")), "\"a\\\"b\\n\"");
        // Keys are escaped as strings are, non-ASCII kept.
        assert_eq!(to_canonical(&json!({"k\"é\t": true})), "{\n  \"k\\\"é\\t\": true\n}");
    }
}

#[cfg(test)]
mod merge_tests {
    use serde_json::json;

    #[test]
    fn fields_replace_nulls_remove_and_changes_are_told() {
        let mut state = json!({"status": "FAILED", "error": "x", "pods": {"a": 1}});
        let fields = json!({"status": "DEPLOYED", "error": null, "new": [1]});
        assert!(super::merge_fields(&mut state, fields.as_object().unwrap()));
        assert_eq!(state, json!({"status": "DEPLOYED", "pods": {"a": 1}, "new": [1]}));
        assert!(!super::merge_fields(&mut state, fields.as_object().unwrap()), "the same fields again change nothing");
        let mut not_an_object = json!([1]);
        assert!(super::merge_fields(&mut not_an_object, json!({"a": 1}).as_object().unwrap()));
        assert_eq!(not_an_object, json!({"a": 1}));
    }
}
