//! Error messages that carry their causes, so that connection and TLS failures say what went wrong
//! (`error sending request: ...: invalid peer certificate: UnknownIssuer`; a TLS alert is a few sources deep).

use std::error::Error;

/// `text` followed, on one line, by the message of `source` and of each of its own sources that `text` does not
/// already hold.
pub fn with_causes(mut text: String, mut source: Option<&(dyn Error + 'static)>) -> String {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// An error's message followed by its causes'.
pub fn causes(error: &dyn Error) -> String {
    with_causes(error.to_string(), error.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_once() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(causes(&error), "outer: inner");
        assert_eq!(with_causes("outer: inner".into(), error.source()), "outer: inner");
    }
}
