-- Queues and their blocks. Nothing else is kept: no addresses, no names, no secrets (only
-- their SHA-256 hashes). `stored` counts a queue's unacknowledged blocks so the quota check
-- costs one row read; `touched_at` is the last activity, for expiring idle queues.
CREATE TABLE queues (
    id         INTEGER PRIMARY KEY,
    recv_id    BLOB    NOT NULL UNIQUE,
    send_id    BLOB    NOT NULL UNIQUE,
    recv_hash  BLOB    NOT NULL,
    send_hash  BLOB    NOT NULL,
    next_seq   INTEGER NOT NULL DEFAULT 1,
    stored     INTEGER NOT NULL DEFAULT 0,
    touched_at INTEGER NOT NULL
);
CREATE INDEX queues_touched_at ON queues (touched_at);

CREATE TABLE blocks (
    queue     INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (queue, seq)
);
CREATE INDEX blocks_stored_at ON blocks (stored_at);
