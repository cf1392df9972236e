//! Small notes each member spreads about itself over the gossip (a standalone host's failing
//! health checks, say). Each note is versioned by its author's clock, so a newer note replaces
//! an older one everywhere, also across the author's restarts; authors repeat theirs so that
//! members joining later learn them too.

use foca::{BroadcastHandler, Invalidates};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::sync::watch;

/// Notes beyond this size are refused: they ride along in probe packets.
pub const MAX_NOTE: usize = 512;

/// Author → its latest note.
pub type Notes = BTreeMap<SocketAddr, Vec<u8>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    author: SocketAddr,
    at: u64,
}

impl Invalidates for Version {
    fn invalidates(&self, other: &Self) -> bool {
        self.author == other.author && self.at >= other.at
    }
}

#[derive(Debug, thiserror::Error)]
#[error("malformed gossip note")]
pub struct Malformed;

/// `at (8 bytes) ‖ author length (1) ‖ author ‖ note`.
pub fn encode(author: SocketAddr, at: u64, note: &[u8]) -> Vec<u8> {
    let author = author.to_string();
    let mut out = Vec::with_capacity(9 + author.len() + note.len());
    out.extend_from_slice(&at.to_be_bytes());
    out.push(author.len() as u8);
    out.extend_from_slice(author.as_bytes());
    out.extend_from_slice(note);
    out
}

fn decode(data: &[u8]) -> Option<(Version, &[u8])> {
    let (at, rest) = data.split_first_chunk::<8>()?;
    let (&len, rest) = rest.split_first()?;
    let (author, note) = rest.split_at_checked(usize::from(len))?;
    let author = std::str::from_utf8(author).ok()?.parse().ok()?;
    (note.len() <= MAX_NOTE).then_some((
        Version {
            author,
            at: u64::from_be_bytes(*at),
        },
        note,
    ))
}

/// Keeps the newest note per author and publishes them.
pub struct NoteBoard {
    versions: BTreeMap<SocketAddr, u64>,
    notes: watch::Sender<Notes>,
}

impl NoteBoard {
    pub fn new(notes: watch::Sender<Notes>) -> NoteBoard {
        NoteBoard {
            versions: BTreeMap::new(),
            notes,
        }
    }
}

impl<T> BroadcastHandler<T> for NoteBoard {
    type Key = Version;
    type Error = Malformed;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&T>,
    ) -> Result<Option<Version>, Malformed> {
        let (version, note) = decode(data).ok_or(Malformed)?;
        if self
            .versions
            .get(&version.author)
            .is_some_and(|seen| *seen >= version.at)
        {
            return Ok(None);
        }
        self.versions.insert(version.author, version.at);
        self.notes.send_if_modified(|n| {
            let changed = n.get(&version.author).map(Vec::as_slice) != Some(note);
            n.insert(version.author, note.to_vec());
            changed
        });
        Ok(Some(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_notes_replace_older_and_repeats_are_not_spread_again() {
        let (tx, rx) = watch::channel(Notes::new());
        let mut board = NoteBoard::new(tx);
        let a: SocketAddr = "192.0.2.2:7946".parse().unwrap();
        let mut receive = |at: u64, note: &[u8]| {
            BroadcastHandler::<()>::receive_item(&mut board, &encode(a, at, note), None).unwrap()
        };
        assert!(receive(10, b"web").is_some());
        assert!(receive(10, b"web").is_none(), "a repeat is not news");
        assert!(receive(5, b"old").is_none(), "an older note never wins");
        assert!(receive(11, b"").is_some());
        assert_eq!(rx.borrow()[&a], b"");
        let older = Version { author: a, at: 1 };
        let newer = Version { author: a, at: 2 };
        assert!(newer.invalidates(&older) && !older.invalidates(&newer));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let (tx, _rx) = watch::channel(Notes::new());
        let mut board = NoteBoard::new(tx);
        for bad in [
            &b""[..],
            b"12345678",
            b"12345678\x05abc",
            b"12345678\x03abcnote",
        ] {
            assert!(
                BroadcastHandler::<()>::receive_item(&mut board, bad, None).is_err(),
                "{bad:?}"
            );
        }
        let big = encode("192.0.2.2:7946".parse().unwrap(), 1, &[0; MAX_NOTE + 1]);
        assert!(BroadcastHandler::<()>::receive_item(&mut board, &big, None).is_err());
    }
}
