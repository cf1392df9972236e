//! Three members on a real LAN: they find each other and each other's notes, and when one
//! dies without a word (its process killed), the others notice within a second and drop
//! its note.

use ironlb_lab::{Netns, lan, ready, wait_for};
use ironlb_membership::{DEFAULT_PORT, Key, Notes, Settings, join};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A member running in a node namespace, spreading the note `hello from <addr>`;
/// dropping `stop` kills it without a goodbye.
struct Agent {
    stop: mpsc::Sender<()>,
    live: mpsc::Receiver<(BTreeSet<SocketAddr>, Notes)>,
    latest: (BTreeSet<SocketAddr>, Notes),
}

fn note(addr: &SocketAddr) -> Vec<u8> {
    format!("hello from {addr}").into_bytes()
}

impl Agent {
    fn start(
        ns: &Netns,
        local: SocketAddr,
        seeds: Vec<SocketAddr>,
        secret: Option<&'static [u8]>,
    ) -> Agent {
        let (stop, stopped) = mpsc::channel::<()>();
        let (tx, live) = mpsc::channel();
        let node = Netns::named(&ns.name);
        std::thread::spawn(move || {
            node.run_inside(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async move {
                    let settings = Settings {
                        expected_size: 3,
                        key: secret.map(Key::from_secret),
                        ..Settings::default()
                    };
                    let member = join(local, seeds, settings).await.expect("joins");
                    member.set_note(note(&local));
                    let mut watch = member.live.clone();
                    let mut notes = member.notes.clone();
                    loop {
                        tokio::select! {
                            changed = watch.changed() => {
                                if changed.is_err() { return; }
                            }
                            changed = notes.changed() => {
                                if changed.is_err() { return; }
                            }
                            () = tokio::time::sleep(Duration::from_millis(5)) => {
                                if !matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                                    return;
                                }
                                continue;
                            }
                        }
                        let now = (
                            watch.borrow_and_update().clone(),
                            notes.borrow_and_update().clone(),
                        );
                        let _ = tx.send(now);
                    }
                });
            })
        });
        Agent {
            stop,
            live,
            latest: Default::default(),
        }
    }

    /// The latest live set this member reported.
    fn live(&mut self) -> &BTreeSet<SocketAddr> {
        while let Ok(latest) = self.live.try_recv() {
            self.latest = latest;
        }
        &self.latest.0
    }

    /// The authors of the notes this member holds, if every note is the one its author set.
    fn note_authors(&mut self) -> Option<BTreeSet<SocketAddr>> {
        self.live();
        let notes = &self.latest.1;
        notes
            .iter()
            .all(|(author, n)| *n == note(author))
            .then(|| notes.keys().copied().collect())
    }
}

/// Three hosts on one LAN (namespaces `<tag>1..3` behind switch `<tag>sw`), each running a
/// member with its secret; every member is seeded with the other two.
fn three(
    tag: &str,
    secrets: [Option<&'static [u8]>; 3],
) -> (Vec<Netns>, Vec<SocketAddr>, Vec<Agent>) {
    let switch = Netns::new(&format!("{tag}sw"));
    let nodes: Vec<Netns> = (1..=3).map(|i| Netns::new(&format!("{tag}{i}"))).collect();
    lan(
        &switch,
        &[
            (&nodes[0], &["192.0.2.2/24"]),
            (&nodes[1], &["192.0.2.3/24"]),
            (&nodes[2], &["192.0.2.4/24"]),
        ],
    );
    let addrs: Vec<SocketAddr> = (2..=4)
        .map(|i| SocketAddr::from(([192, 0, 2, i], DEFAULT_PORT)))
        .collect();
    let agents: Vec<Agent> = nodes
        .iter()
        .zip(&addrs)
        .zip(secrets)
        .map(|((ns, local), secret)| {
            Agent::start(
                ns,
                *local,
                addrs.iter().copied().filter(|a| a != local).collect(),
                secret,
            )
        })
        .collect();
    let mut all = vec![switch];
    all.extend(nodes);
    (all, addrs, agents)
}

#[test]
fn a_killed_member_is_noticed_within_a_second() {
    if !ready(&["ip"]) {
        return;
    }
    let (_lab, addrs, mut agents) = three("swim", [None, None, None]);
    let all: BTreeSet<SocketAddr> = addrs.iter().copied().collect();
    assert!(
        wait_for(Duration::from_secs(10), || agents
            .iter_mut()
            .all(|a| *a.live() == all)
            .then_some(()))
        .is_some(),
        "everyone sees everyone"
    );
    assert!(
        wait_for(Duration::from_secs(5), || agents
            .iter_mut()
            .all(|a| a.note_authors().as_ref() == Some(&all))
            .then_some(()))
        .is_some(),
        "everyone holds everyone's note"
    );

    let dead = agents.pop().unwrap();
    let killed = Instant::now();
    drop(dead.stop);
    let survivors: BTreeSet<SocketAddr> = addrs[..2].iter().copied().collect();
    let noticed = wait_for(Duration::from_secs(5), || {
        agents
            .iter_mut()
            .all(|a| *a.live() == survivors)
            .then(|| killed.elapsed())
    })
    .expect("the survivors notice the dead member");
    eprintln!("a killed member was noticed by both survivors after {noticed:?}");
    for a in &mut agents {
        assert_eq!(
            a.note_authors(),
            Some(survivors.clone()),
            "the dead member's note went with it"
        );
    }
    assert!(
        noticed < Duration::from_secs(1),
        "noticed after {noticed:?}"
    );
}

#[test]
fn with_a_shared_key_only_members_holding_it_join() {
    if !ready(&["ip"]) {
        return;
    }
    let key: &'static [u8] = b"Fl3wYx2zQk9mPq7rTs4vWa";
    let (_lab, addrs, mut agents) = three("swimkey", [Some(key), Some(key), Some(b"wrong")]);
    let holders: BTreeSet<SocketAddr> = addrs[..2].iter().copied().collect();
    assert!(
        wait_for(Duration::from_secs(10), || agents[..2]
            .iter_mut()
            .all(|a| *a.live() == holders)
            .then_some(()))
        .is_some(),
        "the two members with the key see each other"
    );
    // Long enough for many probe and gossip rounds to have reached the outsider.
    std::thread::sleep(Duration::from_secs(1));
    for a in &mut agents[..2] {
        assert_eq!(
            *a.live(),
            holders,
            "the member with another key never joins"
        );
    }
    let outsider = agents[2].live().clone();
    assert!(
        outsider.is_empty() || outsider == BTreeSet::from([addrs[2]]),
        "the outsider hears no one: {outsider:?}"
    );
}
