//! Encryption of the secrets a store keeps (OAuth refresh tokens): ChaCha20-Poly1305
//! under a master key from `RUNNER_MASTER_KEY`, else from a key file created on first
//! use, readable by its owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::{StoreError, StoreResult};

/// The environment variable holding the master key (32 bytes, base64).
pub const MASTER_KEY_ENV: &str = "RUNNER_MASTER_KEY";
const NONCE_LEN: usize = 12;

/// The key that seals a store's secrets.
#[derive(Clone)]
pub struct MasterKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// The key from `RUNNER_MASTER_KEY` if set, else from `key_file`, which is created
    /// (mode 0600) with a fresh random key if it does not exist.
    pub fn load(key_file: &Path) -> StoreResult<MasterKey> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return MasterKey::from_base64(&text)
                .map_err(|e| StoreError::Key(format!("{MASTER_KEY_ENV}: {e}")));
        }
        match fs::read_to_string(key_file) {
            Ok(text) => MasterKey::from_base64(&text)
                .map_err(|e| StoreError::Key(format!("{}: {e}", key_file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MasterKey::create(key_file),
            Err(e) => Err(StoreError::Key(format!(
                "cannot read {}: {e}",
                key_file.display()
            ))),
        }
    }

    /// A key from its base64 text (32 bytes).
    pub fn from_base64(text: &str) -> Result<MasterKey, String> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| "not base64".to_string())?;
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| format!("a master key is 32 bytes, this one is {}", bytes.len()))?;
        Ok(MasterKey { cipher })
    }

    fn create(key_file: &Path) -> StoreResult<MasterKey> {
        let key = Key::generate();
        let text = BASE64.encode(key.as_slice());
        if let Some(dir) = key_file.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(key_file)
            .map_err(|e| StoreError::Key(format!("cannot create {}: {e}", key_file.display())))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(MasterKey {
            cipher: ChaCha20Poly1305::new(&key),
        })
    }

    /// `plaintext` sealed: a random nonce followed by the ciphertext and its tag.
    pub fn seal(&self, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        let nonce = Nonce::generate();
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| StoreError::Key("encryption failed".into()))?;
        let mut sealed = nonce.as_slice().to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens what [`MasterKey::seal`] sealed; fails on a wrong key or tampering.
    pub fn open(&self, sealed: &[u8]) -> StoreResult<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Corrupt {
                what: "secret",
                detail: "too short".into(),
            });
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| StoreError::Corrupt {
            what: "secret",
            detail: "bad nonce".into(),
        })?;
        self.cipher.decrypt(&nonce, ciphertext).map_err(|_| {
            StoreError::Key(
                "a stored secret does not open with this master key (was RUNNER_MASTER_KEY changed?)"
                    .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::create(&dir.path().join("k")).unwrap();
        let sealed = key.seal(b"refresh-token-123").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"refresh"));
        assert_eq!(key.open(&sealed).unwrap(), b"refresh-token-123");
        let other = MasterKey::create(&dir.path().join("other")).unwrap();
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/master.key");
        let first = MasterKey::load(&path).unwrap();
        let sealed = first.seal(b"x").unwrap();
        let again = MasterKey::load(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_bad_key_is_explained() {
        assert!(MasterKey::from_base64("!!").unwrap_err().contains("base64"));
        assert!(MasterKey::from_base64(&BASE64.encode([1u8; 16]))
            .unwrap_err()
            .contains("32 bytes"));
    }
}
