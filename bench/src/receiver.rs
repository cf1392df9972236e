//! BIRD as the router the BGP benchmarks announce to: in a namespace of its own, AS 64512,
//! importing IPv6 from one neighbor in AS 64513 (its protocol `spk`), and polled through its
//! control socket as fast as it answers. One round trip (`round_trip`) is the granularity of
//! every timing taken here.
//!
//! The socket is a file, so it is reached from the bench's own namespace, and spoken to
//! directly rather than through birdc: a process per poll would cost more than the poll
//! and take CPU from the speaker being measured.

use ironlb_lab::{Daemon, Netns};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A handle on a running receiver, cheap to clone into a polling thread.
#[derive(Clone)]
pub struct Receiver {
    socket: String,
}

impl Receiver {
    /// Writes `dir/recv.conf` and starts BIRD in `netns`, peering with `neighbor`;
    /// `extended` offers extended messages (RFC 8654). Returns once birdc answers.
    pub fn start(netns: &mut Netns, dir: &Path, neighbor: &str, extended: bool) -> Receiver {
        let ext = if extended { "on" } else { "off" };
        std::fs::write(
            dir.join("recv.conf"),
            format!(
                "router id 192.0.2.1;\nprotocol device {{}}\nprotocol bgp spk {{\n  local as 64512;\n  neighbor {neighbor} as 64513;\n  ipv6 {{ import all; export none; }};\n  connect retry time 1;\n  enable extended messages {ext};\n}}\n"
            ),
        )
        .expect("writing the receiver's config");
        netns.start(&Daemon::bird(dir, "recv"));
        let receiver = Receiver {
            socket: Daemon::bird_socket(dir, "recv"),
        };
        poll(Duration::from_secs(5), || receiver.ask("show status"))
            .expect("the receiver's BIRD starts");
        receiver
    }

    /// BIRD's reply to `command`, or None if it cannot be asked or refuses. Each reply line
    /// starts with a four-digit code and a `-` (more follows) or a space (the last line);
    /// codes from 8000 up are errors.
    fn ask(&self, command: &str) -> Option<String> {
        let mut stream = UnixStream::connect(&self.socket).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        // The greeting: "0001 BIRD <version> ready."
        reader.read_line(&mut line).ok()?;
        writeln!(stream, "{command}").ok()?;
        let mut reply = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let code = line
                .get(..4)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
            // A line without a code continues the one before it, after one space.
            let text = if code.is_some() { 5 } else { 1 };
            reply.push_str(line.get(text..).unwrap_or_default());
            match (code, line.as_bytes().get(4)) {
                (Some(code), _) if code >= "8000" => return None,
                (Some(_), Some(b' ')) => return Some(reply),
                _ => {}
            }
        }
    }

    /// Whether the session is Established, and how many routes the receiver holds from it.
    pub fn count(&self) -> Option<(bool, usize)> {
        let out = self.ask("show protocols all spk")?;
        let established = out.contains("Established");
        let imported = out
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Routes:")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0);
        Some((established, imported))
    }

    /// How many routes the receiver holds, 0 while it cannot tell.
    pub fn routes(&self) -> usize {
        self.count().map_or(0, |(_, n)| n)
    }

    /// One birdc round trip: how finely a poll of this receiver can tell.
    pub fn round_trip(&self) -> Duration {
        let began = Instant::now();
        self.count();
        began.elapsed()
    }
}

/// Polls `f` as fast as it answers, 1 ms apart; the lab's `wait_for` pauses 50 ms between
/// tries, too coarse for these timings.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}
