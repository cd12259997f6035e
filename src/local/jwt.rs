//! Executor authentication tokens: HMAC-SHA256 JWTs with the claims `fid`, `eid` and `cid`, as
//! an agent with `--jwt_secret_key` mints them into `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` and
//! checks them on `Authorization: Bearer <token>` (`src/slave/slave.cpp`,
//! `src/authentication/executor/jwt_secret_generator.cpp`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The principal an executor token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub framework_id: String,
    pub executor_id: String,
    pub container_id: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not three base64url parts")]
    Malformed,
    #[error("the token header is not an HS256 JWT header")]
    Header,
    #[error("the token signature does not verify")]
    Signature,
    #[error("the token payload lacks the 'fid', 'eid' or 'cid' claim")]
    Claims,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this never fails.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// Mints a token for `claims`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::json!({
        "cid": claims.container_id,
        "eid": claims.executor_id,
        "fid": claims.framework_id,
    });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies a token's signature and returns its claims.
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header_json: serde_json::Value =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Header)?;
    if header_json.get("alg").and_then(|v| v.as_str()) != Some("HS256") {
        return Err(TokenError::Header);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let payload: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Claims)?;
    let claim = |name: &str| {
        payload
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or(TokenError::Claims)
    };
    Ok(Claims {
        framework_id: claim("fid")?,
        executor_id: claim("eid")?,
        container_id: claim("cid")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let claims = Claims {
            framework_id: "f".into(),
            executor_id: "e".into(),
            container_id: "c".into(),
        };
        let token = mint(b"secret", &claims);
        assert_eq!(verify(b"secret", &token), Ok(claims));
        assert_eq!(verify(b"other", &token), Err(TokenError::Signature));
        assert_eq!(verify(b"secret", "a.b"), Err(TokenError::Malformed));
        let mut forged = token.clone();
        forged.push('x');
        assert!(verify(b"secret", &forged).is_err());
    }
}
