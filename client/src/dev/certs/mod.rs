//! The development PKI: one consortium CA and, per organisation, a node,
//! a coordinator and an auditor certificate.
//!
//! Every leaf carries exactly one URI SAN `spiffe://CONSORTIUM/org/ORG/ROLE`
//! (the identity Pluis authorises on; the common name is decoration). Node
//! certificates are both TLS servers and clients and also name `localhost`,
//! `127.0.0.1` and `::1`. Keys are ECDSA P-256, written with mode 0600.
//! For production, an organisation's own PKI issues the same shapes.
//!
//! The CA also signs the consortium's certificate revocation list,
//! `crl.pem` (empty at first): [`revoke`] adds a certificate to it, and
//! [`issue`] makes a new one for an identity (a replacement laptop, a
//! node's rotated key).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use pluis_proto::identity::check_name;
use pluis_proto::{Role, SpiffeId};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

mod crl;
use crl::crl_pem;
pub use crl::{revoke, Reason, RevokeOptions, Revoked};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

/// How long dev certificates are valid.
const VALIDITY_DAYS: i64 = 365;

/// Why the dev PKI could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A consortium or org name is not usable in a SPIFFE id.
    #[error("{0}")]
    Name(#[from] pluis_proto::IdentityError),
    /// The same org was given twice, or none at all.
    #[error("{0}")]
    Orgs(String),
    /// The output directory already holds files.
    #[error("{dir} already holds {found}; pass --force to replace the dev PKI there")]
    Exists {
        /// The output directory.
        dir: PathBuf,
        /// One of the files found.
        found: String,
    },
    /// rcgen could not make a key or certificate.
    #[error("cannot generate {what}: {error}")]
    Generate {
        /// Which certificate.
        what: String,
        /// rcgen's error.
        error: rcgen::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file holds nothing usable.
    #[error("{path}: {reason}")]
    Unusable {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What `pluis certs init` was asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where to write.
    pub out: PathBuf,
    /// The consortium name (SPIFFE trust domain).
    pub consortium: String,
    /// The organisations.
    pub orgs: Vec<String>,
    /// Replace an existing dev PKI in `out`.
    pub force: bool,
}

/// Where one identity's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The identity in the certificate.
    pub id: SpiffeId,
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// The private key, PEM, mode 0600.
    pub key: PathBuf,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The CA certificate.
    pub ca_cert: PathBuf,
    /// The CA key.
    pub ca_key: PathBuf,
    /// Every leaf, per org in the order given, roles in [`Role::ALL`] order.
    pub leaves: Vec<IdentityFiles>,
}

/// The path of ORG's ROLE certificate and key under a dev PKI directory.
pub fn identity_paths(dir: &Path, org: &str, role: Role) -> (PathBuf, PathBuf) {
    let base = dir.join(org);
    (
        base.join(format!("{role}.pem")),
        base.join(format!("{role}.key")),
    )
}

/// The consortium's CRL in a dev PKI directory.
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join("crl.pem")
}

/// Creates the consortium CA, its (empty) CRL and every org's three leaves.
pub fn init(options: &InitOptions) -> Result<Issued, CertsError> {
    check_name("consortium", &options.consortium)?;
    if options.orgs.is_empty() {
        return Err(CertsError::Orgs("give at least one --org".into()));
    }
    for (i, org) in options.orgs.iter().enumerate() {
        check_name("org", org)?;
        if options.orgs[..i].contains(org) {
            return Err(CertsError::Orgs(format!("--org {org} is given twice")));
        }
    }
    if !options.force {
        refuse_existing(&options.out)?;
    }

    // Everything is generated in memory first: a failure leaves no half PKI.
    let now = crate::clock::now_utc();
    let (ca_params, ca_key) = ca(&options.consortium, now)?;
    let issuer = Issuer::new(ca_params.clone(), ca_key);
    let ca_cert = ca_params
        .self_signed(issuer.key())
        .map_err(|error| generate_error("the CA certificate", error))?;
    let mut files: Vec<(PathBuf, String, bool)> = vec![
        (options.out.join("ca.pem"), ca_cert.pem(), false),
        (
            options.out.join("ca.key"),
            issuer.key().serialize_pem(),
            true,
        ),
    ];
    files.push((
        crl_path(&options.out),
        crl_pem(&issuer, 1, Vec::new(), now)?,
        false,
    ));
    let mut leaves = Vec::new();
    for org in &options.orgs {
        for role in Role::ALL {
            let id = SpiffeId::new(&options.consortium, org, role)?;
            let (cert_pem, key_pem) = leaf(&id, &issuer, now)?;
            let (cert, key) = identity_paths(&options.out, org, role);
            files.push((cert.clone(), cert_pem, false));
            files.push((key.clone(), key_pem, true));
            leaves.push(IdentityFiles { id, cert, key });
        }
    }

    create_dir(&options.out)?;
    for org in &options.orgs {
        create_dir(&options.out.join(org))?;
    }
    for (path, contents, secret) in &files {
        write_file(path, contents, *secret)?;
    }
    Ok(Issued {
        ca_cert: options.out.join("ca.pem"),
        ca_key: options.out.join("ca.key"),
        leaves,
    })
}

