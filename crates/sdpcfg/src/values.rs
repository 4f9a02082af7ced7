//! The values and parameters given on the command line (or on standard input): checked before they are stored.

use sdp_config::Error;
use serde_json::Value;

/// A value that looks like JSON must be JSON: storing a typo would break every reader of the entry.
pub fn check_value(path: &str, value: &str) -> Result<(), Error> {
    let trimmed = value.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str::<Value>(value)
            .map_err(|e| Error::BadJson { path: path.to_string(), detail: e.to_string() })?;
    }
    Ok(())
}

/// YAML (a superset of JSON) text given for parameters, as a JSON value.
pub fn parse_yaml(what: &str, text: &str) -> Result<Value, Error> {
    serde_yaml::from_str::<Value>(text).map_err(|e| Error::Invalid(format!("{what} are not valid YAML or JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Text built from the characters that matter to JSON and YAML, and any others.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("\"".to_string()),
            Just(": ".to_string()),
            Just(", ".to_string()),
            Just("\n  - ".to_string()),
            Just("&a ".to_string()),
            Just("*a".to_string()),
            Just("!!binary ".to_string()),
            Just("1e999".to_string()),
            Just("\\u0000".to_string()),
            "[ -~]{0,6}",
            any::<String>(),
        ];
        prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_value_is_stored_as_given_or_refused_naming_the_path(value in text()) {
            match check_value("/pb/x", &value) {
                Ok(()) => {
                    let looks_like_json = value.trim_start().starts_with(['{', '[']);
                    prop_assert!(!looks_like_json || serde_json::from_str::<Value>(&value).is_ok());
                }
                Err(e) => prop_assert!(e.to_string().contains("/pb/x"), "{e}"),
            }
        }

        #[test]
        fn parameters_parse_or_are_refused_saying_what(text in text()) {
            if let Err(e) = parse_yaml("parameters", &text) {
                prop_assert!(e.to_string().starts_with("parameters are not valid YAML or JSON: "), "{e}");
            }
        }
    }

    #[test]
    fn parameters_that_expand_without_end_are_refused() {
        // A billion laughs: nine levels of ten aliases each.
        let mut bomb =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (level, previous) in ('b'..='i').zip('a'..) {
            let aliases = vec![format!("*{previous}"); 10].join(",");
            bomb.push_str(&format!("{level}: &{level} [{aliases}]\n"));
        }
        let refused = parse_yaml("parameters", &bomb).unwrap_err().to_string();
        assert!(refused.contains("repetition limit exceeded"), "{refused}");
        let deep = "[".repeat(100_000);
        let refused = parse_yaml("parameters", &deep).unwrap_err().to_string();
        assert!(refused.contains("recursion limit exceeded"), "{refused}");
    }
}
