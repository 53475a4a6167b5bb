//! Two relay nodes sharing one PostgreSQL database (in a fresh schema), when one is reachable
//! at `BACKCHANNEL_TEST_POSTGRES` (default `host=127.0.0.1 port=5432 user=postgres
//! dbname=test`). Skipped with a notice otherwise, except under `CI`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use backchannel_relay::{RelayOptions, RunningRelay, StoreSpec, start};
use backchannel_wire::{QueueId, WsClientMessage, WsServerMessage};
use support::{Client, Frame, random_block, ws_connect, ws_next, ws_send};

/// A schema made for one test and dropped after it.
struct Schema {
    conn: String,
    name: String,
}

impl Schema {
    async fn fresh() -> Option<Self> {
        let conn = std::env::var("BACKCHANNEL_TEST_POSTGRES")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned());
        let name = format!("bc_api_{}", QueueId::random().to_hex());
        match admin(&conn, &format!("CREATE SCHEMA {name}")).await {
            Ok(()) => Some(Self { conn, name }),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL tests must run in CI, but: {why}")
            }
            Err(why) => {
                eprintln!("skipping PostgreSQL relay test: {why}");
                None
            }
        }
    }

    fn spec(&self) -> StoreSpec {
        StoreSpec::Postgres(format!("{} options='-csearch_path={}'", self.conn, self.name))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (conn, sql) = (self.conn.clone(), format!("DROP SCHEMA {} CASCADE", self.name));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(admin(&conn, &sql))
        })
        .join();
    }
}

async fn admin(conn: &str, sql: &str) -> Result<(), String> {
    let connect = tokio_postgres::connect(conn, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .map_err(|_| format!("no answer from {conn}"))?
        .map_err(|e| format!("cannot connect to {conn}: {e}"))?;
    tokio::spawn(connection);
    client.batch_execute(sql).await.map_err(|e| e.to_string())
}

async fn node(dir: &std::path::Path, spec: StoreSpec) -> RunningRelay {
    let mut opts = RelayOptions::new("127.0.0.1:0".parse().unwrap(), dir);
    opts.store = spec;
    start(opts).await.unwrap()
}

#[tokio::test]
async fn a_block_sent_through_one_node_is_pushed_by_the_other() {
    let Some(schema) = Schema::fresh().await else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(dir_a.path(), schema.spec()).await;
    let b = node(dir_b.path(), schema.spec()).await;

    let mut via_a = Client::connect(a.address()).await;
    let q = via_a.create_queue().await;
    let mut ws = ws_connect(b.address()).await;
    ws_send(&mut ws, &WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() })
        .await;
    assert_eq!(ws_next(&mut ws).await, Frame::Text(WsServerMessage::Subscribed { recv_id: q.recv_id }));

    let block = random_block(4096);
    via_a.send(vec![q.item(block.clone())]).await;
    let Frame::Block(id, delivered) = ws_next(&mut ws).await else { panic!("expected the block") };
    assert_eq!((id, delivered.block), (q.recv_id, block));
    assert_eq!(b.stats().await.unwrap().blocks, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_with_another_block_size_refuses_to_start() {
    let Some(schema) = Schema::fresh().await else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(dir_a.path(), schema.spec()).await;
    // No block is stored yet: the deployment's setting, not a stored block, says 4096.
    let mut opts = RelayOptions::new("127.0.0.1:0".parse().unwrap(), dir_b.path());
    opts.store = schema.spec();
    opts.config.block_size = 8192;
    let err = start(opts).await.err().expect("a node with another block size must not start").to_string();
    assert!(err.contains("block size is 4096") && err.contains("every node of a host"), "{err}");
    a.shutdown().await;
}
