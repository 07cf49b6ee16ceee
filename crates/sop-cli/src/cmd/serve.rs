//! `sop serve`: the HTTP API and the scheduler on one home.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sop_core::config::RunnerConfig;
use sop_runtime::daemon::Scheduler;
use sop_runtime::file_watch::FileWatcher;
use sop_runtime::notify::Notifier;
use sop_runtime::ops::Served;
use sop_runtime::schedule::Timer;
use sop_runtime::{identity, recovery, Home};
use sop_server::{check_bind, router, ServerState};
use sop_store::{SqliteStore, Store};

use super::command_socket::{self, CommandSocket};
use crate::app::{load_config, open_store};
use crate::{CmdResult, Exit, Fail};

pub fn serve(home: &Home, bind: Option<&str>, db: Option<&str>) -> CmdResult {
    init_log();
    let config = load_config(home)?;
    std::fs::create_dir_all(home.state_dir()).map_err(|e| {
        Fail::failed(format!(
            "cannot create `{}`: {e}",
            home.state_dir().display()
        ))
    })?;
    // One daemon per SQLite home: the lock lives as long as this process.
    let lock_path = recovery::serve_lock_path(home);
    let lock = File::create(&lock_path)
        .map_err(|e| Fail::failed(format!("cannot create `{}`: {e}", lock_path.display())))?;
    if lock.try_lock().is_err() {
        return Err(Fail::failed(format!(
            "another `sop serve` is running on `{}` (it holds `{}`)",
            home.root().display(),
            lock_path.display()
        )));
    }
    let bind = bind.unwrap_or(&config.bind);
    let addr: SocketAddr = bind.parse().map_err(|e| {
        Fail::bad(format!(
            "`--bind {bind}`: expected an address like `127.0.0.1:7311`: {e}"
        ))
    })?;
    check_bind(&addr, &config).map_err(Fail::bad)?;
    let store: Arc<SqliteStore> = Arc::new(match db.or(config.database.as_deref()) {
        None => open_store(&home.db_path(), &config)?,
        Some(url) => match url.strip_prefix("sqlite://") {
            Some(path) => open_store(&home.root().join(path), &config)?,
            None if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                return Err(Fail::bad(
                    "PostgreSQL stores are not supported yet: use `sqlite://state/sop.db`",
                ));
            }
            None => return Err(Fail::bad(format!("`{url}`: expected `sqlite://PATH`"))),
        },
    });
    let dyn_store: Arc<dyn Store> = store;
    let scheduler = Arc::new(Scheduler::new(
        Arc::clone(&dyn_store),
        home.clone(),
        config.clone(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::failed(format!("cannot start the async runtime: {e}")))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| Fail::failed(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Fail::failed(e.to_string()))?;
    let state = Arc::new(
        ServerState::new(
            Arc::clone(&dyn_store),
            home.clone(),
            // The Host allow-list includes the address really listened on.
            RunnerConfig {
                bind: local.to_string(),
                ..config.clone()
            },
            identity::current_user(),
            scheduler.waker(),
        )
        .with_settler(scheduler.settler_slot()),
    );
    let sched = Arc::clone(&scheduler);
    let scheduler_thread = std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || sched.run())
        .map_err(|e| Fail::failed(format!("cannot start the scheduler: {e}")))?;
    let shared = Served {
        store: Arc::clone(&dyn_store),
        home: home.clone(),
        config: config.clone(),
        wake: scheduler.waker(),
        settler: scheduler.settler_slot(),
    };
    // Schedule triggers.
    let timer = Arc::new(Timer::new(shared.clone()));
    let timing = Arc::clone(&timer);
    let timer_thread = std::thread::Builder::new()
        .name("timer".into())
        .spawn(move || timing.run())
        .map_err(|e| Fail::failed(format!("cannot start the schedule timer: {e}")))?;
    // File-watch triggers.
    let files = Arc::new(FileWatcher::new(shared.clone()));
    let watching = Arc::clone(&files);
    let files_thread = std::thread::Builder::new()
        .name("file-watch".into())
        .spawn(move || watching.run())
        .map_err(|e| Fail::failed(format!("cannot start the file watcher: {e}")))?;
    // The command socket (`state/command.sock`).
    let socket = Arc::new(CommandSocket::new(shared.clone()));
    let socket_thread = match socket.bind() {
        Ok(listener) => {
            let serving = Arc::clone(&socket);
            std::thread::Builder::new()
                .name("command-socket".into())
                .spawn(move || serving.run(&listener))
                .ok()
        }
        Err(e) => {
            tracing::warn!(
                "no command socket at `{}`: {e}",
                command_socket::path(home).display()
            );
            None
        }
    };
    // Command lines on standard input too (not joined: a read cannot be stopped).
    let reading = Arc::clone(&socket);
    let _ = std::thread::Builder::new()
        .name("command-stdin".into())
        .spawn(move || reading.read_stdin());
    // Notifications, when `[[notify]]` channels are configured.
    let notifier = (!config.notify.is_empty()).then(|| {
        Arc::new(Notifier::new(
            Arc::clone(&dyn_store),
            home.clone(),
            config.notify.clone(),
        ))
    });
    let notifier_thread = match &notifier {
        Some(n) => {
            let n = Arc::clone(n);
            Some(
                std::thread::Builder::new()
                    .name("notifier".into())
                    .spawn(move || n.run())
                    .map_err(|e| Fail::failed(format!("cannot start the notifier: {e}")))?,
            )
        }
        None => None,
    };
    // Everything is up: say where (tests and scripts wait for this line).
    eprintln!(
        "sop serve: listening on http://{local} for home `{}`",
        home.root().display()
    );
    if config.tokens.is_empty() {
        eprintln!("sop serve: no API tokens configured: every local process that reaches loopback acts as `{}` (admin); configure [[tokens]] on shared machines", state.local_user);
    }
    let stopping = Arc::clone(&state.stopping);
    let app = router(state);
    let served = runtime.block_on(async move {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let http = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Open event streams end at their next look (within 100 ms).
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = stopped_tx.send(());
        });
        let mut http = tokio::spawn(async move { http.await });
        let joined = |r: Result<std::io::Result<()>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        tokio::select! {
            // The server stopped by itself (an error).
            result = &mut http => joined(result),
            // Requests in flight get 5 s after the signal; then the drain goes on without them.
            _ = stopped_rx => {
                if let Ok(result) = tokio::time::timeout(Duration::from_secs(5), http).await {
                    joined(result)
                } else {
                    tracing::warn!("requests still open 5 s after the signal: not waited for");
                    Ok(())
                }
            }
        }
    });
    eprintln!(
        "sop serve: draining (running steps get {}s to stop)",
        config.kill_grace_secs
    );
    timer.stop();
    let _ = timer_thread.join();
    files.stop();
    let _ = files_thread.join();
    socket.stop();
    if let Some(thread) = socket_thread {
        let _ = thread.join();
    }
    scheduler.stop();
    let _ = scheduler_thread.join();
    if let (Some(n), Some(thread)) = (&notifier, notifier_thread) {
        n.stop();
        let _ = thread.join();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(lock);
    served.map_err(|e| Fail::failed(format!("server error: {e}")))?;
    eprintln!("sop serve: stopped");
    Ok(Exit::Ok)
}

/// The daemon's log on standard error: `info` and above by default, `SOP_LOG` to choose
/// (`tracing` filter syntax, e.g. `SOP_LOG=debug` or `SOP_LOG=sop::notify=warn,info`).
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
