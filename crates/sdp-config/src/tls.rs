//! TLS to the configuration database, from the files the settings name (etcdctl's `--cacert`, `--cert` and
//! `--key`), and what to do when a TLS connection fails.

use std::path::Path;

use etcd_client::{Certificate, Identity, TlsOptions};

use crate::error::Error;
use crate::settings::Settings;

/// The files a TLS connection uses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TlsFiles<'a> {
    pub ca: &'a Path,
    /// Client certificate and its key, for servers that check client certificates.
    pub client: Option<(&'a Path, &'a Path)>,
}

/// Whether the settings ask for TLS, and with which files.
pub(crate) fn tls_files(settings: &Settings) -> Result<Option<TlsFiles<'_>>, Error> {
    match (settings.cacert.as_deref(), settings.cert.as_deref(), settings.key.as_deref()) {
        (None, None, None) => Ok(None),
        (None, _, _) => Err(Error::TlsSettings(
            "SDP_CONFIG_CERT or SDP_CONFIG_KEY is set but SDP_CONFIG_CACERT is not: set SDP_CONFIG_CACERT to the CA \
             bundle that signed the database's certificate",
        )),
        (Some(ca), None, None) => Ok(Some(TlsFiles { ca, client: None })),
        (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles { ca, client: Some((cert, key)) })),
        (Some(_), Some(_), None) => Err(Error::TlsSettings(
            "SDP_CONFIG_CERT is set but SDP_CONFIG_KEY is not: set SDP_CONFIG_KEY to the client certificate's \
             private key",
        )),
        (Some(_), None, Some(_)) => Err(Error::TlsSettings(
            "SDP_CONFIG_KEY is set but SDP_CONFIG_CERT is not: set SDP_CONFIG_CERT to the client certificate",
        )),
    }
}

/// Reads and checks the files, for the client to connect with.
pub(crate) fn tls_options(files: &TlsFiles) -> Result<TlsOptions, Error> {
    let ca = read_pem("SDP_CONFIG_CACERT", files.ca, Pem::Certificate)?;
    let options = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
    Ok(match files.client {
        Some((cert, key)) => options.identity(Identity::from_pem(
            read_pem("SDP_CONFIG_CERT", cert, Pem::Certificate)?,
            read_pem("SDP_CONFIG_KEY", key, Pem::PrivateKey)?,
        )),
        None => options,
    })
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

impl Pem {
    fn found_in(self, text: &str) -> bool {
        text.lines().map(str::trim).any(|line| match self {
            Pem::Certificate => line == "-----BEGIN CERTIFICATE-----",
            Pem::PrivateKey => line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----"),
        })
    }

    fn described(self) -> &'static str {
        match self {
            Pem::Certificate => "PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "PEM private key (-----BEGIN PRIVATE KEY-----)",
        }
    }
}

/// The file's contents, if it holds the kind of PEM block wanted (TLS libraries skip what they cannot parse,
/// which would turn a wrong file into a confusing handshake failure later).
fn read_pem(variable: &'static str, path: &Path, kind: Pem) -> Result<Vec<u8>, Error> {
    let problem = |problem: String| Error::TlsFile { variable, path: path.to_path_buf(), problem };
    let bytes = std::fs::read(path)
        .map_err(|e| problem(format!("cannot read it ({e}): point {variable} at a readable PEM file")))?;
    if !kind.found_in(&String::from_utf8_lossy(&bytes)) {
        return Err(problem(format!("it holds no {}: point {variable} at one", kind.described())));
    }
    Ok(bytes)
}

/// How the client speaks to the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tls {
    Off,
    /// TLS, checking the server's certificate only.
    ServerOnly,
    /// TLS, presenting a client certificate too.
    WithClientCertificate,
}

impl TlsFiles<'_> {
    pub fn mode(&self) -> Tls {
        match self.client {
            Some(_) => Tls::WithClientCertificate,
            None => Tls::ServerOnly,
        }
    }
}

