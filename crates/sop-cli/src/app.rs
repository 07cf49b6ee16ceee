//! Opening a home: configuration, store, and crash recovery before any command.

use std::path::PathBuf;

use anyhow::Context as _;
use sop_core::config::{RunnerConfig, SqliteSync};
use sop_runtime::engine::{self, Context};
use sop_runtime::ops::Ops;
use sop_runtime::recovery;
use sop_runtime::Home;
use sop_store::{SqliteStore, Synchronous};

use crate::Fail;

pub struct App {
    pub home: Home,
    pub config: RunnerConfig,
    pub store: SqliteStore,
    pub exe: PathBuf,
}

impl App {
    /// Reads `sop.toml`, opens `state/sop.db`, and recovers runs whose driver died.
    pub fn open(home: Home) -> Result<App, Fail> {
        let config = load_config(&home)?;
        App::open_with(home, config)
    }

    /// Like [`App::open`], with `sop.toml` already read.
    pub fn open_with(home: Home, config: RunnerConfig) -> Result<App, Fail> {
        std::fs::create_dir_all(home.state_dir())
            .with_context(|| format!("cannot create `{}`", home.state_dir().display()))?;
        let store = open_store(&home.db_path(), &config)?;
        let exe = std::env::current_exe().context("cannot find the `sop` executable")?;
        let app = App {
            home,
            config,
            store,
            exe,
        };
        let recovered = recovery::recover(&app.store, &app.home, &app.config, &app.exe)?;
        for id in &recovered.interrupted {
            eprintln!("warning: run {id} was interrupted (its process stopped); continue with `sop resume {id} --retry|--skip|--abort`");
        }
        Ok(app)
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            store: &self.store,
            home: &self.home,
            config: &self.config,
            owner: engine::this_process(),
            release_when_idle: false,
            stop: None,
            on_claim: None,
            on_end: None,
            handover: None,
            settle: None,
        }
    }

    pub fn ops(&self) -> Ops<'_> {
        Ops {
            store: &self.store,
            home: &self.home,
            config: &self.config,
            served: false,
            settle: None,
        }
    }
}

/// Opens the `SQLite` store with the configured durability.
pub fn open_store(path: &std::path::Path, config: &RunnerConfig) -> Result<SqliteStore, Fail> {
    let sync = match config.sqlite_synchronous {
        SqliteSync::Full => Synchronous::Full,
        SqliteSync::Normal => Synchronous::Normal,
    };
    Ok(SqliteStore::open(path, sync)?)
}

/// `sop.toml` at the home, or the defaults when there is none.
pub fn load_config(home: &Home) -> Result<RunnerConfig, Fail> {
    let path = home.config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => RunnerConfig::parse("sop.toml", &text).map_err(|d| {
            Fail::bad(
                d.render()
                    .trim_start_matches("error: ")
                    .trim_end()
                    .to_string(),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunnerConfig::default()),
        Err(e) => Err(Fail::bad(format!("cannot read `{}`: {e}", path.display()))),
    }
}
