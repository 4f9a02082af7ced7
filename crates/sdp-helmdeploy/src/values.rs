//! Helm values from a deployment entry: dotted keys (`"worker.replicas": 2`) become nested values, as the
//! original deployer turns them into `--set` paths; and the deployer's own values per chart, which go under
//! every deployment's ([`chart_values`], [`over`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `values` over `defaults`, as helm merges two values files given in that order: objects merge key by key,
/// anything else in `values` (a null too, which then removes the key from the chart's defaults) replaces what
/// `defaults` holds there.
pub fn over(defaults: &Value, values: &Value) -> Value {
    match (defaults, values) {
        (Value::Object(defaults), Value::Object(values)) => {
            let mut merged = defaults.clone();
            for (key, value) in values {
                let value = match merged.get(key) {
                    Some(default) => over(default, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (_, values) => values.clone(),
    }
}

/// Values by chart, as `--helm-chart-values` (SDP_HELM_CHART_VALUES) gives them: a JSON object of objects,
/// `{"<chart as entries name it>": {<values, nested or with dotted keys>}, ...}`.
pub fn chart_values(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let parsed: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(charts) = parsed else {
        return Err(format!("not an object of charts: {parsed}"));
    };
    charts
        .into_iter()
        .map(|(chart, values)| match values {
            Value::Object(values) => Ok((chart, nest(&values)?)),
            other => Err(format!("the values of chart {chart:?} are not an object: {other}")),
        })
        .collect()
}

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
    fn deployment_values_go_over_the_charts_values() {
        let defaults = json!({"image": {"repository": "local/dask", "tag": "1", "pullPolicy": "Never"}, "worker": {"replicas": 3}});
        let values = json!({"image": {"tag": "2"}, "worker": {"replicas": 1, "env": [{"name": "A"}]}, "pb_id": "p"});
        assert_eq!(
            over(&defaults, &values),
            json!({"image": {"repository": "local/dask", "tag": "2", "pullPolicy": "Never"},
                   "worker": {"replicas": 1, "env": [{"name": "A"}]}, "pb_id": "p"})
        );
        // Not objects: the deployment's value, whatever the default.
        assert_eq!(over(&json!({"a": {"b": 1}}), &json!({"a": [1]})), json!({"a": [1]}));
        assert_eq!(over(&json!({"a": 1}), &json!({"a": null})), json!({"a": null}));
        assert_eq!(over(&json!({}), &json!({"x": 1})), json!({"x": 1}));
    }

    #[test]
    fn chart_values_are_an_object_of_objects() {
        let parsed = chart_values(r#"{"dask": {"image.repository": "local/dask"}, "workflow": {}}"#).unwrap();
        assert_eq!(parsed["dask"], json!({"image": {"repository": "local/dask"}}));
        assert_eq!(parsed["workflow"], json!({}));
        assert!(chart_values("[]").unwrap_err().contains("not an object of charts"));
        assert!(chart_values(r#"{"dask": 1}"#).unwrap_err().contains("\"dask\" are not an object"));
        assert!(chart_values("{").unwrap_err().contains("not JSON"));
        assert!(chart_values(r#"{"dask": {"a": 1, "a.b": 2}}"#).unwrap_err().contains("conflict"));
    }

    #[test]
    fn conflicts_are_errors() {
        assert!(nest_json(json!({"a": 1, "a.b": 2})).unwrap_err().contains("\"a.b\""));
        assert!(nest_json(json!({"a.": 1})).unwrap_err().contains("empty part"));
    }
}
