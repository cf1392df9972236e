//! BGP convergence: a BIRD receiver, and as the speaker ironlb, BIRD, FRR and GoBGP in turn,
//! each announcing 10,000 and then 100,000 routes. Printed side by side, with ratios to
//! ironlb from the same run:
//! - time from Established to the full table at the receiver, and to the speaker's last
//!   UPDATE on the wire (the rest is the receiver's own processing);
//! - time from handing one new route to the speaker until the receiver has it;
//! - UPDATE messages on the wire (decoded from a capture), for ironlb also with the
//!   receiver accepting extended messages (RFC 8654, "ironlb+ext");
//! - the speaker's resident memory.
//!
//! The receiver is polled through birdc as fast as it answers; its round trip, printed, is
//! the granularity of the timings.
//!
//! Routes are /128s in 2001:db8:1::/48: the IPv4 documentation ranges hold only 768 host
//! routes. Needs root, bird2, frr, gobgpd and tcpdump; prints SKIPPED otherwise.
//! Run: `cargo bench -p ironlb-bench --bench bgp_convergence` (`BGP_BENCH_SIZES=10000` for
//! a quick run).

use ironlb_bench::receiver::{Receiver, poll};
use ironlb_bench::{host_routes, rss_kb};
use ironlb_bgp::wire::{self, Codec, MAX_EXTENDED_LEN, Message};
use ironlb_lab::capture::{Capture, Frame};
use ironlb_lab::{Daemon, Netns, gobgp_cli, link, ready, wait_for};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const SIZES: [usize; 2] = [10_000, 100_000];
const NEW_ROUTE: &str = "2001:db8:2::1/128";
/// GoBGP's routes go in one CLI call each, which is only practical up to this many.
const GOBGP_MAX: usize = 10_000;

#[derive(Clone, Copy, PartialEq)]
enum Speaker {
    Ironlb,
    /// ironlb with a receiver that negotiates extended messages.
    IronlbExtended,
    Bird,
    Frr,
    Gobgp,
}

impl Speaker {
    fn name(self) -> &'static str {
        match self {
            Speaker::Ironlb => "ironlb",
            Speaker::IronlbExtended => "ironlb+ext",
            Speaker::Bird => "BIRD",
            Speaker::Frr => "FRR",
            Speaker::Gobgp => "GoBGP",
        }
    }
}

struct Figures {
    full_table: Duration,
    /// From Established to the last UPDATE the speaker put on the wire.
    last_sent: Duration,
    one_route: Duration,
    updates: usize,
    rss_kb: u64,
    /// One birdc round trip to the receiver: how finely the timings can tell.
    poll_rtt: Duration,
}

struct Lab {
    recv: Netns,
    spk: Netns,
    dir: std::path::PathBuf,
    capture: Capture,
}

fn lab(tag: &str) -> Lab {
    let recv = Netns::new(&format!("bench{tag}r"));
    let spk = Netns::new(&format!("bench{tag}s"));
    link(
        &recv,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &spk,
        &["192.0.2.2/24", "2001:db8::2/64"],
    );
    let dir = recv.scratch();
    // A fast speaker is done within milliseconds: the capture is listening before it starts.
    let capture = Capture::start(&recv, "veth0", "tcp port 179 and src host 2001:db8::2");
    Lab {
        recv,
        spk,
        dir,
        capture,
    }
}

/// What the capture shows of the speaker's side: its BGP messages per TCP connection.
struct Seen {
    /// UPDATE messages the speaker sent.
    updates: usize,
    /// When the speaker sent each UPDATE that announces something; the last is the one
    /// new route's, the one before it ends the table.
    announced: Vec<SystemTime>,
    /// When the speaker sent the KEEPALIVE that completed the last handshake: the moment the
    /// receiver's session became Established.
    established: Option<SystemTime>,
}

/// One TCP connection's payloads, by sequence number relative to the connection's first.
type Segments = BTreeMap<u32, (SystemTime, Vec<u8>)>;

