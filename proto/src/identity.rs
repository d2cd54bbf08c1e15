//! Who is on the other end of a connection.
//!
//! Every Pluis certificate carries exactly one URI SAN of the form
//! `spiffe://<consortium>/org/<org>/<role>`. Servers authorise on that
//! identity, never on IP addresses or common names. A [`SpiffeId`] can be
//! built by parsing such a URI (for configuration and for the dev PKI) or
//! from a certificate; either way it has passed the same checks.
//!
//! A certificate is revoked by its [`Serial`] in a CRL signed by the
//! consortium CA; [`RevocationList::parse`] reads one (its signature is
//! checked by the TLS verifier that uses it, not here).

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The three roles a certificate can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A partner organisation's node; may call another node's `Partner` service.
    Node,
    /// A case coordinator; may call its own organisation's `Coordinator` service.
    Coordinator,
    /// An auditor or privacy officer; may call the `Audit` service.
    Auditor,
}

impl Role {
    /// All roles, in the order the dev PKI issues them.
    pub const ALL: [Role; 3] = [Role::Node, Role::Coordinator, Role::Auditor];

    /// The role's path segment in a SPIFFE id.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Coordinator => "coordinator",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

/// Why an identity was refused. Messages name the offending part; they hold
/// certificate metadata only, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The URI does not start with `spiffe://`.
    #[error("not a SPIFFE id (expected spiffe://CONSORTIUM/org/ORG/ROLE): {0:?}")]
    NotSpiffe(String),
    /// The path is not `/org/<org>/<role>`.
    #[error("SPIFFE id path must be /org/ORG/ROLE: {0:?}")]
    BadPath(String),
    /// A name segment is empty or has characters outside `[a-z0-9._-]`.
    #[error("{what} {value:?} must be 1-63 characters of a-z, 0-9, '.', '-', '_'")]
    BadName {
        /// Which segment: "consortium" or "org".
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The role segment is not one of node, coordinator, auditor.
    #[error("unknown role {0:?} (expected node, coordinator or auditor)")]
    UnknownRole(String),
    /// The certificate could not be parsed as X.509 DER.
    #[error("certificate is not valid X.509: {0}")]
    BadCertificate(String),
    /// The certificate has no SPIFFE URI SAN.
    #[error("certificate carries no spiffe:// URI SAN")]
    NoSpiffeSan,
    /// The certificate has more than one SPIFFE URI SAN.
    #[error("certificate carries {0} spiffe:// URI SANs; exactly one is allowed")]
    SeveralSpiffeSans(usize),
    /// A serial number given as text is not hexadecimal.
    #[error("serial {0:?} is not a hexadecimal number (like 4a:1f:… or 4a1f…)")]
    BadSerial(String),
    /// A CRL could not be parsed.
    #[error("not a valid X.509 CRL: {0}")]
    BadCrl(String),
}

/// A certificate's serial number, as a positive DER integer's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// The serial of big-endian `bytes`, in the minimal form DER uses
    /// (so that a serial read from a certificate and one read from a CRL
    /// compare equal).
    pub fn from_bytes(bytes: &[u8]) -> Serial {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let mut minimal = bytes[start..].to_vec();
        if minimal.first().is_none_or(|b| *b >= 0x80) {
            minimal.insert(0, 0);
        }
        Serial(minimal)
    }

    /// The serial of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Result<Serial, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        Ok(Serial::from_bytes(cert.raw_serial()))
    }

    /// Parses hex, with or without `:` separators or a `0x` prefix.
    pub fn parse_hex(text: &str) -> Result<Serial, IdentityError> {
        let bad = || IdentityError::BadSerial(text.chars().take(80).collect());
        let digits: String = text
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).map_err(|_| bad()))
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(Serial::from_bytes(&bytes))
    }

    /// The bytes, minimal and positive.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    /// Lowercase hex pairs separated by `:`, as `openssl x509 -serial`
    /// shows them (without its leading zero byte).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = match self.0.as_slice() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            all => all,
        };
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One revoked certificate in a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Its serial.
    pub serial: Serial,
    /// When it was revoked, in Unix seconds.
    pub revoked_at: i64,
    /// The RFC 5280 reason code, if given.
    pub reason: Option<u8>,
}

/// What a certificate revocation list says (not yet checked against its
/// issuer: the TLS verifier does that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationList {
    /// The issuer's distinguished name, as text.
    pub issuer: String,
    /// The CRL number, if it has one that fits 64 bits.
    pub number: Option<u64>,
    /// When it was issued, in Unix seconds.
    pub this_update: i64,
    /// The certificates it revokes.
    pub revoked: Vec<Revoked>,
}

impl RevocationList {
    /// Parses a DER-encoded CRL.
    pub fn parse(der: &[u8]) -> Result<RevocationList, IdentityError> {
        let (_, crl) =
            x509_parser::parse_x509_crl(der).map_err(|e| IdentityError::BadCrl(e.to_string()))?;
        let number = crl.crl_number().and_then(|n| u64::try_from(n.clone()).ok());
        Ok(RevocationList {
            issuer: crl.issuer().to_string(),
            number,
            this_update: crl.last_update().timestamp(),
            revoked: crl
                .iter_revoked_certificates()
                .map(|r| Revoked {
                    serial: Serial::from_bytes(r.raw_serial()),
                    revoked_at: r.revocation_date.timestamp(),
                    reason: r.reason_code().map(|(_, code)| code.0),
                })
                .collect(),
        })
    }
}

