//! The rules a call can be refused under. A refusal names exactly one;
//! its stable name is what the audit entry, the metric label
//! (`pluis_refused_total{reason=…}`) and the caller's status carry, so a
//! rule is a type here and a name only at those edges.

/// One rule a caller can be refused under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Rule {
    /// No usable mutual-TLS identity, or the wrong role, org or consortium.
    #[default]
    Authorisation,
    /// The caller's certificate is on a CRL this node loads.
    Revoked,
    /// A certificate refused in the handshake (before any call).
    Certificate,
    /// A TLS handshake not finished in time (before any call).
    HandshakeTimeout,
    /// Too many connections in all or for one identity.
    Connections,
    /// A field out of its bounds, or a message that does not decode.
    Input,
    /// A method no service here has.
    Method,
    /// No policy for the calling peer.
    Peers,
    /// A purpose the caller may not ask for.
    Purposes,
    /// A legal basis other than the one bound to the purpose.
    LegalBasis,
    /// Too many (or no) keys in one request.
    MaxKeysPerRequest,
    /// The day's key budget spent.
    MaxKeysPerDay,
    /// The day's budget of probable-tier (spelling variant) keys spent.
    MaxProbableKeysPerDay,
    /// The day's budget of possible-tier (weak) keys spent.
    MaxPossibleKeysPerDay,
    /// The day's budget of persons asked about spent.
    MaxPersonsPerDay,
    /// A tag prefix shorter than the peer may fetch.
    MinPrefixBits,
    /// A table call outside an exchange that may have it.
    Exchange,
    /// More table buckets than the exchange evaluated keys.
    Buckets,
    /// An epoch not served (too old, or not yet begun).
    Epoch,
}

impl Rule {
    /// The stable name, as config keys and audit entries spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::Authorisation => "authorisation",
            Rule::Revoked => "revoked",
            Rule::Certificate => "certificate",
            Rule::HandshakeTimeout => "handshake_timeout",
            Rule::Connections => "connections",
            Rule::Input => "input",
            Rule::Method => "method",
            Rule::Peers => "peers",
            Rule::Purposes => "purposes",
            Rule::LegalBasis => "legal_basis",
            Rule::MaxKeysPerRequest => "max_keys_per_request",
            Rule::MaxKeysPerDay => "max_keys_per_day",
            Rule::MaxProbableKeysPerDay => "max_probable_keys_per_day",
            Rule::MaxPossibleKeysPerDay => "max_possible_keys_per_day",
            Rule::MaxPersonsPerDay => "max_persons_per_day",
            Rule::MinPrefixBits => "min_prefix_bits",
            Rule::Exchange => "exchange",
            Rule::Buckets => "buckets",
            Rule::Epoch => "epoch",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
