//! Where a command acts: through a reachable daemon (`SOP_URL`, or `url` in `sop.toml`),
//! else on the store directly. Commands that work either way match on [`Backend`] once.

use sop_runtime::Home;

use crate::app::{load_config, App};
use crate::remote::{Client, ClientEnv};
use crate::Fail;

pub enum Backend {
    /// The store of the home, opened by this process.
    Local(Box<App>),
    /// A daemon that answered `GET /healthz`.
    Remote(Client),
}

impl Backend {
    /// A reachable daemon, else the home's store (after one warning when a configured
    /// daemon did not answer).
    pub fn open(home: Home) -> Result<Backend, Fail> {
        let config = load_config(&home)?;
        if let Some(client) = Client::connect(&ClientEnv::from_process(&config)) {
            return Ok(Backend::Remote(client));
        }
        Ok(Backend::Local(Box::new(App::open_with(home, config)?)))
    }
}