/// A new certificate for one identity, signed by an existing dev CA.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// The dev PKI directory (its `ca.pem` and `ca.key`).
    pub dir: PathBuf,
    /// The organisation.
    pub org: String,
    /// The role.
    pub role: Role,
    /// Where to write: `OUT.pem` and `OUT.key`; by default the identity's
    /// usual files (`DIR/ORG/ROLE.pem`, `.key`), replaced.
    pub out: Option<PathBuf>,
}

/// The consortium CA of a dev PKI directory, as an issuer.
pub(super) fn load_ca(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>), CertsError> {
    let read = |path: PathBuf| {
        fs::read_to_string(&path)
            .map_err(|error| CertsError::Read {
                path: path.clone(),
                error,
            })
            .map(|text| (path, text))
    };
    let (ca_path, ca_pem) = read(dir.join("ca.pem"))?;
    let (key_path, key_pem) = read(dir.join("ca.key"))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| CertsError::Unusable {
        path: key_path,
        reason: format!("not a usable private key: {e}"),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| CertsError::Unusable {
        path: ca_path.clone(),
        reason: format!("not a usable CA certificate: {e}"),
    })?;
    let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c)
        .map_err(|e| CertsError::Unusable {
            path: ca_path.clone(),
            reason: format!("not a PEM certificate: {e}"),
        })?;
    // The consortium is the trust domain of the CA's own leaves; read it
    // from the CA's name as `init` wrote it.
    let consortium = consortium_of(&ca_der).ok_or_else(|| CertsError::Unusable {
        path: ca_path,
        reason: "not a Pluis dev CA (its name does not say which consortium)".into(),
    })?;
    Ok((consortium, issuer))
}

/// The consortium a dev CA certificate was made for (`O=Pluis consortium NAME`).
fn consortium_of(ca: &[u8]) -> Option<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(ca).ok()?;
    let org = cert.subject().iter_organization().next()?.as_str().ok()?;
    org.strip_prefix("Pluis consortium ").map(str::to_owned)
}

/// Issues a new certificate and key for ORG's ROLE from the dev CA in
/// `dir`. The old certificate stays valid until it expires or is revoked.
pub fn issue(options: &IssueOptions) -> Result<IdentityFiles, CertsError> {
    let (consortium, issuer) = load_ca(&options.dir)?;
    let id = SpiffeId::new(&consortium, &options.org, options.role)?;
    let (cert_pem, key_pem) = leaf(&id, &issuer, crate::clock::now_utc())?;
    let (cert, key) = match &options.out {
        Some(stem) => (stem.with_extension("pem"), stem.with_extension("key")),
        None => identity_paths(&options.dir, &options.org, options.role),
    };
    if let Some(parent) = cert.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    // The key first: a node reloading between the two writes finds a
    // key that does not match its certificate and keeps the old pair.
    replace_file(&key, &key_pem, true)?;
    replace_file(&cert, &cert_pem, false)?;
    Ok(IdentityFiles { id, cert, key })
}

/// Writes `contents` beside `path`, then renames it into place, so that a
/// node reading the file sees the old one or the new one.
pub(super) fn replace_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertsError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    write_file(&temporary, contents, secret)?;
    fs::rename(&temporary, path).map_err(|error| CertsError::Write {
        path: path.to_owned(),
        error,
    })
}

