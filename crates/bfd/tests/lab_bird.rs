//! Our BFD sessions against BIRD's, in namespaces: single hop and multihop sessions come up
//! at 100 ms, BIRD notices our silence within its detection time, and we notice BIRD's.

use ironlb_bfd::driver::{Bfd, PeerSpec};
use ironlb_bfd::packet::State;
use ironlb_bfd::session::Timers;
use ironlb_lab::{Daemon, Netns, link, ready, time_until, wait_for};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;

const BIRD: &str = "router id 192.0.2.1;
protocol device {}
protocol bfd {
  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
  neighbor 192.0.2.2;
}
";

fn bird_state(ns: &Netns, sock: &str) -> Option<String> {
    let out = ns.stdout("birdc", &["-s", sock, "show", "bfd", "sessions"]);
    out.lines()
        .find(|l| l.trim_start().starts_with("192.0.2.2"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

const BIRD_MULTIHOP: &str = "router id 192.0.2.1;
protocol device {}
protocol bfd {
  multihop { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
  neighbor 192.0.2.2 local 192.0.2.1 multihop yes;
}
";

/// Runs our side in `ns` until `stop` is dropped, reporting each state of the session;
/// `multihop` as in `PeerSpec`.
fn ours(ns: &Netns, stop: mpsc::Receiver<()>, multihop: Option<u8>) -> mpsc::Receiver<State> {
    let (tx, states) = mpsc::channel();
    let inside = Netns::named(&ns.name);
    std::thread::spawn(move || {
        inside.run_inside(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut bfd = Bfd::start().expect("listens on 3784");
                let peer: IpAddr = "192.0.2.1".parse().unwrap();
                let spec = PeerSpec {
                    timers: Timers {
                        desired_min_tx: Duration::from_millis(100),
                        required_min_rx: Duration::from_millis(100),
                        detect_mult: 3,
                        ..Timers::default()
                    },
                    source: None,
                    multihop,
                };
                bfd.set_peers(&BTreeMap::from([(peer, spec)]));
                let mut states = bfd.states();
                loop {
                    if let Some(s) = states.borrow_and_update().get(&peer) {
                        let _ = tx.send(s.state);
                    }
                    tokio::select! {
                        changed = states.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep(Duration::from_millis(5)) => {
                            if !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                                // Gone without a word, as a crashed node would be.
                                return;
                            }
                        }
                    }
                }
            })
        })
    });
    states
}

fn latest(states: &mpsc::Receiver<State>, last: &mut Option<State>) -> Option<State> {
    while let Ok(s) = states.try_recv() {
        *last = Some(s);
    }
    *last
}

/// BIRD with `conf` in a router namespace linked to a node namespace: router, node, BIRD's
/// directory, its control socket and its pid.
fn bird_lab(tag: &str, conf: &str) -> (Netns, Netns, std::path::PathBuf, String, u32) {
    let mut router = Netns::new(&format!("{tag}r"));
    let node = Netns::new(&format!("{tag}n"));
    link(&router, &["192.0.2.1/24"], &node, &["192.0.2.2/24"]);
    let dir = router.scratch();
    std::fs::write(dir.join("bird.conf"), conf).unwrap();
    let bird = router.start(&Daemon::bird(&dir, "bird"));
    let sock = Daemon::bird_socket(&dir, "bird");
    (router, node, dir, sock, bird)
}

/// Waits until our session and BIRD's are both Up.
fn until_both_up(states: &mpsc::Receiver<State>, router: &Netns, sock: &str) {
    let mut last = None;
    wait_for(Duration::from_secs(10), || {
        (latest(states, &mut last) == Some(State::Up)
            && bird_state(router, sock).as_deref() == Some("Up"))
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not both Up: ours {last:?}, BIRD {:?}",
            bird_state(router, sock)
        )
    });
}

/// How long until BIRD declares the session Down.
fn until_bird_down(router: &Netns, sock: &str) -> Duration {
    time_until(Duration::from_secs(5), || {
        bird_state(router, sock).as_deref() == Some("Down")
    })
    .expect("BIRD notices")
}

#[test]
fn sessions_with_bird_come_up_and_each_side_detects_the_other_failing() {
    if !ready(&["bird", "birdc", "ip"]) {
        return;
    }
    let (mut router, node, dir, sock, bird) = bird_lab("bfd", BIRD);
    let (stop, stopped) = mpsc::channel();
    let states = ours(&node, stopped, None);
    until_both_up(&states, &router, &sock);

    // Our side goes silent: BIRD declares the session down within its detection time.
    drop(stop);
    let noticed = until_bird_down(&router, &sock);
    eprintln!("BIRD noticed our silence after {noticed:?}");
    assert!(noticed < Duration::from_secs(1), "{noticed:?}");

    // The other way: we notice BIRD dying.
    let (stop, stopped) = mpsc::channel();
    let states = ours(&node, stopped, None);
    until_both_up(&states, &router, &sock);
    router.kill(bird);
    let mut last = None;
    let noticed = time_until(Duration::from_secs(5), || {
        latest(&states, &mut last) == Some(State::Down)
    })
    .expect("we notice");
    eprintln!("we noticed BIRD's death after {noticed:?}");
    assert!(noticed < Duration::from_secs(1), "{noticed:?}");
    drop(stop);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn multihop_sessions_with_bird_use_port_4784_and_detect_silence() {
    if !ready(&["bird", "birdc", "ip"]) {
        return;
    }
    let (router, node, dir, sock, _) = bird_lab("bfdm", BIRD_MULTIHOP);
    let (stop, stopped) = mpsc::channel();
    let states = ours(&node, stopped, Some(254));
    until_both_up(&states, &router, &sock);
    drop(stop);
    let noticed = until_bird_down(&router, &sock);
    assert!(noticed < Duration::from_secs(1), "{noticed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