/// An organisation's id, as its SPIFFE ids carry it: checked like one
/// ([`check_name`]), so that it is safe in a path, a file name and a log
/// line. It reads as a `str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(String);

impl fmt::Debug for OrgId {
    /// As its text's: an org id in an error reads `"police"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl OrgId {
    /// The id `name`, if it is a valid organisation name.
    pub fn new(name: &str) -> Result<OrgId, IdentityError> {
        check_name("org", name)?;
        Ok(OrgId(name.to_owned()))
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for OrgId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for OrgId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for OrgId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for OrgId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<&str> for OrgId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl FromStr for OrgId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgId::new(s)
    }
}

/// A validated `spiffe://<consortium>/org/<org>/<role>` identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    consortium: String,
    org: OrgId,
    role: Role,
}

impl SpiffeId {
    /// Builds an identity from its parts, checking each name.
    pub fn new(consortium: &str, org: &str, role: Role) -> Result<Self, IdentityError> {
        check_name("consortium", consortium)?;
        Ok(SpiffeId {
            consortium: consortium.to_owned(),
            org: OrgId::new(org)?,
            role,
        })
    }

    /// Reads the single SPIFFE URI SAN of a DER-encoded certificate.
    ///
    /// The certificate's chain must already have been verified by TLS; this
    /// only extracts the identity it asserts.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let uris: Vec<&str> = san
            .map(|ext| ext.value.general_names.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
                _ => None,
            })
            .collect();
        match uris.as_slice() {
            [] => Err(IdentityError::NoSpiffeSan),
            [uri] => uri.parse(),
            many => Err(IdentityError::SeveralSpiffeSans(many.len())),
        }
    }

    /// The consortium (SPIFFE trust domain).
    pub fn consortium(&self) -> &str {
        &self.consortium
    }

    /// The organisation id.
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/org/{}/{}",
            self.consortium, self.org, self.role
        )
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| IdentityError::NotSpiffe(s.to_owned()))?;
        let (consortium, path) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError::BadPath(s.to_owned()))?;
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["org", org, role] => SpiffeId::new(consortium, org, role.parse()?),
            _ => Err(IdentityError::BadPath(s.to_owned())),
        }
    }
}

/// Checks a consortium or organisation name: what may appear in a SPIFFE
/// trust domain or path segment, in a file name, and in a log line.
pub fn check_name(what: &'static str, value: &str) -> Result<(), IdentityError> {
    let ok = (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !value.starts_with('.')
        && !value.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName {
            what,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let id: SpiffeId = "spiffe://demo/org/police/coordinator".parse().unwrap();
        assert_eq!(id.consortium(), "demo");
        assert_eq!(id.org(), "police");
        assert_eq!(id.role(), Role::Coordinator);
        assert_eq!(id.to_string(), "spiffe://demo/org/police/coordinator");
    }

    #[test]
    fn rejects_malformed_ids() {
        let cases = [
            ("https://demo/org/police/node", "not a SPIFFE id"),
            ("spiffe://demo", "path must be"),
            ("spiffe://demo/org/police", "path must be"),
            ("spiffe://demo/org/police/node/extra", "path must be"),
            ("spiffe://demo/team/police/node", "path must be"),
            ("spiffe://demo/org/police/admin", "unknown role \"admin\""),
            ("spiffe://Demo/org/police/node", "consortium \"Demo\""),
            ("spiffe://demo/org//node", "org \"\""),
            ("spiffe://demo/org/po lice/node", "org \"po lice\""),
        ];
        for (input, expected) in cases {
            let err = input.parse::<SpiffeId>().unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn serials_compare_in_their_minimal_form_and_print_as_hex_pairs() {
        let a = Serial::parse_hex("4A:1F:00").unwrap();
        let b = Serial::from_bytes(&[0, 0, 0x4a, 0x1f, 0]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "4a:1f:00");
        // A high first bit takes a leading zero in DER, as in a certificate.
        let high = Serial::parse_hex("0x8001").unwrap();
        assert_eq!(high.as_bytes(), [0, 0x80, 1]);
        assert_eq!(high.to_string(), "80:01");
        assert_eq!(Serial::parse_hex("abc").unwrap().as_bytes(), [0x0a, 0xbc]);
        for bad in ["", "xyz", "12 34", "0x"] {
            assert!(Serial::parse_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn garbage_crl_is_an_error_not_a_panic() {
        let err = RevocationList::parse(b"\x30\x03\x02\x01").unwrap_err();
        assert!(matches!(err, IdentityError::BadCrl(_)), "{err}");
    }

    #[test]
    fn garbage_certificate_is_an_error_not_a_panic() {
        let err = SpiffeId::from_certificate_der(b"\x30\x03\x02\x01").unwrap_err();
        assert!(matches!(err, IdentityError::BadCertificate(_)), "{err}");
    }
}