pub(super) fn generate_error(what: &str, error: rcgen::Error) -> CertsError {
    CertsError::Generate {
        what: what.to_owned(),
        error,
    }
}

fn refuse_existing(dir: &Path) -> Result<(), CertsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(CertsError::Write {
                path: dir.to_owned(),
                error,
            })
        }
    };
    if let Some(entry) = entries.flatten().next() {
        return Err(CertsError::Exists {
            dir: dir.to_owned(),
            found: entry.file_name().to_string_lossy().into_owned(),
        });
    }
    Ok(())
}

/// A positive 128-bit random serial, as RFC 5280 asks (unique per CA).
fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // SystemRandom only fails if the OS has no entropy source at all; then
    // a fixed-but-nonzero serial is still a valid (if less unique) one.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn ca(consortium: &str, now: OffsetDateTime) -> Result<(CertificateParams, KeyPair), CertsError> {
    let key = KeyPair::generate().map_err(|e| generate_error("the CA key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        format!("Pluis consortium {consortium}"),
    );
    dn.push(DnType::CommonName, format!("Pluis dev CA {consortium}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial());
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    Ok((params, key))
}

fn leaf(
    id: &SpiffeId,
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> Result<(String, String), CertsError> {
    let what = format!("the certificate for {id}");
    let key = KeyPair::generate().map_err(|e| generate_error(&what, e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, id.org().as_str());
    dn.push(DnType::CommonName, format!("{} {}", id.org(), id.role()));
    params.distinguished_name = dn;
    let uri = id
        .to_string()
        .try_into()
        .map_err(|e| generate_error(&what, e))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if id.role() == Role::Node {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        params.subject_alt_names.extend([
            SanType::DnsName(
                "localhost"
                    .try_into()
                    .map_err(|e| generate_error(&what, e))?,
            ),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]);
    }
    params.serial_number = Some(serial());
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| generate_error(&what, e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub(super) fn create_dir(dir: &Path) -> Result<(), CertsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|error| CertsError::Write {
        path: dir.to_owned(),
        error,
    })
}

/// Writes a file afresh; secrets get mode 0600 from the moment they exist.
pub(super) fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertsError> {
    let write_error = |error| CertsError::Write {
        path: path.to_owned(),
        error,
    };
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_error(e)),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A dev PKI of the police and the school in `dir`.
    pub(in crate::dev::certs) fn options(dir: &Path) -> InitOptions {
        InitOptions {
            out: dir.to_owned(),
            consortium: "test".into(),
            orgs: vec!["police".into(), "school".into()],
            force: false,
        }
    }

    #[test]
    fn writes_every_leaf_with_its_spiffe_id() {
        let dir = tempfile::tempdir().unwrap();
        let issued = init(&options(dir.path())).unwrap();
        assert_eq!(issued.leaves.len(), 6);
        for leaf in &issued.leaves {
            let pem = fs::read(&leaf.cert).unwrap();
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
                .map(|c: rustls::pki_types::CertificateDer<'static>| c)
                .unwrap();
            assert_eq!(SpiffeId::from_certificate_der(&der).unwrap(), leaf.id);
        }
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let issued = init(&options(dir.path())).unwrap();
        let keys = issued.leaves.iter().map(|l| l.key.clone());
        for key in keys.chain([issued.ca_key]) {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        init(&options(dir.path())).unwrap();
        let before = fs::read(dir.path().join("ca.pem")).unwrap();
        let err = init(&options(dir.path())).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(fs::read(dir.path().join("ca.pem")).unwrap(), before);
        let forced = InitOptions {
            force: true,
            ..options(dir.path())
        };
        init(&forced).unwrap();
        assert_ne!(fs::read(dir.path().join("ca.pem")).unwrap(), before);
    }

    #[test]
    fn rejects_bad_and_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = options(dir.path());
        bad.orgs = vec!["Police Dept".into()];
        assert!(init(&bad)
            .unwrap_err()
            .to_string()
            .contains("\"Police Dept\""));
        bad.orgs = vec!["police".into(), "police".into()];
        assert!(init(&bad).unwrap_err().to_string().contains("twice"));
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
