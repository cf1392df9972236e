//! Optional gossip encryption with a shared secret: every packet is sealed with AES-256-GCM
//! under a key derived from the secret, so only members holding it can join, read or forge
//! membership. A packet that does not open is dropped.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// Domain separation, so the same secret used elsewhere gives a different key here.
const CONTEXT: &[u8] = b"ironlb gossip v1\0";

pub struct Key {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// The key every member holding `secret` derives (for example MetalLB's `memberlist`
    /// Secret, key `secretkey`).
    pub fn from_secret(secret: &[u8]) -> Key {
        let material = [CONTEXT, secret].concat();
        let hash = digest(&SHA256, &material);
        let key = UnboundKey::new(&AES_256_GCM, hash.as_ref())
            .expect("a SHA-256 digest is exactly an AES-256 key");
        Key {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`, with a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .ok()?;
        Some([nonce.as_slice(), &body].concat())
    }

    /// The plaintext, or `None` when the packet was not sealed with this key or was altered.
    pub fn open(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = packet.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn only_the_same_secret_opens_an_unaltered_packet(
            plain in proptest::collection::vec(any::<u8>(), 0..1400),
            flip in any::<prop::sample::Index>(),
        ) {
            let a = Key::from_secret(b"s3cret");
            let sealed = a.seal(&plain).unwrap();
            prop_assert_eq!(Key::from_secret(b"s3cret").open(&sealed), Some(plain.clone()));
            prop_assert_eq!(Key::from_secret(b"other").open(&sealed), None);
            let mut altered = sealed.clone();
            let i = flip.index(altered.len());
            altered[i] ^= 1;
            prop_assert_eq!(a.open(&altered), None);
            prop_assert_ne!(a.seal(&plain).unwrap(), sealed, "a fresh nonce every time");
        }
    }

    #[test]
    fn short_or_plain_packets_are_refused() {
        let k = Key::from_secret(b"s3cret");
        assert_eq!(k.open(b""), None);
        assert_eq!(k.open(&[0u8; 20]), None);
    }
}
