-- Every value column holds XChaCha20-Poly1305 ciphertext under the store key; ids are random
-- or fixed labels, never names.
CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE records (kind TEXT NOT NULL, id TEXT NOT NULL, v BLOB NOT NULL, PRIMARY KEY (kind, id));
CREATE TABLE timeline (n INTEGER PRIMARY KEY AUTOINCREMENT, contact TEXT NOT NULL, v BLOB NOT NULL);
CREATE INDEX timeline_contact ON timeline (contact, n);
CREATE TABLE outbox (n INTEGER PRIMARY KEY AUTOINCREMENT, v BLOB NOT NULL);
-- Keyed hashes of frames already processed, so redelivered or replayed frames are dropped.
CREATE TABLE seen (digest BLOB PRIMARY KEY, at INTEGER NOT NULL);
