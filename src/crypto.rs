//! Encryption at rest for secrets the server must read back.
//!
//! SigV4 verification recomputes an HMAC with the caller's secret access key,
//! so secrets cannot be hashed: they are sealed with AES-256-GCM under the
//! master key from configuration. The row's identity (e.g. the access key id)
//! is bound in as associated data, so a ciphertext copied onto another row
//! does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_LEN: usize = 12;

/// How a secret value sealed inside a JSON document begins ([`SecretBox::seal_value`]).
pub const SEALED_PREFIX: &str = "millrace:sealed:v1:";

/// What a sealed action configuration value is bound to: its account.
pub fn configuration_aad(account_id: &str) -> Vec<u8> {
    format!("action-configuration:{account_id}").into_bytes()
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox { cipher: Aes256Gcm::new(key.into()) }
    }

    /// Parses the configured master key: 32 bytes, base64.
    pub fn from_base64(encoded: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD.decode(encoded.trim()).context("the master key is not valid base64")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| anyhow!("the master key must be 32 bytes (44 base64 characters)"))?;
        Ok(Self::new(&key))
    }

    pub fn generate_key_base64() -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Returns nonce ‖ ciphertext.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption of a short secret cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// A secret string as a JSON document stores it: sealed, in base64,
    /// after [`SEALED_PREFIX`].
    pub fn seal_value(&self, value: &str, aad: &[u8]) -> String {
        format!("{SEALED_PREFIX}{}", STANDARD.encode(self.seal(value.as_bytes(), aad)))
    }

    /// Opens a value from [`Self::seal_value`]; any other value is returned
    /// as it is (stored before values were sealed).
    pub fn open_value(&self, value: &str, aad: &[u8]) -> anyhow::Result<String> {
        let Some(encoded) = value.strip_prefix(SEALED_PREFIX) else { return Ok(value.to_owned()) };
        let sealed = STANDARD.decode(encoded).context("a sealed value is not valid base64")?;
        String::from_utf8(self.open(&sealed, aad)?).context("a sealed value is not UTF-8")
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(anyhow!("sealed secret is truncated"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| anyhow!("a stored secret does not decrypt: is the master key the one it was sealed with?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_and_plain_ones_pass() {
        let a = SecretBox::from_base64(&SecretBox::generate_key_base64()).unwrap();
        let sealed = a.seal_value("s3cr3t", b"acct");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("s3cr3t"));
        assert_eq!(a.open_value(&sealed, b"acct").unwrap(), "s3cr3t");
        assert!(a.open_value(&sealed, b"other").is_err());
        assert_eq!(a.open_value("plain", b"acct").unwrap(), "plain");
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_row() {
        let a = SecretBox::from_base64(&SecretBox::generate_key_base64()).unwrap();
        let b = SecretBox::from_base64(&SecretBox::generate_key_base64()).unwrap();
        let sealed = a.seal(b"wJalrXUtnFEMI", b"AKID1");
        assert_eq!(a.open(&sealed, b"AKID1").unwrap(), b"wJalrXUtnFEMI");
        assert!(a.open(&sealed, b"AKID2").is_err());
        assert!(b.open(&sealed, b"AKID1").is_err());
        assert!(!sealed.windows(5).any(|w| w == b"wJalr"));
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
        assert!(SecretBox::from_base64("not base64!").is_err());
    }
}
