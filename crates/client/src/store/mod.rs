//! The party's local store: SQLite, with every value sealed under a key derived from the
//! passphrase (Argon2id). Every change runs in one transaction (WAL, synchronous=FULL), so a
//! crash or kill leaves either the old or the new state, never a mix.

mod kdf;
mod records;

use std::path::{Path, PathBuf};

use backchannel_proto::crypto::{SecretKey, hkdf, hmac, open_random_nonce, seal_random_nonce};
use backchannel_wire::codec::{Reader, Writer};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use kdf::Passphrase;
pub use records::Record;

use crate::error::{ClientError, Result};

const DB_FILE: &str = "party.db";
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_outbox_blocks.sql"),
];
const CHECK_LABEL: &[u8] = b"backchannel/store-check/v1";

/// An open, unlocked store.
pub struct Store {
    conn: Connection,
    /// Seals every record.
    key: SecretKey,
    /// Keys the seen-set's hashes; derived from `key`, never used to encrypt.
    seen_key: SecretKey,
    dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Store {
    /// True when `dir` already holds a party.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }

    /// Makes a new store in `dir`, protected by `passphrase`.
    pub fn create(dir: &Path, passphrase: &Passphrase) -> Result<Self> {
        if Self::exists(dir) {
            return Err(ClientError::AlreadyInitialized { home: dir.display().to_string() });
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        restrict_dir(dir);
        let conn = connect(dir)?;
        let (salt, params) = kdf::new_salt_and_params();
        let key = kdf::derive(passphrase, &salt, &params)?;
        let mut store = Self { conn, seen_key: seen_key(&key), key, dir: dir.to_owned() };
        store.migrate()?;
        let check = seal_random_nonce(&store.key, CHECK_LABEL, b"ok");
        store.tx(|tx| {
            tx.put_meta("salt", &salt)?;
            tx.put_meta("kdf", params.as_bytes())?;
            tx.put_meta("check", &check)
        })?;
        Ok(store)
    }

    /// Opens the store in `dir`; a wrong passphrase is told apart from a damaged store.
    pub fn open(dir: &Path, passphrase: &Passphrase) -> Result<Self> {
        if !Self::exists(dir) {
            return Err(ClientError::NotInitialized { home: dir.display().to_string() });
        }
        let conn = connect(dir)?;
        let blank = || SecretKey([0; 32]);
        let mut store = Self { conn, key: blank(), seen_key: blank(), dir: dir.to_owned() };
        let meta = |k: &str| store.meta(k)?.ok_or_else(|| store.damaged("missing key material"));
        let (salt, params, check) = (meta("salt")?, meta("kdf")?, meta("check")?);
        let params = kdf::Params::from_bytes(&params).ok_or_else(|| store.damaged("bad KDF parameters"))?;
        store.key = kdf::derive(passphrase, &salt, &params)?;
        store.seen_key = seen_key(&store.key);
        if open_random_nonce(&store.key, CHECK_LABEL, &check).is_none() {
            return Err(ClientError::WrongPassphrase { home: dir.display().to_string() });
        }
        // Only with the right passphrase: a wrong guess changes nothing in the file.
        store.migrate()?;
        Ok(store)
    }

    /// Whether `passphrase` unlocks this store (a second process asking a running engine to
    /// act must know it as much as one opening the store itself).
    pub fn admits(&self, passphrase: &Passphrase) -> Result<bool> {
        let meta = |k: &str| self.meta(k)?.ok_or_else(|| self.damaged("missing key material"));
        let (salt, params) = (meta("salt")?, meta("kdf")?);
        let params = kdf::Params::from_bytes(&params).ok_or_else(|| self.damaged("bad KDF parameters"))?;
        let key = kdf::derive(passphrase, &salt, &params)?;
        Ok(bool::from(subtle::ConstantTimeEq::ct_eq(&key.0[..], &self.key.0[..])))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn damaged(&self, why: &str) -> ClientError {
        ClientError::Store { path: self.dir.display().to_string(), why: format!("store damaged: {why}") }
    }

    fn meta(&self, k: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .optional()
            .map_err(|e| db_error(&self.dir, &e))
    }

    fn migrate(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        let version: i64 =
            self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| db_error(&dir, &e))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(ClientError::Store {
                path: dir.display().to_string(),
                why: format!(
                    "written by a newer version of backchannel (store version {version}, this one knows {}); \
                     upgrade backchannel to open it",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = self.conn.transaction().map_err(|e| db_error(&dir, &e))?;
            tx.execute_batch(sql).map_err(|e| db_error(&dir, &e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(|e| db_error(&dir, &e))?;
            tx.commit().map_err(|e| db_error(&dir, &e))?;
        }
        Ok(())
    }

    /// Like [`Store::tx`], but the commit is not synced to disk by itself (WAL with
    /// `synchronous=NORMAL`): a crash may forget it, never corrupt it, and the next durable
    /// commit makes it durable too. Only for changes that are safe to redo.
    pub fn tx_unsynced<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let dir = self.dir.clone();
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| db_error(&dir, &e))?;
        let out = self.tx(f);
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| db_error(&dir, &e))?;
        out
    }

    /// Raw SQL against the file, for tests that damage it.
    #[cfg(test)]
    pub(crate) fn execute_raw(&self, sql: &str) {
        self.conn.execute(sql, []).unwrap();
    }

    /// Runs `f` in one write transaction; commits only if it returns `Ok` (stage, then commit).
    pub fn tx<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let dir = self.dir.clone();
        let inner = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&dir, &e))?;
        let mut tx = Tx { inner, key: &self.key, seen_key: &self.seen_key, dir: &dir };
        let out = f(&mut tx)?;
        tx.inner.commit().map_err(|e| db_error(&dir, &e))?;
        Ok(out)
    }
}

