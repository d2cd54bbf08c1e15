//! The consortium's certificate revocation list: signed by the dev CA,
//! written by `certs init` (empty) and extended by [`revoke`], which keeps
//! every entry it listed and signs it anew under a higher CRL number.

use std::fs;
use std::path::{Path, PathBuf};

use pluis_proto::{RevocationList, Serial, SpiffeId};
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{crl_path, generate_error, load_ca, replace_file, CertsError, VALIDITY_DAYS};

/// Why a certificate is revoked (RFC 5280 reason codes Pluis offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reason {
    /// The key may be in other hands (a stolen laptop).
    KeyCompromise,
    /// The holder left (a partner leaving the consortium).
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
}

impl Reason {
    fn rcgen(self) -> RevocationReason {
        match self {
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

/// RFC 5280 reason code → rcgen's, for entries carried over.
fn reason_from_code(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return None,
    })
}

/// Certificates to revoke, by serial or by file.
#[derive(Debug, Clone)]
pub struct RevokeOptions {
    /// The dev PKI directory (its CA signs the CRL).
    pub dir: PathBuf,
    /// Serials to revoke.
    pub serials: Vec<Serial>,
    /// Certificate files to revoke.
    pub certs: Vec<PathBuf>,
    /// Why.
    pub reason: Reason,
    /// The CRL to extend and rewrite (default: `DIR/crl.pem`).
    pub crl: Option<PathBuf>,
}

/// What a revocation wrote.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The CRL file.
    pub crl: PathBuf,
    /// Its new CRL number.
    pub number: u64,
    /// The serials newly revoked, with the identity where a file said it.
    pub added: Vec<(Serial, Option<SpiffeId>)>,
    /// Certificates the CRL lists in all.
    pub total: usize,
}

/// Adds certificates to the consortium's CRL and signs it anew (a higher
/// CRL number); what it listed before stays listed.
pub fn revoke(options: &RevokeOptions) -> Result<Revoked, CertsError> {
    let (_, issuer) = load_ca(&options.dir)?;
    let crl = options
        .crl
        .clone()
        .unwrap_or_else(|| crl_path(&options.dir));
    let mut wanted: Vec<(Serial, Option<SpiffeId>)> =
        options.serials.iter().map(|s| (s.clone(), None)).collect();
    for path in &options.certs {
        let unusable = |reason: String| CertsError::Unusable {
            path: path.clone(),
            reason,
        };
        let pem = fs::read(path).map_err(|error| CertsError::Read {
            path: path.clone(),
            error,
        })?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls::pki_types::CertificateDer<'static>| c)
            .map_err(|e| unusable(format!("not a PEM certificate: {e}")))?;
        let serial = Serial::of_certificate(&der).map_err(|e| unusable(e.to_string()))?;
        wanted.push((serial, SpiffeId::from_certificate_der(&der).ok()));
    }
    if wanted.is_empty() {
        return Err(CertsError::Orgs(
            "give --serial or --cert for each certificate to revoke".into(),
        ));
    }
    let (number, mut entries) = match fs::read(&crl) {
        Ok(pem) => read_crl(&crl, &pem)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, Vec::new()),
        Err(error) => {
            return Err(CertsError::Read {
                path: crl.clone(),
                error,
            })
        }
    };
    let now = crate::clock::now_utc();
    let mut added = Vec::new();
    for (serial, id) in wanted {
        let listed = entries
            .iter()
            .any(|e: &RevokedCertParams| Serial::from_bytes(e.serial_number.as_ref()) == serial);
        if !listed {
            entries.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial.as_bytes()),
                revocation_time: now,
                reason_code: Some(options.reason.rcgen()),
                invalidity_date: None,
            });
            added.push((serial, id));
        }
    }
    let total = entries.len();
    let number = number + 1;
    replace_file(&crl, &crl_pem(&issuer, number, entries, now)?, false)?;
    Ok(Revoked {
        crl,
        number,
        added,
        total,
    })
}

/// The number and entries of an existing CRL file.
fn read_crl(path: &Path, pem: &[u8]) -> Result<(u64, Vec<RevokedCertParams>), CertsError> {
    let unusable = |reason: String| CertsError::Unusable {
        path: path.to_owned(),
        reason,
    };
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem)
        .map(|c: rustls::pki_types::CertificateRevocationListDer<'static>| c)
        .map_err(|e| unusable(format!("not a PEM CRL: {e}")))?;
    let list = RevocationList::parse(&der).map_err(|e| unusable(e.to_string()))?;
    let entries = list
        .revoked
        .into_iter()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
            revocation_time: OffsetDateTime::from_unix_timestamp(r.revoked_at)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            reason_code: r.reason.and_then(reason_from_code),
            invalidity_date: None,
        })
        .collect();
    Ok((list.number.unwrap_or(0), entries))
}

