//! The engine's event stream under load: Bao's engine runs (live link to the relay) while
//! Alice sends notes as fast as her engine seals and delivers them; a `subscribe()` consumer
//! on Bao's side counts every note event it is told. Reports events per second (first to
//! last) and how many the consumer missed (`engine_events_lost`; the stream keeps up to
//! `EVENT_BUFFER` undelivered updates, and a consumer that falls further behind is told how
//! many it missed).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use backchannel_client::{Engine, EngineConfig, Entry, Event, Passphrase, Update};
use backchannel_relay::RelayOptions;
use tokio::sync::broadcast::error::RecvError;

use crate::Timing;
use crate::report::Report;

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let notes: usize = if timing.quick { 2_000 } else { 20_000 };
    let dir = tempfile::tempdir()?;
    let relay =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, dir.path().join("relay"))).await?;
    let pass = Passphrase::new("bench passphrase, not secret".into());
    let alice = Engine::init(&dir.path().join("alice"), &pass, "Alice", "A", EngineConfig::default())?;
    let bao = Engine::init(&dir.path().join("bao"), &pass, "Bao", "B", EngineConfig::default())?;
    let invitation = alice.invite(relay.address(), 3600).await?;
    bao.accept(&invitation).await?;
    alice.sync_once().await?;

    let mut updates = bao.subscribe();
    let counter = tokio::spawn(async move {
        let (mut seen, mut lost) = (0usize, 0u64);
        let (mut first, mut last) = (None, Instant::now());
        while seen + (lost as usize) < notes {
            match updates.recv().await {
                Ok(Update::Party { event: Event::Entry { entry: Entry::Note { .. }, .. } }) => {
                    seen += 1;
                    last = Instant::now();
                    first.get_or_insert(last);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => lost += n,
                Err(RecvError::Closed) => break,
            }
        }
        (seen, lost, first.map(|f| last.duration_since(f)))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn({
        let bao = bao.clone();
        async move {
            bao.run(async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let texts: Vec<String> = (0..notes).map(|i| format!("event bench note {i}")).collect();
    for chunk in texts.chunks(200) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        alice.queue_notes("Bao", &refs)?;
        alice.flush().await?;
    }
    let counted =
        tokio::time::timeout(Duration::from_secs(if timing.quick { 60 } else { 300 }), counter).await;
    let _ = stop.send(());
    driver.await?.context("Bao's engine stopped")?;
    relay.shutdown().await;
    let (seen, lost, span) = counted.context("not every note reached the subscriber in time")??;
    ensure!(seen as u64 + lost == notes as u64, "{seen} seen and {lost} missed of {notes}");
    let span = span.context("no event")?.as_secs_f64().max(1e-6);
    report.set("engine_events_per_s", seen as f64 / span);
    report.set("engine_events_lost", lost as f64);
    report.note(format!(
        "engine events: {notes} notes sent by Alice's engine as fast as it seals and delivers (batches of 200); Bao's \
         engine runs with a live link; a subscribe() consumer counts note events; engine_events_per_s = events / time \
         from the first to the last; engine_events_lost = updates the consumer was told it missed"
    ));
    Ok(())
}