/// What to do about a failed connection whose cause (`detail`, the whole error chain) is TLS; None when it is
/// not about TLS. Matched without regard to case.
pub(crate) fn tls_fix(tls: Tls, detail: &str) -> Option<&'static str> {
    let detail = detail.to_lowercase();
    let has = |s: &str| detail.contains(s);
    // A plain client's HTTP/2 preface is cut off by a TLS server at its first bytes. A TLS client is dropped
    // without a reason both by a TLS server that will not serve it (etcd ends a TLS 1.3 connection without a
    // client certificate at the first request) and by a plain server (at its first bytes, with an EOF or a reset).
    let preface_cut = has("broken pipe") || has("connection reset") || has("frame with invalid size");
    let dropped = preface_cut || has("connection closed") || has("operation was canceled");
    let alert = |names: &[&str]| names.iter().any(|name| has(name));
    match tls {
        Tls::Off => preface_cut.then_some(
            "If the database serves TLS, set SDP_CONFIG_CACERT to the CA bundle that signed its certificate (and \
             SDP_CONFIG_CERT and SDP_CONFIG_KEY if it checks client certificates)",
        ),
        _ if has("unknownissuer") || has("badsignature") => Some(
            "The database's certificate is not signed by a CA in SDP_CONFIG_CACERT: set SDP_CONFIG_CACERT to the \
             CA bundle that signed it",
        ),
        _ if has("notvalidforname") => Some(
            "The database's certificate does not name SDP_CONFIG_HOST: connect by a host name or address the \
             certificate lists",
        ),
        _ if alert(&["invalidcontenttype", "corrupt message", "tls handshake eof"]) => Some(
            "The database does not serve TLS: unset SDP_CONFIG_CACERT, SDP_CONFIG_CERT and SDP_CONFIG_KEY, or turn \
             TLS on at the database",
        ),
        Tls::ServerOnly if alert(&["certificaterequired", "certificate required", "badcertificate"]) => Some(
            "The database wants a client certificate: set SDP_CONFIG_CERT and SDP_CONFIG_KEY to a certificate \
             signed by a CA it trusts and its key",
        ),
        Tls::ServerOnly => dropped.then_some(
            "The database closed the connection. If it checks client certificates, set SDP_CONFIG_CERT and \
             SDP_CONFIG_KEY to a certificate signed by a CA it trusts and its key; if it does not serve TLS, unset \
             SDP_CONFIG_CACERT",
        ),
        Tls::WithClientCertificate if alert(&["badcertificate", "bad certificate", "unknownca"]) => Some(
            "The database does not accept the client certificate: set SDP_CONFIG_CERT and SDP_CONFIG_KEY to a \
             certificate signed by a CA it trusts (its --trusted-ca-file) and its key",
        ),
        Tls::WithClientCertificate => dropped.then_some(
            "The database closed the connection. If it does not accept the client certificate, set \
             SDP_CONFIG_CERT and SDP_CONFIG_KEY to a certificate signed by a CA it trusts (its --trusted-ca-file) \
             and its key; if it does not serve TLS, unset SDP_CONFIG_CACERT, SDP_CONFIG_CERT and SDP_CONFIG_KEY",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn settings(cacert: Option<&str>, cert: Option<&str>, key: Option<&str>) -> Settings {
        Settings {
            cacert: cacert.map(PathBuf::from),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
            ..Default::default()
        }
    }

    #[test]
    fn tls_is_on_with_a_ca_and_takes_a_client_certificate_as_a_pair() {
        assert_eq!(tls_files(&settings(None, None, None)).unwrap(), None);
        let ca_only = settings(Some("ca"), None, None);
        assert_eq!(tls_files(&ca_only).unwrap(), Some(TlsFiles { ca: Path::new("ca"), client: None }));
        let all = settings(Some("ca"), Some("c"), Some("k"));
        assert_eq!(
            tls_files(&all).unwrap(),
            Some(TlsFiles { ca: Path::new("ca"), client: Some((Path::new("c"), Path::new("k"))) })
        );
        for (s, missing) in [
            (settings(None, Some("c"), Some("k")), "SDP_CONFIG_CACERT"),
            (settings(Some("ca"), Some("c"), None), "set SDP_CONFIG_KEY"),
            (settings(Some("ca"), None, Some("k")), "set SDP_CONFIG_CERT"),
        ] {
            let e = tls_files(&s).unwrap_err().to_string();
            assert!(e.contains(missing), "{e}");
        }
    }

    #[test]
    fn unreadable_or_wrong_files_are_named_with_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = read_pem("SDP_CONFIG_CACERT", &missing, Pem::Certificate).unwrap_err().to_string();
        assert!(e.starts_with(&format!("SDP_CONFIG_CACERT={}: cannot read it", missing.display())), "{e}");

        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n").unwrap();
        assert!(read_pem("SDP_CONFIG_KEY", &key, Pem::PrivateKey).is_ok());
        let e = read_pem("SDP_CONFIG_CERT", &key, Pem::Certificate).unwrap_err().to_string();
        assert!(e.starts_with(&format!("SDP_CONFIG_CERT={}: it holds no PEM certificate", key.display())), "{e}");
    }

    #[test]
    fn tls_failures_say_which_setting_to_change() {
        let fix = |tls, detail| tls_fix(tls, detail).unwrap_or("");
        let with_cert = Tls::WithClientCertificate;
        let server_only = Tls::ServerOnly;
        assert!(fix(server_only, "received fatal alert: BadCertificate").starts_with("The database wants a client"));
        let closed = "hyper::Error(Canceled, \"connection closed\")";
        assert!(fix(server_only, closed).contains("If it checks client certificates, set SDP_CONFIG_CERT and"));
        assert!(fix(server_only, closed).contains("if it does not serve TLS, unset SDP_CONFIG_CACERT"));
        assert!(fix(with_cert, "invalid peer certificate: UnknownIssuer").contains("SDP_CONFIG_CACERT to the CA"));
        assert!(fix(with_cert, "received fatal alert: UnknownCA").starts_with("The database does not accept the"));
        assert!(fix(with_cert, "Connection reset by peer").contains("If it does not accept the client certificate"));
        assert!(fix(with_cert, "tls handshake eof: transport error").starts_with("The database does not serve TLS"));
        assert!(fix(Tls::Off, "Connection reset by peer (os error 104)").contains("set SDP_CONFIG_CACERT"));
        assert!(fix(Tls::Off, "stream closed because of a broken pipe").contains("set SDP_CONFIG_CACERT"));
        assert_eq!(tls_fix(Tls::Off, closed), None);
        for tls in [Tls::Off, Tls::ServerOnly, with_cert] {
            assert_eq!(tls_fix(tls, "Connection refused (os error 111)"), None);
        }
    }
}
