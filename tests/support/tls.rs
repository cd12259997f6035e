//! A test PKI made at test time: a CA, a certificate for `127.0.0.1` (and `localhost`) signed by
//! it, usable by servers and clients alike, and an unrelated CA that trusts none of it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use shardex::local::LocalTls;

/// PEM files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that signed `cert`.
    pub ca: PathBuf,
    /// A certificate for `127.0.0.1` and `localhost`, for serverAuth and clientAuth.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Another CA, which signed nothing here.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let authority = ca("Shardex test CA");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "shardex-local");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &authority).unwrap();
        Pki {
            ca: write("ca.pem", authority.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            other_ca: write("other-ca.pem", ca("Some other CA").pem()),
            dir,
        }
    }

    /// The embedded cluster's settings: this certificate, executors verifying with the CA.
    pub fn cluster(&self, require_client_cert: bool) -> LocalTls {
        LocalTls {
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            ca_file: Some(self.ca.clone()),
            require_client_cert,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
