//! The command socket of `sop serve` (SPEC §6: "lines on the daemon's command socket/stdin"),
//! and its standard input:
//! `state/command.sock`, a Unix socket only its owner may use (mode 0600). Each line a
//! client writes is a command line, taken as `sop cmd` takes it, by the user at the other
//! end (from the socket's peer credentials); each gets one line back, the JSON answer of
//! `POST /api/command` (or `{"error": {"code", "message"}}`). For chat bots and scripts:
//! `echo 'deploy: 1.2.3' | socat - UNIX-CONNECT:state/command.sock`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;
use sop_core::command::parse_command;
use sop_runtime::command::Caller;
use sop_runtime::ops::Served;
use sop_runtime::{identity, Home};
use sop_server::{ApiError, CommandReply};

/// Longest line taken; a longer one is refused (the text of a command, not a file).
const MAX_LINE: usize = 64 * 1024;

/// The socket's path in a home.
pub fn path(home: &Home) -> PathBuf {
    home.state_dir().join("command.sock")
}

pub struct CommandSocket {
    served: Served,
    stopped: AtomicBool,
}

impl CommandSocket {
    pub fn new(served: Served) -> CommandSocket {
        CommandSocket {
            served,
            stopped: AtomicBool::new(false),
        }
    }

    /// Binds the socket (replacing one a previous daemon left: this process holds the
    /// home's serve lock) with mode 0600.
    pub fn bind(&self) -> std::io::Result<UnixListener> {
        let path = path(&self.served.home);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    }

    /// Serves connections until [`CommandSocket::stop`] (seen within 100 ms), each on a
    /// thread of its own.
    pub fn run(self: &Arc<Self>, listener: &UnixListener) {
        if let Err(e) = listener.set_nonblocking(true) {
            tracing::warn!("command socket: {e}");
            return;
        }
        while !self.stopped.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    // Connections block; only the accepting loop polls.
                    let _ = stream.set_nonblocking(false);
                    let me = Arc::clone(self);
                    let _ = std::thread::Builder::new()
                        .name("command-socket".into())
                        .spawn(move || me.serve(stream));
                }
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        tracing::warn!("command socket: {e}");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }

    /// Stops [`CommandSocket::run`] and removes the socket.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(path(&self.served.home));
    }

    fn serve(&self, stream: UnixStream) {
        let Ok(mut out) = stream.try_clone() else {
            return;
        };
        // Only this daemon's user (and root) may use it: the mode says so once set, and
        // this holds also for a connection made before it was (the socket is created with
        // the umask's mode).
        let peer =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials);
        let me = nix::unistd::geteuid().as_raw();
        let by = match peer {
            Ok(c) if c.uid() == me || c.uid() == 0 => identity::user_name(c.uid()),
            _ => {
                let e = ApiError::Forbidden(
                    "only the user running `sop serve` may use its command socket".to_string(),
                );
                let _ = writeln!(out, "{}", json!({ "error": e.detail() }));
                return;
            }
        };
        let caller = Caller {
            by,
            groups: identity::current_groups(),
        };
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::Read::take(&mut lines, MAX_LINE as u64 + 1).read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let answer = if line.len() > MAX_LINE {
                let e = ApiError::BadRequest(format!("a command line is at most {MAX_LINE} bytes"));
                json!({ "error": e.detail() })
            } else if line.trim().is_empty() {
                continue;
            } else {
                self.take(&line, &caller)
            };
            if writeln!(out, "{answer}").is_err() || line.len() > MAX_LINE {
                return;
            }
        }
    }

    /// Command lines on the daemon's standard input (SPEC §6), as on the socket, from the
    /// daemon's user; each answer on standard output. Ends at end of input (a service's
    /// standard input is usually `/dev/null`: at once). Not from a terminal: a daemon
    /// started in the background of a shell (`sop serve &`) would be stopped by the
    /// terminal (SIGTTIN) as it reads.
    pub fn read_stdin(&self) {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return;
        }
        let caller = Caller {
            by: identity::current_user(),
            groups: identity::current_groups(),
        };
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            if !line.trim().is_empty() {
                outln!("{}", self.take(&line, &caller));
            }
        }
    }

    fn take(&self, text: &str, caller: &Caller) -> serde_json::Value {
        // After the stop, nothing new: the scheduler is draining.
        if self.stopped.load(Ordering::SeqCst) {
            let e = ApiError::Conflict(
                "`sop serve` is stopping: send it again once it is back".to_string(),
            );
            return json!({ "error": e.detail() });
        }
        let ops = self.served.ops();
        let answer = parse_command(text)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
            .and_then(|line| Ok(ops.command(&line, caller, false)?));
        match answer {
            Ok(answer) => {
                (self.served.wake)();
                serde_json::to_value(CommandReply::new(answer, false))
                    .unwrap_or_else(|e| json!({ "error": ApiError::internal(e).detail() }))
            }
            Err(e) => json!({ "error": e.detail() }),
        }
    }
}
