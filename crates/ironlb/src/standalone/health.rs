//! Local health checks: one task per checked service, each publishing pass or fail into one
//! shared map that the main loop watches. A service is announced only while its check passes.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Passes when a connection opens.
    Tcp { host: String, port: u16 },
    /// Passes on a 2xx or 3xx status.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// Passes on exit status 0.
    Exec { command: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Service name → whether it may be announced.
pub type Passing = BTreeMap<String, bool>;

pub struct Health {
    node: String,
    passing: watch::Sender<Passing>,
    running: BTreeMap<String, (Option<Check>, Option<JoinHandle<()>>)>,
}

impl Drop for Health {
    fn drop(&mut self) {
        for task in self.running.values().filter_map(|(_, t)| t.as_ref()) {
            task.abort();
        }
    }
}

impl Health {
    pub fn new(node: &str) -> Health {
        Health {
            node: node.to_string(),
            passing: watch::Sender::new(Passing::new()),
            running: BTreeMap::new(),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Passing> {
        self.passing.subscribe()
    }

    /// Runs exactly these checks (service → check; `None` always passes). An unchanged
    /// check keeps its task and its last result; a new one fails until it first passes.
    pub fn set(&mut self, checks: BTreeMap<String, Option<Check>>) {
        self.running.retain(|name, (check, task)| {
            let keep = checks.get(name) == Some(check);
            if let (false, Some(task)) = (keep, task) {
                task.abort();
            }
            keep
        });
        // A service whose check changed starts over, failing until the new check passes.
        let running = &self.running;
        self.passing.send_if_modified(|p| {
            let before = p.len();
            p.retain(|name, _| running.contains_key(name));
            before != p.len()
        });
        for (name, check) in checks {
            if self.running.contains_key(&name) {
                continue;
            }
            let task = match &check {
                None => {
                    self.passing.send_modify(|p| {
                        p.insert(name.clone(), true);
                    });
                    None
                }
                Some(c) => Some(tokio::spawn(watch_check(
                    self.node.clone(),
                    name.clone(),
                    c.clone(),
                    self.passing.clone(),
                ))),
            };
            self.running.insert(name, (check, task));
        }
    }
}

async fn watch_check(node: String, service: String, check: Check, passing: watch::Sender<Passing>) {
    let mut every = tokio::time::interval(check.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let outcome = tokio::time::timeout(check.timeout, run(&check.probe, &node, &service))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)));
        let ok = outcome.is_ok();
        passing.send_if_modified(|p| {
            if p.get(&service) == Some(&ok) {
                return false;
            }
            match &outcome {
                Ok(()) => tracing::info!(%service, "health check passes; announcing"),
                Err(why) => {
                    tracing::warn!(%service, reason = %why, "health check fails; withdrawing")
                }
            }
            p.insert(service.clone(), ok);
            true
        });
    }
}

async fn run(probe: &Probe, node: &str, service: &str) -> Result<(), String> {
    match probe {
        Probe::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
            .await
            .map(drop)
            .map_err(|e| format!("connecting to {host}:{port}: {e}")),
        Probe::Http { host, port, path } => http_status(host, *port, path).await,
        Probe::Exec { command } => {
            let [program, args @ ..] = command.as_slice() else {
                return Err("empty command".into());
            };
            let status = tokio::process::Command::new(program)
                .args(args)
                .env("IRONLB_NODE", node)
                .env("IRONLB_SERVICE", service)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("running {program}: {e}"))?;
            status
                .success()
                .then_some(())
                .ok_or_else(|| format!("{program} exited with {status}"))
        }
    }
}

/// One HTTP/1.0 GET, reading only the status line: a health probe needs no client library.
async fn http_status(host: &str, port: u16, path: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ironlb\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending to {host}:{port}: {e}"))?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("reading from {host}:{port}: {e}")),
        }
        if head[..got].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("http://{host}:{port}{path} gave no HTTP status"))?;
    (200..400)
        .contains(&status)
        .then_some(())
        .ok_or_else(|| format!("http://{host}:{port}{path} answered {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    /// The probes talk to servers on loopback, inside a namespace of the test's own.
    #[test]
    fn probes_pass_and_fail_for_the_right_reasons() {
        if !ironlb_lab::ready(&["ip"]) {
            return;
        }
        let ns = ironlb_lab::Netns::new("probes");
        ns.run_inside(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(probes());
        });
    }

    async fn probes() {
        let ok = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
        let bad = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let host = "127.0.0.1".to_string();
        let http = |port| Probe::Http {
            host: host.clone(),
            port,
            path: "/healthz".into(),
        };
        assert_eq!(run(&http(ok), "n", "s").await, Ok(()));
        let e = run(&http(bad), "n", "s").await.unwrap_err();
        assert!(e.contains("answered 503"), "{e}");
        let tcp = Probe::Tcp {
            host: host.clone(),
            port: ok,
        };
        assert_eq!(run(&tcp, "n", "s").await, Ok(()));
        let exec = |script: &str| Probe::Exec {
            command: vec!["sh".into(), "-c".into(), script.into()],
        };
        assert_eq!(
            run(
                &exec("test \"$IRONLB_NODE/$IRONLB_SERVICE\" = n/s"),
                "n",
                "s"
            )
            .await,
            Ok(())
        );
        assert!(run(&exec("exit 3"), "n", "s").await.is_err());
    }

    #[tokio::test]
    async fn a_failing_check_flips_the_service_and_an_unchecked_one_always_passes() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("up");
        std::fs::write(&flag, "").unwrap();
        let mut health = Health::new("n");
        let mut passing = health.subscribe();
        let check = Check {
            probe: Probe::Exec {
                command: vec!["test".into(), "-e".into(), flag.display().to_string()],
            },
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
        };
        health.set(BTreeMap::from([
            ("web".to_string(), Some(check)),
            ("plain".to_string(), None),
        ]));
        let wait_for = |want: bool, passing: &mut watch::Receiver<Passing>| {
            let mut passing = passing.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    passing.wait_for(|p| p.get("web") == Some(&want)),
                )
                .await
                .expect("the check settles")
                .expect("health is running")
                .clone()
            }
        };
        let now = wait_for(true, &mut passing).await;
        assert_eq!(now.get("plain"), Some(&true));
        std::fs::remove_file(&flag).unwrap();
        wait_for(false, &mut passing).await;
        health.set(BTreeMap::from([("plain".to_string(), None)]));
        assert!(
            !passing.borrow().contains_key("web"),
            "a removed service is forgotten"
        );
    }
}