/// The captured frames' TCP payloads per connection in sequence order (relative to the
/// first segment, so sequence wrap does not matter), decoded as BGP.
fn bgp_seen(frames: &[Frame]) -> Seen {
    let mut connections: BTreeMap<(u16, u16), (u32, Segments)> = BTreeMap::new();
    for Frame {
        at: when,
        data: packet,
    } in frames
    {
        // Ethernet (14) + IPv6 (40) + TCP.
        if packet.len() < 14 + 40 + 20 || packet[12..14] != [0x86, 0xdd] {
            continue;
        }
        let tcp = &packet[54..];
        let ports = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let offset = usize::from(tcp[12] >> 4) * 4;
        let syn = tcp[13] & 0x02 != 0;
        let conn = connections
            .entry(ports)
            .or_insert((seq.wrapping_add(u32::from(syn)), BTreeMap::new()));
        if tcp.len() > offset {
            conn.1
                .entry(seq.wrapping_sub(conn.0))
                .or_insert((*when, tcp[offset..].to_vec()));
        }
    }
    let codec = Codec {
        four_octet_as: true,
        max_len: MAX_EXTENDED_LEN,
    };
    let mut result = Seen {
        updates: 0,
        announced: Vec::new(),
        established: None,
    };
    for (_, segments) in connections.into_values() {
        // Each message is stamped with the time of the segment it ends in.
        let mut stream = Vec::new();
        let mut ends: Vec<(usize, SystemTime)> = Vec::new();
        for (when, payload) in segments.into_values() {
            stream.extend_from_slice(&payload);
            ends.push((stream.len(), when));
        }
        let mut used_total = 0;
        let mut opened = false;
        while let Ok(Some((m, used))) = wire::decode(&stream[used_total..], &codec) {
            used_total += used;
            let when = ends
                .iter()
                .find(|(end, _)| *end >= used_total)
                .map(|(_, w)| *w);
            match m {
                Message::Open(_) => opened = true,
                Message::Keepalive if opened => {
                    result.established = when.max(result.established);
                    opened = false;
                }
                Message::Update(u) => {
                    result.updates += 1;
                    if let (Some(when), Some(_)) = (when, u.announced().next()) {
                        result.announced.push(when);
                    }
                }
                _ => {}
            }
        }
    }
    result
}

