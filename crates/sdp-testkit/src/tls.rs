//! Throwaway certificates for TLS tests: a CA, a server certificate for `127.0.0.1` and `localhost`, and a
//! client certificate, all signed by that CA and written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// PEM files of a test CA and of the server and client certificates it signed.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA certificate: what servers and clients trust.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another CA: trusting it instead of `ca` must fail.
    pub other_ca: PathBuf,
    /// A client certificate and key that `other_ca` signed: a server trusting `ca` must refuse them.
    pub untrusted_client_cert: PathBuf,
    pub untrusted_client_key: PathBuf,
}

impl TestCerts {
    /// Makes the certificates and writes them into `dir` (`ca.pem`, `server.pem`, `server-key.pem`,
    /// `client.pem`, `client-key.pem`, `other-ca.pem`, `untrusted-client.pem`, `untrusted-client-key.pem`).
    pub fn new(dir: &Path) -> TestCerts {
        let ca = certificate_authority("sdp test CA");
        let server = leaf("127.0.0.1", &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth, &ca);
        let client = leaf("sdp-test-client", &[], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        let other_ca = certificate_authority("sdp unrelated CA");
        let untrusted = leaf("sdp-untrusted-client", &[], ExtendedKeyUsagePurpose::ClientAuth, &other_ca);
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        TestCerts {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server.0),
            server_key: write("server-key.pem", server.1),
            client_cert: write("client.pem", client.0),
            client_key: write("client-key.pem", client.1),
            other_ca: write("other-ca.pem", other_ca.pem()),
            untrusted_client_cert: write("untrusted-client.pem", untrusted.0),
            untrusted_client_key: write("untrusted-client-key.pem", untrusted.1),
        }
    }

    /// Settings of a client that trusts the CA and presents the client certificate, for a database on
    /// 127.0.0.1:`port`.
    pub fn client_settings(&self, port: u16) -> sdp_config::Settings {
        sdp_config::Settings {
            port,
            cacert: Some(self.ca.clone()),
            cert: Some(self.client_cert.clone()),
            key: Some(self.client_key.clone()),
            ..Default::default()
        }
    }

    /// etcd's options (which `sdp up` shares) for a server with the server certificate that asks every client
    /// for one the CA signed.
    pub fn server_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        for (flag, path) in
            [("--cert-file", &self.server_cert), ("--key-file", &self.server_key), ("--trusted-ca-file", &self.ca)]
        {
            args.push(flag.into());
            args.push(path.into());
        }
        args.push("--client-cert-auth".into());
        args
    }

    /// etcdctl's options for a client with the client certificate (`--cacert --cert --key`).
    pub fn etcdctl_args(&self) -> Vec<std::ffi::OsString> {
        let flag = |name: &str, path: &Path| {
            let mut arg = std::ffi::OsString::from(format!("--{name}="));
            arg.push(path);
            arg
        };
        vec![flag("cacert", &self.ca), flag("cert", &self.client_cert), flag("key", &self.client_key)]
    }

    /// The environment a client process needs for [`TestCerts::client_settings`].
    pub fn client_env(&self, port: u16) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        vec![
            ("SDP_CONFIG_HOST", "127.0.0.1".into()),
            ("SDP_CONFIG_PORT", port.to_string()),
            ("SDP_CONFIG_CACERT", path(&self.ca)),
            ("SDP_CONFIG_CERT", path(&self.client_cert)),
            ("SDP_CONFIG_KEY", path(&self.client_key)),
        ]
    }
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("self-signed CA certificate")
}

/// A certificate for `names` (IP addresses or DNS names) and its key, as PEM.
fn leaf(
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("certificate names");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("certificate key");
    let cert = params.signed_by(&key, ca).expect("certificate signed by the test CA");
    (cert.pem(), key.serialize_pem())
}
