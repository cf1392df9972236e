//! One BGP connection as both its owners drive it, the speaker's peer tasks and the
//! looking glass: bytes from the socket or the session's next deadline in, the session's
//! bytes out. The session itself stays sans-IO; this is the whole of its I/O.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The largest BGP message (RFC 8654 extended messages).
const READ_BUFFER: usize = 65536;

pub(crate) struct Connection {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
}

/// What the connection has for the session.
pub(crate) enum Input<'a> {
    Received(&'a [u8]),
    /// The session's deadline passed.
    Tick,
    /// The peer closed the connection, or it failed.
    Closed,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream) -> Connection {
        let (rd, wr) = stream.into_split();
        Connection {
            rd,
            wr,
            buf: vec![0; READ_BUFFER],
        }
    }

    /// Waits for bytes from the peer, or for `deadline` (the session's next timer).
    /// Cancel-safe: nothing read is lost when another branch wins a select.
    pub(crate) async fn next(&mut self, deadline: Option<std::time::Instant>) -> Input<'_> {
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = self.rd.read(&mut self.buf) => match n {
                Ok(0) | Err(_) => Input::Closed,
                Ok(n) => Input::Received(&self.buf[..n]),
            },
            () = timer => Input::Tick,
        }
    }

    /// Writes `bytes`; false when the connection is lost.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> bool {
        bytes.is_empty() || self.wr.write_all(bytes).await.is_ok()
    }

    /// Sends `goodbye` (a NOTIFICATION, or nothing) and closes, giving a peer that stopped
    /// reading `grace` before the connection is dropped anyway.
    pub(crate) async fn close(mut self, goodbye: &[u8], grace: Duration) {
        let close = async {
            let _ = self.wr.write_all(goodbye).await;
            let _ = self.wr.shutdown().await;
        };
        let _ = tokio::time::timeout(grace, close).await;
    }
}