/// An outbox row: its number, its opened header, its blocks (`None`: kept in the header).
pub type OutboxRow<T> = (i64, T, Option<Vec<Vec<u8>>>);

/// One transaction over the store; values are sealed and opened transparently.
pub struct Tx<'a> {
    inner: rusqlite::Transaction<'a>,
    key: &'a SecretKey,
    seen_key: &'a SecretKey,
    dir: &'a Path,
}

impl Tx<'_> {
    fn err(&self, e: &rusqlite::Error) -> ClientError {
        db_error(self.dir, e)
    }

    pub(crate) fn damaged(&self, why: String) -> ClientError {
        ClientError::Store { path: self.dir.display().to_string(), why: format!("store damaged: {why}") }
    }

    fn seal<T: Serialize>(&self, aad: &str, value: &T) -> Result<Vec<u8>> {
        let json = zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(|e| ClientError::Store {
            path: self.dir.display().to_string(),
            why: format!("cannot encode record: {e}"),
        })?);
        Ok(seal_random_nonce(self.key, aad.as_bytes(), &json))
    }

    fn open<T: DeserializeOwned>(&self, aad: &str, sealed: &[u8]) -> Result<T> {
        let damaged = |why: String| ClientError::Store { path: self.dir.display().to_string(), why };
        let json = zeroize::Zeroizing::new(
            open_random_nonce(self.key, aad.as_bytes(), sealed)
                .ok_or_else(|| damaged(format!("record {aad} failed authentication")))?,
        );
        serde_json::from_slice(&json).map_err(|e| damaged(format!("record {aad} unreadable: {e}")))
    }

    /// The next row number of `table`: above every number it ever used, so a deleted row's
    /// number (and with it the associated data its value was sealed under) never comes back,
    /// and a row spliced in from an old copy of the file fails to open.
    fn next_row(&self, table: &'static str) -> Result<i64> {
        let sql = match table {
            "timeline" => {
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'timeline'), 0), \
                 COALESCE((SELECT MAX(n) FROM timeline), 0)) + 1"
            }
            _ => {
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), \
                 COALESCE((SELECT MAX(n) FROM outbox), 0)) + 1"
            }
        };
        self.inner
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(&e))
    }

    /// Marks a point to roll back to: what is written after it can be undone on its own
    /// ([`Tx::rollback_to_mark`]) while the rest of the transaction stands (one frame's
    /// failure must not undo the frames before it).
    pub fn mark(&self) -> Result<()> {
        self.inner.execute_batch("SAVEPOINT mark").map_err(|e| self.err(&e))
    }

    pub fn release_mark(&self) -> Result<()> {
        self.inner.execute_batch("RELEASE mark").map_err(|e| self.err(&e))
    }

    pub fn rollback_to_mark(&self) -> Result<()> {
        self.inner.execute_batch("ROLLBACK TO mark; RELEASE mark").map_err(|e| self.err(&e))
    }

    fn put_meta(&self, k: &str, v: &[u8]) -> Result<()> {
        self.inner
            .prepare_cached("INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![k, v]))
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    pub fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>> {
        let sealed: Option<Vec<u8>> = self
            .inner
            .prepare_cached("SELECT v FROM records WHERE kind = ?1 AND id = ?2")
            .and_then(|mut st| st.query_row(params![kind, id], |r| r.get(0)))
            .optional()
            .map_err(|e| self.err(&e))?;
        sealed.map(|s| self.open(&format!("{kind}/{id}"), &s)).transpose()
    }

    pub fn put<T: Serialize>(&self, kind: &str, id: &str, value: &T) -> Result<()> {
        let sealed = self.seal(&format!("{kind}/{id}"), value)?;
        self.inner
            .prepare_cached("INSERT OR REPLACE INTO records (kind, id, v) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![kind, id, sealed]))
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    pub fn delete(&self, kind: &str, id: &str) -> Result<()> {
        self.inner
            .prepare_cached("DELETE FROM records WHERE kind = ?1 AND id = ?2")
            .and_then(|mut st| st.execute(params![kind, id]))
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    pub fn all<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<(String, T)>> {
        let mut stmt = self
            .inner
            .prepare_cached("SELECT id, v FROM records WHERE kind = ?1 ORDER BY id")
            .map_err(|e| self.err(&e))?;
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(&e))?;
        rows.into_iter().map(|(id, v)| Ok((id.clone(), self.open(&format!("{kind}/{id}"), &v)?))).collect()
    }

    /// Appends an entry; returns its number.
    pub fn append_timeline<T: Serialize>(&self, contact: &str, entry: &T) -> Result<i64> {
        let n = self.next_row("timeline")?;
        let sealed = self.seal(&format!("timeline/{n}/{contact}"), entry)?;
        self.inner
            .prepare_cached("INSERT INTO timeline (n, contact, v) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![n, contact, sealed]))
            .map_err(|e| self.err(&e))?;
        Ok(n)
    }

    pub fn timeline<T: DeserializeOwned>(&self, contact: &str) -> Result<Vec<T>> {
        Ok(self.timeline_numbered(contact)?.into_iter().map(|(_, t)| t).collect())
    }

    /// The timeline with each entry's number, for removing entries (retention).
    pub fn timeline_numbered<T: DeserializeOwned>(&self, contact: &str) -> Result<Vec<(i64, T)>> {
        let mut stmt = self
            .inner
            .prepare_cached("SELECT n, v FROM timeline WHERE contact = ?1 ORDER BY n")
            .map_err(|e| self.err(&e))?;
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map([contact], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(&e))?;
        rows.into_iter().map(|(n, v)| Ok((n, self.open(&format!("timeline/{n}/{contact}"), &v)?))).collect()
    }

    pub fn timeline_remove(&self, n: i64) -> Result<()> {
        self.inner
            .prepare_cached("DELETE FROM timeline WHERE n = ?1")
            .and_then(|mut st| st.execute([n]))
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Queues one outbound item: `header` (route, secret, contact) as a record, and `blocks`
    /// in a column of their own, sealed as one value. Not as base64 inside the header: for a
    /// fan-out to 49 members that encoding cost more than all the sealing.
    pub fn outbox_push<T: Serialize>(&self, header: &T, blocks: &[Vec<u8>]) -> Result<i64> {
        let n = self.next_row("outbox")?;
        let sealed = self.seal(&format!("outbox/{n}"), header)?;
        let framed = zeroize::Zeroizing::new(frame_blocks(blocks));
        let sealed_blocks = seal_random_nonce(self.key, format!("outbox/{n}/blocks").as_bytes(), &framed);
        self.inner
            .prepare_cached("INSERT INTO outbox (n, v, blocks) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![n, sealed, sealed_blocks]))
            .map_err(|e| self.err(&e))?;
        Ok(n)
    }

    /// Every queued item in order, with its blocks; `None` for an item queued by a version
    /// that kept the blocks inside the header.
    pub fn outbox<T: DeserializeOwned>(&self) -> Result<Vec<OutboxRow<T>>> {
        let mut stmt = self
            .inner
            .prepare_cached("SELECT n, v, blocks FROM outbox ORDER BY n")
            .map_err(|e| self.err(&e))?;
        let rows: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(&e))?;
        rows.into_iter()
            .map(|(n, v, blocks)| {
                let header = self.open(&format!("outbox/{n}"), &v)?;
                let damaged = || self.damaged(format!("outbox item {n} has damaged blocks"));
                let blocks = blocks
                    .map(|sealed| {
                        let framed =
                            open_random_nonce(self.key, format!("outbox/{n}/blocks").as_bytes(), &sealed)
                                .ok_or_else(damaged)?;
                        unframe_blocks(&framed).ok_or_else(damaged)
                    })
                    .transpose()?;
                Ok((n, header, blocks))
            })
            .collect()
    }

    /// Queues an item as versions before migration 2 did: blocks inside the sealed header.
    #[cfg(test)]
    pub(crate) fn outbox_push_legacy(&self, header: &serde_json::Value) -> Result<()> {
        let n: i64 =
            self.inner.query_row("SELECT COALESCE(MAX(n), 0) + 1 FROM outbox", [], |r| r.get(0)).unwrap();
        let sealed = self.seal(&format!("outbox/{n}"), header)?;
        self.inner.execute("INSERT INTO outbox (n, v) VALUES (?1, ?2)", params![n, sealed]).unwrap();
        Ok(())
    }

    /// Replaces an item's header (its blocks stay as they are).
    pub fn outbox_update<T: Serialize>(&self, n: i64, header: &T) -> Result<()> {
        let sealed = self.seal(&format!("outbox/{n}"), header)?;
        self.inner
            .prepare_cached("UPDATE outbox SET v = ?2 WHERE n = ?1")
            .and_then(|mut st| st.execute(params![n, sealed]))
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    pub fn outbox_remove(&self, n: i64) -> Result<()> {
        self.inner
            .prepare_cached("DELETE FROM outbox WHERE n = ?1")
            .and_then(|mut st| st.execute([n]))
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Records that a frame was processed; false if it already was (a duplicate or replay).
    /// Only a keyed hash is stored, so the file does not reveal frame ids.
    pub fn mark_seen(&self, scope: &str, frame_id: &[u8], now: u64) -> Result<bool> {
        let digest = hmac(&self.seen_key.0, &[scope.as_bytes(), b"/", frame_id].concat());
        let inserted = self
            .inner
            .prepare_cached("INSERT OR IGNORE INTO seen (digest, at) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![digest.as_slice(), now as i64]))
            .map_err(|e| self.err(&e))?;
        Ok(inserted == 1)
    }

    pub fn was_seen(&self, scope: &str, frame_id: &[u8]) -> Result<bool> {
        Ok(self.seen_at(scope, frame_id)?.is_some())
    }

    /// When a frame was first processed, if it was.
    pub fn seen_at(&self, scope: &str, frame_id: &[u8]) -> Result<Option<u64>> {
        let digest = hmac(&self.seen_key.0, &[scope.as_bytes(), b"/", frame_id].concat());
        let found: Option<i64> = self
            .inner
            .prepare_cached("SELECT at FROM seen WHERE digest = ?1")
            .and_then(|mut st| st.query_row([digest.as_slice()], |r| r.get(0)))
            .optional()
            .map_err(|e| self.err(&e))?;
        Ok(found.map(|at| at as u64))
    }
}

fn seen_key(key: &SecretKey) -> SecretKey {
    SecretKey(hkdf(b"backchannel/store/v1", &key.0, b"seen-set"))
}

fn connect(dir: &Path) -> Result<Connection> {
    let conn = Connection::open(dir.join(DB_FILE)).map_err(|e| db_error(dir, &e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_error(dir, &e))?;
    // Every statement is prepared once per connection (a fan-out runs them ~50 times a note).
    conn.set_prepared_statement_cache_capacity(32);
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db_error(dir, &e))?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| db_error(dir, &e))?;
    // Overwrite deleted records (old session states, used invitation keys) on disk.
    conn.pragma_update(None, "secure_delete", "ON").map_err(|e| db_error(dir, &e))?;
    Ok(conn)
}

fn db_error(dir: &Path, e: &rusqlite::Error) -> ClientError {
    if let rusqlite::Error::SqliteFailure(f, _) = e
        && f.code == rusqlite::ErrorCode::DiskFull
    {
        return ClientError::DiskFull { path: dir.display().to_string() };
    }
    ClientError::Store { path: dir.display().to_string(), why: e.to_string() }
}

fn io_error(dir: &Path, e: &std::io::Error) -> ClientError {
    ClientError::Store { path: dir.display().to_string(), why: e.to_string() }
}

/// The store holds only ciphertext, but there is no reason to let other users list it.
fn restrict_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
}

/// Blocks as one column: their count, then each `u32`-length-prefixed (`wire::codec`).
fn frame_blocks(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(blocks.len() as u32);
    blocks.iter().for_each(|b| {
        w.bytes32(b);
    });
    w.buf
}

/// The inverse of [`frame_blocks`]; `None` if the column was cut, extended or altered.
fn unframe_blocks(framed: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut r = Reader::new(framed);
    let count = r.u32().ok()? as usize;
    let blocks = (0..count).map(|_| r.bytes32(framed.len()).map(<[u8]>::to_vec)).collect::<Result<_, _>>();
    let blocks = blocks.ok()?;
    r.finish().ok()?;
    Some(blocks)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned())
    }

    /// L8: a deleted row's number never comes back (it is the associated data its value was
    /// sealed under, so a row kept from an old copy of the file cannot be spliced in under it),
    /// even when the deleted row was the last one.
    #[test]
    fn row_numbers_are_never_reused_after_a_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(dir.path(), &pass("p")).unwrap();
        let (last, again) = s
            .tx(|tx| {
                tx.append_timeline("c1", &"one")?;
                let last = tx.append_timeline("c1", &"two")?;
                tx.timeline_remove(last)?;
                Ok((last, tx.append_timeline("c1", &"three")?))
            })
            .unwrap();
        assert!(again > last, "timeline: {again} after {last} was deleted");
        let (last, again) = s
            .tx(|tx| {
                let last = tx.outbox_push(&"item", &[vec![1u8; 8]])?;
                tx.outbox_remove(last)?;
                Ok((last, tx.outbox_push(&"item", &[vec![2u8; 8]])?))
            })
            .unwrap();
        assert!(again > last, "outbox: {again} after {last} was deleted");
        drop(s);
        let mut s = Store::open(dir.path(), &pass("p")).unwrap();
        let after_reopen = s.tx(|tx| tx.append_timeline("c1", &"four")).unwrap();
        assert!(after_reopen > again.max(3), "and after reopening");
    }

    #[test]
    fn wrong_passphrase_and_missing_store_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Store::open(dir.path(), &pass("x")), Err(ClientError::NotInitialized { .. })));
        Store::create(dir.path(), &pass("right")).unwrap();
        assert!(matches!(
            Store::create(dir.path(), &pass("right")),
            Err(ClientError::AlreadyInitialized { .. })
        ));
        assert!(matches!(Store::open(dir.path(), &pass("wrong")), Err(ClientError::WrongPassphrase { .. })));
        assert!(Store::open(dir.path(), &pass("right")).is_ok());
    }

    #[test]
    fn records_are_sealed_and_failed_transactions_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(dir.path(), &pass("p")).unwrap();
        s.tx(|tx| tx.put("contact", "c1", &"Ambassador Zhou")).unwrap();
        let r: Result<()> = s.tx(|tx| {
            tx.put("contact", "c1", &"changed")?;
            Err(ClientError::InvalidInput { what: "x".into(), why: "abort".into() })
        });
        assert!(r.is_err());
        let back: Option<String> = s.tx(|tx| tx.get("contact", "c1")).unwrap();
        assert_eq!(back.as_deref(), Some("Ambassador Zhou"));
        drop(s);
        let raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join("party.db-wal")).unwrap_or_default();
        let needle = b"Ambassador";
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
        assert!(!wal.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn outbox_items_keep_their_blocks_in_order_and_seal_their_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(dir.path(), &pass("p")).unwrap();
        let blocks = vec![vec![7u8; 4096], vec![9u8; 4096], Vec::new()];
        s.tx(|tx| {
            tx.outbox_push(&"to Ambassador Zhou", &blocks)?;
            tx.outbox_push(&"second", &blocks[..1])
        })
        .unwrap();
        let items: Vec<OutboxRow<String>> = s.tx(|tx| tx.outbox()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].1.as_str(), items[0].2.as_ref()), ("to Ambassador Zhou", Some(&blocks)));
        assert_eq!((items[1].1.as_str(), items[1].2.as_deref()), ("second", Some(&blocks[..1])));
        s.tx(|tx| tx.outbox_remove(items[0].0)).unwrap();
        assert_eq!(s.tx(|tx| tx.outbox::<String>()).unwrap().len(), 1);
        drop(s);
        let raw = [
            std::fs::read(dir.path().join(DB_FILE)).unwrap(),
            std::fs::read(dir.path().join("party.db-wal")).unwrap_or_default(),
        ]
        .concat();
        assert!(!raw.windows(10).any(|w| w == b"Ambassador"), "an outbox header is in the clear");
        assert!(!raw.windows(64).any(|w| w.iter().all(|b| *b == 9)), "blocks are in the clear");
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused_and_a_wrong_passphrase_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(dir.path(), &pass("p")).unwrap();
        // Back to a store as version 1 left it.
        s.conn.execute_batch("ALTER TABLE outbox DROP COLUMN blocks; PRAGMA user_version = 1").unwrap();
        drop(s);
        assert!(matches!(Store::open(dir.path(), &pass("wrong")), Err(ClientError::WrongPassphrase { .. })));
        let raw = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let raw_version: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(raw_version, 1, "a wrong guess migrated the store");
        drop(raw);
        let version =
            |s: &Store| s.conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap();
        let s = Store::open(dir.path(), &pass("p")).unwrap();
        assert_eq!(version(&s), MIGRATIONS.len() as i64, "the right passphrase migrates");
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let err = Store::open(dir.path(), &pass("p")).unwrap_err().to_string();
        assert!(err.contains("newer version") && err.contains("upgrade backchannel"), "{err}");
    }

    #[test]
    fn blocks_moved_to_another_item_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(dir.path(), &pass("p")).unwrap();
        s.tx(|tx| {
            tx.outbox_push(&"one", &[vec![1u8; 64]])?;
            tx.outbox_push(&"two", &[vec![2u8; 64]])
        })
        .unwrap();
        s.conn
            .execute("UPDATE outbox SET blocks = (SELECT blocks FROM outbox WHERE n = 1) WHERE n = 2", [])
            .unwrap();
        let err = s.tx(|tx| tx.outbox::<String>()).unwrap_err();
        assert!(err.to_string().contains("outbox item 2 has damaged blocks"), "{err}");
    }

    #[test]
    fn cut_or_altered_block_columns_are_refused() {
        let framed = frame_blocks(&[vec![1, 2, 3], vec![4]]);
        assert_eq!(unframe_blocks(&framed), Some(vec![vec![1, 2, 3], vec![4]]));
        assert_eq!(unframe_blocks(&frame_blocks(&[])), Some(Vec::new()));
        for cut in 0..framed.len() {
            assert_eq!(unframe_blocks(&framed[..cut]), None, "cut at {cut}");
        }
        assert_eq!(unframe_blocks(&[framed.as_slice(), &[0]].concat()), None, "a byte appended");
        let mut longer = framed.clone();
        longer[7] = 200;
        assert_eq!(unframe_blocks(&longer), None, "a length altered");
    }

    #[test]
    fn seen_frames_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(dir.path(), &pass("p")).unwrap();
        s.tx(|tx| {
            assert!(tx.mark_seen("c", b"frame", 1)?);
            assert!(!tx.mark_seen("c", b"frame", 2)?);
            assert!(tx.was_seen("c", b"frame")?);
            assert!(!tx.was_seen("d", b"frame")?);
            Ok(())
        })
        .unwrap();
    }
}
