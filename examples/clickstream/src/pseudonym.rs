//! `pseudonym(user_id)`: a keyed pseudonym for a personal identifier, so outputs can be joined
//! on it without holding the identifier. The key is a secret the job declares in its `[env]`
//! (`PSEUDONYM_KEY`, from Secrets Manager or Parameter Store), and `PSEUDONYM_VERSION` (a plain
//! value) names the key in every pseudonym, so pseudonyms made under a rotated key never
//! collide with old ones: `{version}:{first 16 bytes of HMAC-SHA256(key, id), hex}`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The function's version.
pub const VERSION: &str = "1";

const KEY_VAR: &str = "PSEUDONYM_KEY";
const VERSION_VAR: &str = "PSEUDONYM_VERSION";

/// The key and its version, read once per process. A missing one stops the item at once (a
/// pseudonym under no key would be a silent hash of the identifier), naming the variable.
fn key() -> &'static (Vec<u8>, String) {
    static KEY: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let read = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("pseudonym: {name} is not set: declare it in the job's [env] table"))
        };
        (read(KEY_VAR).into_bytes(), read(VERSION_VAR))
    })
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// The pseudonym of `id`.
pub fn pseudonym(id: &str) -> Option<String> {
    let (key, version) = key();
    let mac = hmac_sha256(key, id.as_bytes());
    let hex: String = mac[..16].iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{version}:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_long_key_is_hashed_first() {
        // RFC 4231 test case 6: a 131-byte key of 0xaa.
        let mac = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
}