/// A CRL signed by `issuer`, PEM.
pub(super) fn crl_pem(
    issuer: &Issuer<'_, KeyPair>,
    number: u64,
    revoked: Vec<RevokedCertParams>,
    now: OffsetDateTime,
) -> Result<String, CertsError> {
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(VALIDITY_DAYS),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(issuer)
        .and_then(|crl| crl.pem())
        .map_err(|e| generate_error("the CRL", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::certs::tests::options;
    use crate::dev::certs::{identity_paths, init, issue, InitOptions, IssueOptions};
    use pluis_proto::Role;

    fn listed(crl: &Path) -> Vec<Serial> {
        let pem = fs::read(crl).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls::pki_types::CertificateRevocationListDer<'static>| c)
            .unwrap();
        RevocationList::parse(&der)
            .unwrap()
            .revoked
            .into_iter()
            .map(|r| r.serial)
            .collect()
    }

    fn serial_of(cert: &Path) -> Serial {
        let pem = fs::read(cert).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls::pki_types::CertificateDer<'static>| c)
            .unwrap();
        Serial::of_certificate(&der).unwrap()
    }

    #[test]
    fn revocations_accumulate_in_a_crl_signed_anew() {
        let dir = tempfile::tempdir().unwrap();
        init(&options(dir.path())).unwrap();
        assert!(
            listed(&crl_path(dir.path())).is_empty(),
            "init writes an empty CRL"
        );
        let laptop = issue(&IssueOptions {
            dir: dir.path().to_owned(),
            org: "police".into(),
            role: Role::Coordinator,
            out: Some(dir.path().join("police/laptop")),
        })
        .unwrap();
        assert_eq!(
            laptop.id.to_string(),
            "spiffe://test/org/police/coordinator"
        );
        let (original, _) = identity_paths(dir.path(), "police", Role::Coordinator);
        assert_ne!(
            serial_of(&laptop.cert),
            serial_of(&original),
            "a new serial"
        );
        let revoke_options = RevokeOptions {
            dir: dir.path().to_owned(),
            serials: Vec::new(),
            certs: vec![laptop.cert.clone()],
            reason: Reason::KeyCompromise,
            crl: None,
        };
        let first = revoke(&revoke_options).unwrap();
        assert_eq!((first.number, first.total), (2, 1));
        assert_eq!(first.added[0].1.as_ref(), Some(&laptop.id));
        let school = identity_paths(dir.path(), "school", Role::Node).0;
        let second = revoke(&RevokeOptions {
            serials: vec![serial_of(&school)],
            certs: vec![laptop.cert.clone()],
            ..revoke_options
        })
        .unwrap();
        assert_eq!((second.number, second.total), (3, 2), "no duplicate entry");
        assert_eq!(second.added.len(), 1);
        assert_eq!(
            listed(&crl_path(dir.path())),
            [serial_of(&laptop.cert), serial_of(&school)]
        );
    }

    #[test]
    fn a_node_loads_only_crls_of_its_ca_that_spare_its_own_certificate() {
        use pluis_transport::tls::TlsIdentity;
        let dir = tempfile::tempdir().unwrap();
        init(&options(dir.path())).unwrap();
        let (cert, key) = identity_paths(dir.path(), "police", Role::Node);
        let ca = dir.path().join("ca.pem");
        let load = |crl: &Path| {
            TlsIdentity::load(&ca, &cert, &key, Role::Node)
                .unwrap()
                .with_crls(&[crl.to_owned()])
        };
        let school = identity_paths(dir.path(), "school", Role::Node).0;
        revoke(&RevokeOptions {
            dir: dir.path().to_owned(),
            serials: Vec::new(),
            certs: vec![school.clone()],
            reason: Reason::AffiliationChanged,
            crl: None,
        })
        .unwrap();
        let identity = load(&crl_path(dir.path())).unwrap();
        assert!(identity.revocations().is_revoked(&serial_of(&school)));
        assert!(!identity.revocations().is_revoked(&serial_of(&cert)));

        let own = dir.path().join("own.pem");
        revoke(&RevokeOptions {
            dir: dir.path().to_owned(),
            serials: Vec::new(),
            certs: vec![cert.clone()],
            reason: Reason::KeyCompromise,
            crl: Some(own.clone()),
        })
        .unwrap();
        let err = load(&own).unwrap_err().to_string();
        assert!(
            err.contains("own.pem") && err.contains("revokes this node's own certificate"),
            "{err}"
        );

        // Another CA of the same name: its CRL's signature does not verify.
        let twin = tempfile::tempdir().unwrap();
        init(&options(twin.path())).unwrap();
        let err = load(&crl_path(twin.path())).unwrap_err().to_string();
        assert!(err.contains("does not verify against the CA"), "{err}");
        // Another consortium's CA.
        let other = tempfile::tempdir().unwrap();
        init(&InitOptions {
            consortium: "other".into(),
            ..options(other.path())
        })
        .unwrap();
        let err = load(&crl_path(other.path())).unwrap_err().to_string();
        assert!(err.contains("is not a CRL of the CA"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        fs::write(&garbage, "not a crl").unwrap();
        let err = load(&garbage).unwrap_err().to_string();
        assert!(
            err.contains("garbage.pem") && err.contains("no X509 CRL"),
            "{err}"
        );
    }
}
