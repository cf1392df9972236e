//! Packet captures with tcpdump inside a lab namespace, read back as frames with their
//! timestamps, so a test can judge what really crossed the wire and when.

use crate::Netns;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One captured frame, Ethernet header first.
pub struct Frame {
    pub at: SystemTime,
    pub data: Vec<u8>,
}

/// A running tcpdump; `stop` ends it and returns what it saw.
pub struct Capture {
    tcpdump: Child,
    pcap: PathBuf,
    /// tcpdump's stderr, kept open so it never writes into a closed pipe.
    _log: BufReader<ChildStderr>,
}

impl Capture {
    /// Captures whole frames matching `filter` on `dev` in `ns`, into the namespace's
    /// scratch directory. Returns once tcpdump is listening, so nothing sent afterwards is
    /// missed.
    pub fn start(ns: &Netns, dev: &str, filter: &str) -> Capture {
        let pcap = ns.scratch().join(format!("{dev}.pcap"));
        let mut tcpdump = Command::new("ip")
            .args(["netns", "exec", &ns.name, "tcpdump", "--immediate-mode"])
            .args(["-i", dev, "-s", "0", "-U", "-w"])
            .arg(&pcap)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        let mut log = BufReader::new(tcpdump.stderr.take().expect("piped"));
        let mut line = String::new();
        while log.read_line(&mut line).is_ok_and(|n| n > 0) && !line.contains("listening on") {
            line.clear();
        }
        Capture {
            tcpdump,
            pcap,
            _log: log,
        }
    }

    /// Stops tcpdump with SIGTERM, so that it flushes the file, and reads the frames back.
    pub fn stop(mut self) -> Vec<Frame> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.tcpdump.id().to_string()])
            .status();
        let _ = self.tcpdump.wait();
        read_pcap(&std::fs::read(&self.pcap).unwrap_or_default())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.tcpdump.kill();
        let _ = self.tcpdump.wait();
    }
}

/// The frames of a classic little-endian, microsecond pcap file, as tcpdump writes it here.
fn read_pcap(data: &[u8]) -> Vec<Frame> {
    const FILE_HEADER: usize = 24;
    const RECORD_HEADER: usize = 16;
    let mut frames = Vec::new();
    let mut at = FILE_HEADER;
    while at + RECORD_HEADER <= data.len() {
        let word = |i: usize| u32::from_le_bytes(data[at + i..at + i + 4].try_into().unwrap());
        let when = UNIX_EPOCH
            + Duration::from_secs(u64::from(word(0)))
            + Duration::from_micros(u64::from(word(4)));
        let end = (at + RECORD_HEADER + word(8) as usize).min(data.len());
        frames.push(Frame {
            at: when,
            data: data[at + RECORD_HEADER..end].to_vec(),
        });
        at = end;
    }
    frames
}
