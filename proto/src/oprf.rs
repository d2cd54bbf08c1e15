//! The oblivious PRF: RFC 9497, suite ristretto255-SHA512, OPRF mode,
//! through the `voprf` crate (curve arithmetic from curve25519-dalek).
//!
//! A responder holds one [`EpochKey`] per epoch: one OPRF key per key
//! family ([`crate::families`]), each derived (RFC 9497 DeriveKeyPair)
//! from the epoch's seed with the family's name as `info`, so that an
//! input of one family never opens an entry of another. It evaluates its own keys
//! directly ([`EpochKey::evaluate_input`], for its labelled table) and a
//! requester's blinded elements ([`EpochKey::evaluate_blinded`]), which
//! tell it nothing about the requester's keys. The requester blinds with
//! [`blind`] and unblinds with [`Blinded::finalize`]; both sides arrive at
//! the same 64-byte output for the same key, and nobody without the epoch
//! key can compute it. Checked against RFC 9497 appendix A.1.1.

use rand_core::{CryptoRng, RngCore};
use voprf::{BlindedElement, EvaluationElement, OprfClient, OprfServer, Ristretto255};

use crate::families::Family;

/// Length of a serialised group element (blinded or evaluated).
pub const ELEMENT_LEN: usize = 32;
/// Length of an OPRF output (SHA-512).
pub const OUTPUT_LEN: usize = 64;
/// Length of the seed an epoch key is derived from.
pub const SEED_LEN: usize = 32;
/// The RFC 9497 `info` under which Pluis derives the exact family's epoch
/// key; the other families append `/` and their name.
const KEY_INFO: &[u8] = b"pluis/epoch-key/v1";

/// An OPRF output: what both sides compute for the same key.
pub type OprfOutput = [u8; OUTPUT_LEN];

/// Why an OPRF step failed. Never carries the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OprfError {
    /// A blinded or evaluated element is not a canonical, non-identity
    /// ristretto255 point of 32 bytes.
    #[error("not a valid ristretto255 element (32 bytes, canonical, not the identity)")]
    BadElement,
    /// The input hashes to the identity (negligible), or key derivation failed.
    #[error("OPRF computation failed")]
    Failed,
}

fn output(bytes: &[u8]) -> Result<OprfOutput, OprfError> {
    bytes.try_into().map_err(|_| OprfError::Failed)
}

/// A responder's OPRF keys for one epoch, one per key family.
pub struct EpochKey {
    /// In [`Family::ALL`] order.
    servers: Vec<OprfServer<Ristretto255>>,
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochKey(…)")
    }
}

impl EpochKey {
    /// The key derived (RFC 9497 DeriveKeyPair) from a 32-byte secret seed.
    /// Nodes store the seed, sealed, and re-derive the key at start.
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Result<EpochKey, OprfError> {
        let servers = Family::ALL
            .into_iter()
            .map(|family| {
                let info = match family {
                    Family::Exact => KEY_INFO.to_vec(),
                    other => [KEY_INFO, b"/", other.code().as_bytes()].concat(),
                };
                OprfServer::new_from_seed(seed, &info).map_err(|_| OprfError::Failed)
            })
            .collect::<Result<_, _>>()?;
        Ok(EpochKey { servers })
    }

    fn server(&self, family: Family) -> Result<&OprfServer<Ristretto255>, OprfError> {
        self.servers
            .get(family.wire() as usize)
            .ok_or(OprfError::Failed)
    }

    /// Evaluates a requester's blinded element under `family`'s key.
    pub fn evaluate_blinded(
        &self,
        family: Family,
        blinded: &[u8],
    ) -> Result<[u8; ELEMENT_LEN], OprfError> {
        let element = BlindedElement::<Ristretto255>::deserialize(blinded)
            .map_err(|_| OprfError::BadElement)?;
        let evaluated = self.server(family)?.blind_evaluate(&element).serialize();
        evaluated[..].try_into().map_err(|_| OprfError::Failed)
    }

    /// The OPRF output for one of the responder's own inputs, under the
    /// key of the family its prefix names (the exact family's for
    /// anything else).
    pub fn evaluate_input(&self, input: &[u8]) -> Result<OprfOutput, OprfError> {
        let family = std::str::from_utf8(input)
            .ok()
            .and_then(Family::of_input)
            .unwrap_or(Family::Exact);
        let out = self
            .server(family)?
            .evaluate(input)
            .map_err(|_| OprfError::Failed)?;
        output(&out[..])
    }
}

/// A requester's blinded input, with the secret needed to unblind it.
pub struct Blinded {
    state: OprfClient<Ristretto255>,
    /// The blinded element to send.
    pub element: [u8; ELEMENT_LEN],
}

impl std::fmt::Debug for Blinded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blinded(…)")
    }
}

