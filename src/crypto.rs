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
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow!("the master key must be 32 bytes (44 base64 characters)"))?;
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
