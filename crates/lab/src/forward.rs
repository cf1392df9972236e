//! A TCP forward from an address inside a lab namespace to one in the test's own namespace,
//! so daemons in the lab reach a server on the host's loopback (the control plane) without
//! any route or address on the host.

use crate::Netns;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Forwards connections until dropped; dropping it also cuts the open ones.
pub struct Forward {
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Netns {
    /// Listens on `listen` inside this namespace and forwards each connection to `target`,
    /// reached from the caller's namespace.
    pub fn forward(&self, listen: SocketAddr, target: SocketAddr) -> Forward {
        let listener = self.bind(listen);
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::spawn(move || accept(listener, target, &stop, &open))
        };
        Forward {
            stop,
            open,
            acceptor: Some(acceptor),
        }
    }

    /// A listener bound inside this namespace: the socket is made there (a socket belongs to
    /// the namespace it was created in), then used from anywhere.
    fn bind(&self, listen: SocketAddr) -> TcpListener {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            // SAFETY: the fd is a network-namespace file; setns affects only this thread,
            // which ends right after.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            TcpListener::bind(listen).unwrap_or_else(|e| panic!("binding {listen}: {e}"))
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

fn accept(
    listener: TcpListener,
    target: SocketAddr,
    stop: &AtomicBool,
    open: &Mutex<Vec<TcpStream>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((inbound, _)) => {
                let _ = inbound.set_nonblocking(false);
                // A target that is down (an API server being restarted) refuses: the client
                // sees the connection close, as it would without the forward.
                if let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                    splice(inbound, outbound, open);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies both ways, each direction on its own thread, until either side closes.
fn splice(a: TcpStream, b: TcpStream, open: &Mutex<Vec<TcpStream>>) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let clones = (a.try_clone(), b.try_clone());
    let (Ok(a2), Ok(b2)) = clones else {
        return;
    };
    if let (Ok(a3), Ok(b3)) = (a.try_clone(), b.try_clone()) {
        open.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([a3, b3]);
    }
    for (mut from, mut to) in [(a, b2), (b, a2)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        });
    }
}

impl Forward {
    /// Cuts every open connection, as a server going away would; new ones are still
    /// forwarded.
    pub fn cut(&self) {
        for s in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}