/// Blinds `input` with a fresh random scalar.
pub fn blind(input: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> Result<Blinded, OprfError> {
    let result = OprfClient::<Ristretto255>::blind(input, rng).map_err(|_| OprfError::Failed)?;
    let element = result.message.serialize()[..]
        .try_into()
        .map_err(|_| OprfError::Failed)?;
    Ok(Blinded {
        state: result.state,
        element,
    })
}

impl Blinded {
    /// Unblinds the responder's evaluation to the OPRF output of `input`.
    pub fn finalize(&self, input: &[u8], evaluated: &[u8]) -> Result<OprfOutput, OprfError> {
        let element = EvaluationElement::<Ristretto255>::deserialize(evaluated)
            .map_err(|_| OprfError::BadElement)?;
        let out = self
            .state
            .finalize(input, &element)
            .map_err(|_| OprfError::Failed)?;
        output(&out[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voprf::Group;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 9497 appendix A.1.1: OPRF(ristretto255, SHA-512), mode 0.
    #[test]
    fn rfc_9497_a_1_1_test_vectors() {
        let seed = unhex("a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3");
        let server = OprfServer::<Ristretto255>::new_from_seed(&seed, b"test key").unwrap();
        let sk = OprfServer::<Ristretto255>::new_with_key(&unhex(
            "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e",
        ))
        .unwrap();
        let blind_scalar = Ristretto255::deserialize_scalar(&unhex(
            "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        ))
        .unwrap();
        let vectors = [
            (
                "00",
                "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
                "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
                "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
            ),
            (
                "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
                "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
                "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
                "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
            ),
        ];
        for (input, blinded, evaluated, out) in vectors {
            let input = unhex(input);
            let client =
                OprfClient::<Ristretto255>::deterministic_blind_unchecked(&input, blind_scalar)
                    .unwrap();
            assert_eq!(hex(&client.message.serialize()), blinded);
            // DeriveKeyPair gave the RFC's skSm: both servers agree.
            for s in [&server, &sk] {
                let eval = s.blind_evaluate(&client.message);
                assert_eq!(hex(&eval.serialize()), evaluated);
                let output = client.state.finalize(&input, &eval).unwrap();
                assert_eq!(hex(&output), out);
                assert_eq!(hex(&s.evaluate(&input).unwrap()), out);
            }
            // And through Pluis's own wrapper, from the blinded bytes on.
            let key = EpochKey {
                servers: vec![sk.clone()],
            };
            let evaluated_bytes = key
                .evaluate_blinded(Family::Exact, &unhex(blinded))
                .unwrap();
            assert_eq!(hex(&evaluated_bytes), evaluated);
            assert_eq!(hex(&key.evaluate_input(&input).unwrap()), out);
        }
    }

    #[test]
    fn blind_evaluate_finalize_agrees_with_direct_evaluation() {
        let mut rng = rand_core::OsRng;
        let key = EpochKey::from_seed(&[7; SEED_LEN]).unwrap();
        let input = b"bsn:111222333";
        let blinded = blind(input, &mut rng).unwrap();
        let evaluated = key
            .evaluate_blinded(Family::Exact, &blinded.element)
            .unwrap();
        let output = blinded.finalize(input, &evaluated).unwrap();
        assert_eq!(output, key.evaluate_input(input).unwrap());
        // The exact family's key is the one derived before families
        // existed: tables and epochs of older nodes agree.
        let legacy = OprfServer::<Ristretto255>::new_from_seed(&[7; SEED_LEN], KEY_INFO).unwrap();
        assert_eq!(&legacy.evaluate(input).unwrap()[..], &output[..]);
        // Every family has its own key: the same input, another output.
        let spelling = b"sp:jansen,j,2010-04-01";
        let b = blind(spelling, &mut rng).unwrap();
        let under_exact = key.evaluate_blinded(Family::Exact, &b.element).unwrap();
        let under_spelling = key.evaluate_blinded(Family::Spelling, &b.element).unwrap();
        assert_ne!(under_exact, under_spelling);
        assert_eq!(
            b.finalize(spelling, &under_spelling).unwrap(),
            key.evaluate_input(spelling).unwrap(),
            "a table entry opens only under its own family's key"
        );
        assert_ne!(
            b.finalize(spelling, &under_exact).unwrap(),
            key.evaluate_input(spelling).unwrap()
        );
        let other = EpochKey::from_seed(&[8; SEED_LEN]).unwrap();
        assert_ne!(output, other.evaluate_input(input).unwrap());
        // A fresh blind gives a different element for the same input.
        assert_ne!(blind(input, &mut rng).unwrap().element, blinded.element);
    }

    #[test]
    fn bad_elements_are_refused_not_panicked_on() {
        let key = EpochKey::from_seed(&[7; SEED_LEN]).unwrap();
        let identity = [0u8; ELEMENT_LEN];
        let non_canonical = [0xffu8; ELEMENT_LEN];
        for bad in [&identity[..], &non_canonical[..], &[1u8; 31][..], &[][..]] {
            assert_eq!(
                key.evaluate_blinded(Family::Exact, bad),
                Err(OprfError::BadElement)
            );
        }
        let blinded = blind(b"x", &mut rand_core::OsRng).unwrap();
        assert_eq!(
            blinded.finalize(b"x", &identity),
            Err(OprfError::BadElement)
        );
    }
}
