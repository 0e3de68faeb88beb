//! ServiceAccount tokens: signed JWTs (HMAC-SHA256 under a key made when the sandbox
//! starts), carrying upstream's claims. Nothing is kept per token, so there is no
//! table to bound: a token is valid while its signature checks, it has not expired,
//! its audience is the API server's, and (checked by the caller against the store)
//! its ServiceAccount still exists with the same uid.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// `iss` of every token (upstream's default `--service-account-issuer` on kind and
/// kubeadm clusters).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The API server's audience: the default of a TokenRequest, and what a token must
/// name to authenticate here.
pub const API_AUDIENCE: &str = ISSUER;
/// Longest token accepted; a longer `Authorization` header is refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    pub nbf: i64,
    pub sub: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    /// The Pod the token is bound to (`boundObjectRef`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// Why a token was refused (logged, never sent: the client sees `Unauthorized`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a signed token of this server")]
    Malformed,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("expired at {0}")]
    Expired(i64),
    #[error("not valid before {0}")]
    NotYetValid(i64),
    #[error("issued for audiences {0:?}, not for this API server")]
    WrongAudience(Vec<String>),
}

/// Signs and checks tokens with one key.
pub struct Signer {
    key: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

/// `{"alg":"HS256","typ":"JWT"}`
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

impl Signer {
    /// A signer with a fresh random key.
    pub fn generate() -> Result<Signer, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)?;
        Ok(Signer { key, rng })
    }

    /// `n` random bytes, base64url: token ids and the admin token.
    pub fn random(&self, n: usize) -> Result<String, ring::error::Unspecified> {
        let mut bytes = vec![0u8; n];
        self.rng.fill(&mut bytes)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn sign(&self, claims: &Claims) -> String {
        // Serializing these plain structs cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signed = format!("{HEADER}.{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of a token this signer made, if it is still valid at `now` (unix
    /// seconds) for the API server's audience.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if header != HEADER {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired(claims.exp));
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid(claims.nbf));
        }
        if !claims.aud.iter().any(|a| a == API_AUDIENCE) {
            return Err(TokenError::WrongAudience(claims.aud));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, aud: &str) -> Claims {
        Claims {
            aud: vec![aud.into()],
            exp,
            iat: 100,
            iss: ISSUER.into(),
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "demo".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                pod: None,
            },
            nbf: 100,
            sub: "system:serviceaccount:demo:sa".into(),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let signer = Signer::generate().expect("a key");
        let token = signer.sign(&claims(200, API_AUDIENCE));
        assert_eq!(signer.verify(&token, 150), Ok(claims(200, API_AUDIENCE)));
        assert_eq!(signer.verify(&token, 200), Err(TokenError::Expired(200)));
        assert_eq!(signer.verify(&token, 99), Err(TokenError::NotYetValid(100)));
    }

    #[test]
    fn another_key_tampering_and_other_audiences_are_refused() {
        let signer = Signer::generate().expect("a key");
        let other = Signer::generate().expect("a key");
        let token = signer.sign(&claims(200, API_AUDIENCE));
        assert_eq!(other.verify(&token, 150), Err(TokenError::BadSignature));
        let (head, sig) = token.rsplit_once('.').expect("three parts");
        let (_, body) = head.split_once('.').expect("three parts");
        let forged_body = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims(i64::MAX, API_AUDIENCE)).expect("serializes"));
        assert_ne!(body, forged_body);
        let forged = format!("{HEADER}.{forged_body}.{sig}");
        assert_eq!(signer.verify(&forged, 150), Err(TokenError::BadSignature));
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "..",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(
                signer.verify(bad, 150),
                Err(TokenError::Malformed),
                "{bad:.20}"
            );
        }
        let vault = signer.sign(&claims(200, "vault"));
        assert_eq!(
            signer.verify(&vault, 150),
            Err(TokenError::WrongAudience(vec!["vault".into()]))
        );
    }
}
