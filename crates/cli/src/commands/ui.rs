//! `ui`: the local web app for the people who negotiate, served on loopback until Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Result, anyhow};

use super::say;
use crate::config;

pub async fn run(home: &Path, listen: SocketAddr) -> Result<()> {
    let listener = backchannel_web::bind(listen).await.map_err(|e| anyhow!("{e}"))?;
    let mut options = backchannel_web::Options::new(home.to_owned());
    options.passphrase = config::passphrase_if_set()?;
    let ui = backchannel_web::start(listener, options).await.map_err(|e| anyhow!("{e}"))?;
    // Alone on the first line, for whoever starts us to read (as Jupyter prints its address).
    say(format!("ui: {}", ui.url_with_token()))?;
    eprintln!(
        "open that address in your browser (it carries your key to the app: do not share it); Ctrl-C stops"
    );
    let _ = tokio::signal::ctrl_c().await;
    ui.stop().await;
    eprintln!("stopped");
    Ok(())
}