fn measure(speaker: Speaker, count: usize) -> Figures {
    let tag = format!(
        "{}{}",
        speaker
            .name()
            .to_lowercase()
            .chars()
            .take(3)
            .collect::<String>(),
        count / 1000
    );
    let mut lab = lab(&tag);
    let d = lab.dir.display().to_string();
    let receiver = Receiver::start(
        &mut lab.recv,
        &lab.dir,
        "2001:db8::2",
        speaker == Speaker::IronlbExtended,
    );

    // Poll the receiver from before the speaker starts, so no speaker is judged by how
    // long polling took to begin.
    let poller = {
        let receiver = receiver.clone();
        std::thread::spawn(move || {
            poll(Duration::from_secs(600), || {
                (receiver.routes() >= count).then(SystemTime::now)
            })
        })
    };
    let routes = host_routes(count);
    let mut ironlb_stdin = None;
    let spk_sock = format!("{d}/spk.ctl");
    let pid = match speaker {
        Speaker::Ironlb | Speaker::IronlbExtended => {
            let mut child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.spk.name,
                    env!("CARGO_BIN_EXE_announce"),
                    "2001:db8::1",
                    "64513",
                    "64512",
                    &count.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("announce starts");
            ironlb_stdin = child.stdin.take();
            let pid = child.id();
            std::mem::forget(child); // killed with the namespace
            pid
        }
        Speaker::Bird => {
            let statics: String = routes
                .iter()
                .map(|r| format!("  route {r} blackhole;\n"))
                .collect();
            let conf = format!(
                "router id 192.0.2.2;\nprotocol device {{}}\ninclude \"{d}/extra.conf\";\nprotocol static st {{\n  ipv6;\n{statics}}}\nprotocol bgp r {{\n  local as 64513;\n  neighbor 2001:db8::1 as 64512;\n  ipv6 {{ import none; export all; }};\n  connect retry time 1;\n}}\n"
            );
            std::fs::write(lab.dir.join("extra.conf"), "").unwrap();
            std::fs::write(lab.dir.join("spk.conf"), conf).unwrap();
            lab.spk.start(&Daemon::bird(&lab.dir, "spk"))
        }
        Speaker::Frr => {
            let networks: String = routes.iter().map(|r| format!("  network {r}\n")).collect();
            let conf = format!(
                "frr defaults traditional\nhostname s\nrouter bgp 64513\n bgp router-id 192.0.2.2\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor 2001:db8::1 remote-as 64512\n neighbor 2001:db8::1 timers connect 1\n address-family ipv6 unicast\n  neighbor 2001:db8::1 activate\n{networks} exit-address-family\n"
            );
            std::fs::write(lab.dir.join("frr.conf"), conf).unwrap();
            lab.spk.start(&Daemon::bgpd(&lab.dir))
        }
        Speaker::Gobgp => {
            // Routes are loaded through GoBGP's CLI before the neighbor exists, so the table
            // transfer starts from a full RIB like the other speakers'. (Its MRT loader
            // accepted our dump without loading any route.)
            std::fs::write(
                lab.dir.join("gobgp.toml"),
                "[global.config]\n  as = 64513\n  router-id = \"192.0.2.2\"\n",
            )
            .unwrap();
            let pid = lab.spk.start(&Daemon::gobgpd(&lab.dir));
            wait_for(Duration::from_secs(5), || {
                lab.spk.try_exec("gobgp", &gobgp_cli(&["global"]))
            })
            .expect("gobgpd starts");
            let adds: String = routes.iter().map(|r| format!("{r}\n")).collect();
            std::fs::write(lab.dir.join("routes.txt"), adds).unwrap();
            let load = format!(
                "xargs -P 8 -I PREFIX gobgp {} < {d}/routes.txt",
                gobgp_cli(&["global", "rib", "-a", "ipv6", "add", "PREFIX"]).join(" ")
            );
            lab.spk.exec("sh", &["-c", &load]);
            lab.spk.exec(
                "gobgp",
                &gobgp_cli(&[
                    "neighbor",
                    "add",
                    "2001:db8::1",
                    "as",
                    "64512",
                    "-a",
                    "ipv6",
                ]),
            );
            pid
        }
    };

    let full = poller
        .join()
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{}: the receiver never got {count} routes", speaker.name()));
    let rss_kb = rss_kb(pid);

    let asked = Instant::now();
    match speaker {
        Speaker::Ironlb | Speaker::IronlbExtended => {
            let stdin = ironlb_stdin.as_mut().unwrap();
            writeln!(stdin, "add {NEW_ROUTE}").unwrap();
            stdin.flush().unwrap();
        }
        Speaker::Bird => {
            std::fs::write(
                lab.dir.join("extra.conf"),
                format!("protocol static extra {{\n  ipv6;\n  route {NEW_ROUTE} blackhole;\n}}\n"),
            )
            .unwrap();
            lab.spk.exec("birdc", &["-s", &spk_sock, "configure"]);
        }
        Speaker::Frr => {
            lab.spk.exec(
                "vtysh",
                &[
                    "--vty_socket",
                    &d,
                    "-c",
                    "configure terminal",
                    "-c",
                    "router bgp 64513",
                    "-c",
                    "address-family ipv6 unicast",
                    "-c",
                    &format!("network {NEW_ROUTE}"),
                ],
            );
        }
        Speaker::Gobgp => {
            lab.spk.exec(
                "gobgp",
                &gobgp_cli(&["global", "rib", "-a", "ipv6", "add", NEW_ROUTE]),
            );
        }
    }
    poll(Duration::from_secs(30), || {
        (receiver.routes() > count).then_some(())
    })
    .expect("the new route arrives");
    let one_route = asked.elapsed();
    let poll_rtt = receiver.round_trip();

    std::thread::sleep(Duration::from_millis(300));
    let mut seen = bgp_seen(&lab.capture.stop());
    let established = seen
        .established
        .unwrap_or_else(|| panic!("{}: no handshake in the capture", speaker.name()));
    let full_table = full.duration_since(established).unwrap_or_default();
    seen.announced.sort();
    let last_sent = seen
        .announced
        .iter()
        .rev()
        .nth(1)
        .and_then(|t| t.duration_since(established).ok())
        .unwrap_or_default();
    Figures {
        full_table,
        last_sent,
        one_route,
        updates: seen.updates,
        rss_kb,
        poll_rtt,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !ready(&[
        "bird",
        "birdc",
        "/usr/lib/frr/bgpd",
        "vtysh",
        "gobgpd",
        "gobgp",
        "tcpdump",
        "ip",
    ]) {
        println!(
            "SKIPPED bgp_convergence: needs root, bird, birdc, bgpd, vtysh, gobgpd, gobgp and tcpdump"
        );
        return;
    }
    let all = [
        Speaker::Ironlb,
        Speaker::IronlbExtended,
        Speaker::Bird,
        Speaker::Frr,
        Speaker::Gobgp,
    ];
    // BGP_BENCH_SPEAKERS=ironlb,gobgp limits the speakers.
    let only = std::env::var("BGP_BENCH_SPEAKERS")
        .unwrap_or_default()
        .to_lowercase();
    let speakers: Vec<Speaker> = all
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.name().to_lowercase()))
        .collect();
    // BGP_BENCH_SIZES=10000 limits the run, e.g. for a quick check.
    let sizes: Vec<usize> = std::env::var("BGP_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    for count in sizes {
        println!(
            "\nBGP convergence, {count} /128 routes to a BIRD receiver (ratios: peer / ironlb)"
        );
        println!(
            "{:<10} {:>16} {:>10} {:>16} {:>16} {:>12} {:>10}",
            "speaker", "full table", "sent by", "one new route", "UPDATE msgs", "RSS", "poll RTT"
        );
        let mut base: Option<Figures> = None;
        for &speaker in &speakers {
            if speaker == Speaker::Gobgp && count > GOBGP_MAX {
                // Its CLI takes one process per route: 100,000 take over ten minutes.
                println!(
                    "{:<10} skipped above {GOBGP_MAX} routes (loading them through its CLI takes minutes)",
                    speaker.name()
                );
                continue;
            }
            let f = measure(speaker, count);
            let ratio = |x: f64, y: f64| {
                if y > 0.0 {
                    format!("({:.1}x)", x / y)
                } else {
                    String::new()
                }
            };
            let (r1, r2, r3, r4) = match &base {
                Some(b) => (
                    ratio(f.full_table.as_secs_f64(), b.full_table.as_secs_f64()),
                    ratio(f.one_route.as_secs_f64(), b.one_route.as_secs_f64()),
                    ratio(f.updates as f64, b.updates as f64),
                    ratio(f.rss_kb as f64, b.rss_kb as f64),
                ),
                None => Default::default(),
            };
            println!(
                "{:<10} {:>8.1} ms {:>7} {:>7.1} ms {:>7.1} ms {:>7} {:>7} {:>8} {:>6.1} MB {:>7} {:>7.1} ms",
                speaker.name(),
                f.full_table.as_secs_f64() * 1e3,
                r1,
                f.last_sent.as_secs_f64() * 1e3,
                f.one_route.as_secs_f64() * 1e3,
                r2,
                f.updates,
                r3,
                f.rss_kb as f64 / 1024.0,
                r4,
                f.poll_rtt.as_secs_f64() * 1e3
            );
            if speaker == Speaker::Ironlb {
                base = Some(f);
            }
        }
    }
    let _ = std::io::stdout().flush();
}
