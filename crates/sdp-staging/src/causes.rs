//! Error messages that carry their causes, for the HTTP clients (JupyterHub, Rucio).

/// An error with its causes (`error sending request: ... : invalid peer certificate: UnknownIssuer`), so that
/// connection and TLS failures say what went wrong.
pub(crate) fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
