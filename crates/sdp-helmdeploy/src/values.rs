//! Helm values from a deployment entry: dotted keys (`"worker.replicas": 2`) become nested values, as the
//! original deployer turns them into `--set` paths.

use serde_json::{Map, Value};

/// Nests dotted keys: `{"a.b": 1, "c": {"d.e": 2}}` → `{"a": {"b": 1}, "c": {"d": {"e": 2}}}`.
/// Two keys that claim the same place (`"a": 1` and `"a.b": 2`) are an error naming both.
pub fn nest(values: &Map<String, Value>) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in values {
        let value = match value {
            Value::Object(inner) => nest(inner)?,
            other => other.clone(),
        };
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("value key {key:?} has an empty part"));
        }
        insert(&mut out, &parts, value, key)?;
    }
    Ok(Value::Object(out))
}

fn insert(map: &mut Map<String, Value>, parts: &[&str], value: Value, key: &str) -> Result<(), String> {
    let (first, rest) = parts.split_first().expect("keys have at least one part");
    if rest.is_empty() {
        return match (map.get_mut(*first), value) {
            (None, value) => {
                map.insert(first.to_string(), value);
                Ok(())
            }
            // Two objects for the same key merge ({"a": {"x": 1}, "a.y": 2}).
            (Some(Value::Object(existing)), Value::Object(new)) => {
                for (k, v) in new {
                    insert(existing, &[k.as_str()], v, key)?;
                }
                Ok(())
            }
            (Some(_), _) => Err(format!("values conflict at {key:?}: the key is given twice")),
        };
    }
    let child = map.entry(first.to_string()).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(child) => insert(child, rest, value, key),
        _ => Err(format!("values conflict at {key:?}: {first:?} is both a value and a parent of one")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nest_json(v: Value) -> Result<Value, String> {
        nest(v.as_object().unwrap())
    }

    #[test]
    fn dotted_keys_become_nested_values() {
        let seed = json!({"jupyter.enabled": "false", "scheduler.serviceType": "ClusterIP", "worker.replicas": 2});
        assert_eq!(
            nest_json(seed).unwrap(),
            json!({"jupyter": {"enabled": "false"}, "scheduler": {"serviceType": "ClusterIP"}, "worker": {"replicas": 2}})
        );
        let mixed =
            json!({"env.SDP_CONFIG_HOST": "h", "env.SDP_HELM_NAMESPACE": "sdp", "pb_id": "p", "a": {"b.c": [1]}});
        assert_eq!(
            nest_json(mixed).unwrap(),
            json!({"env": {"SDP_CONFIG_HOST": "h", "SDP_HELM_NAMESPACE": "sdp"}, "pb_id": "p", "a": {"b": {"c": [1]}}})
        );
        assert_eq!(nest_json(json!({"a": {"x": 1}, "a.y": 2})).unwrap(), json!({"a": {"x": 1, "y": 2}}));
    }

    #[test]
    fn conflicts_are_errors() {
        assert!(nest_json(json!({"a": 1, "a.b": 2})).unwrap_err().contains("\"a.b\""));
        assert!(nest_json(json!({"a.": 1})).unwrap_err().contains("empty part"));
    }
}
