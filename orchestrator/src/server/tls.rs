//! The cluster's own PKI: a CA made on first start, a server certificate for the listen
//! addresses, client certificates (the admin's, the API server's toward nodes), signing of
//! approved certificate requests, and the rustls configuration (ring provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ServerError;

pub struct Pki {
    dir: PathBuf,
    pub ca_pem: String,
    ca_key: KeyPair,
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{what}: {e}"))
}

/// A client identity: user name (CN) and groups (O).
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    /// Loads the CA from `dir`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(dir).map_err(|e| ServerError::Io(dir.to_owned(), e))?;
        let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if crt.exists() && key.exists() {
            let ca_pem =
                std::fs::read_to_string(&crt).map_err(|e| ServerError::Io(crt.clone(), e))?;
            let key_pem =
                std::fs::read_to_string(&key).map_err(|e| ServerError::Io(key.clone(), e))?;
            let ca_key =
                KeyPair::from_pem(&key_pem).map_err(|e| tls_err("reading the CA key", e))?;
            return Ok(Self { dir: dir.to_owned(), ca_pem, ca_key });
        }
        let ca_key = KeyPair::generate().map_err(|e| tls_err("generating the CA key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_err("CA parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, "ringfence-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).map_err(|e| tls_err("signing the CA", e))?;
        let ca_pem = ca.pem();
        write_private(&key, &ca_key.serialize_pem())
            .map_err(|e| ServerError::Io(key.clone(), e))?;
        std::fs::write(&crt, &ca_pem).map_err(|e| ServerError::Io(crt.clone(), e))?;
        Ok(Self { dir: dir.to_owned(), ca_pem, ca_key })
    }

    /// The CA from its certificate and key files (a controller manager's
    /// `--cluster-signing-cert-file` and `--cluster-signing-key-file`), for signing only.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, ServerError> {
        let ca_pem = std::fs::read_to_string(cert).map_err(|e| ServerError::Io(cert.into(), e))?;
        let key_pem = std::fs::read_to_string(key).map_err(|e| ServerError::Io(key.into(), e))?;
        let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| tls_err("reading the CA key", e))?;
        let dir = cert.parent().unwrap_or(Path::new(".")).to_owned();
        let pki = Self { dir, ca_pem, ca_key };
        pki.issuer()?;
        Ok(pki)
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, ServerError> {
        Issuer::from_ca_cert_pem(&self.ca_pem, &self.ca_key)
            .map_err(|e| tls_err("loading the CA", e))
    }

    /// A fresh server certificate for `names` (DNS names and IP addresses).
    pub fn server_cert(
        &self,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
        let key = KeyPair::generate().map_err(|e| tls_err("generating the server key", e))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| tls_err("server certificate names", e))?;
        params.distinguished_name.push(DnType::CommonName, "ringfence-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| tls_err("signing the server certificate", e))?;
        let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
            .map_err(|e| tls_err("server key", e))?;
        Ok((vec![cert.der().clone()], key_der))
    }

    /// A client certificate for `user` in `groups`.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<ClientCert, ServerError> {
        let key = KeyPair::generate().map_err(|e| tls_err("generating a client key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_err("client parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| tls_err("signing a client certificate", e))?;
        Ok(ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// The client certificate `file` (`admin` -> admin.crt, admin.key) for `user` in `groups`,
    /// made once and kept in the PKI directory.
    fn kept_client_cert(
        &self,
        file: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<ClientCert, ServerError> {
        let (crt, key) =
            (self.dir.join(format!("{file}.crt")), self.dir.join(format!("{file}.key")));
        if let (Ok(cert_pem), Ok(key_pem)) =
            (std::fs::read_to_string(&crt), std::fs::read_to_string(&key))
        {
            return Ok(ClientCert { cert_pem, key_pem });
        }
        let c = self.client_cert(user, groups)?;
        write_private(&key, &c.key_pem).map_err(|e| ServerError::Io(key.clone(), e))?;
        std::fs::write(&crt, &c.cert_pem).map_err(|e| ServerError::Io(crt.clone(), e))?;
        Ok(c)
    }

    /// The admin's client certificate.
    pub fn admin_cert(&self) -> Result<ClientCert, ServerError> {
        self.kept_client_cert("admin", "kubernetes-admin", &["system:masters"])
    }

    /// The API server's own client certificate toward node agents (kube-apiserver's
    /// `--kubelet-client-certificate`): the one identity a node's door lets in.
    pub fn kubelet_client_cert(&self) -> Result<ClientCert, ServerError> {
        use crate::node::door::{APISERVER_GROUP, APISERVER_USER};
        self.kept_client_cert("apiserver-kubelet-client", APISERVER_USER, &[APISERVER_GROUP])
    }

    /// TLS for the API server: our certificate; client certificates from our CA are verified
    /// when offered, and bearer tokens serve clients that offer none.
    pub fn server_config(
        &self,
        names: &[String],
    ) -> Result<Arc<rustls::ServerConfig>, ServerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map_err(|e| tls_err("CA certificate", e))?;
        roots.add(ca).map_err(|e| tls_err("CA certificate", e))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_err("client verifier", e))?;
        let (chain, key) = self.server_cert(names)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls_err("server certificate", e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The cluster CA signs what the certificate-request controllers decided to issue.
impl crate::controllers::certificates::CertificateSigner for Pki {
    fn sign(&self, request: &rcgen::CertificateSigningRequestParams) -> Result<String, String> {
        let issuer = self.issuer().map_err(|e| e.to_string())?;
        request.signed_by(&issuer).map(|c| c.pem()).map_err(|e| e.to_string())
    }
}
