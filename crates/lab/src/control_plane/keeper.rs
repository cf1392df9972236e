//! The keeper: one thread, alive as long as the test binary, that starts every control-plane
//! process. `PR_SET_PDEATHSIG` kills a child when the *thread* that forked it ends, so the
//! forking thread must not be a test's own (it ends with the test, and would take a shared
//! control plane down with it).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// A started process; killed and reaped on `kill` or when dropped.
pub struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as the kubelet does first, and waits until the process has exited.
    pub fn terminate(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// Whether it has ended (a daemon that exits at start says why in its log).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

fn keeper() -> &'static Mutex<mpsc::Sender<Request>> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("control-plane-keeper".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the keeper thread");
        Mutex::new(tx)
    })
}

/// Starts `program` with `args` and `env` added, stdout and stderr appended to `log`, dying
/// with the test binary at the latest.
pub fn spawn(program: &Path, args: &[String], env: &[(&str, &str)], log: &Path) -> Process {
    let file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()))
    };
    let mut command = Command::new(program);
    command
        .args(args)
        // The tests read ironlb's logs as text; one that wants MetalLB's JSON says so.
        .env("IRONLB_LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file())
        .stderr(file());
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    keeper()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .expect("the keeper thread is alive");
    let child = rx
        .recv()
        .expect("the keeper answers")
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    Process { child }
}

/// Removes `dir` when the test binary exits: a shared control plane is never dropped, and its
/// processes die with the binary, but its files would stay.
pub(crate) fn at_exit(dir: &Path) {
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    extern "C" fn remove_all() {
        for dir in DIRS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if dirs.is_empty() {
        // SAFETY: registering a plain function with no arguments.
        unsafe { libc::atexit(remove_all) };
    }
    dirs.push(dir.to_path_buf());
}
