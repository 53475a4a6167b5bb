-- Same schema as the SQLite engine (see migrations/sqlite/0001_init.sql for the why).
CREATE TABLE queues (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recv_id    BYTEA  NOT NULL UNIQUE,
    send_id    BYTEA  NOT NULL UNIQUE,
    recv_hash  BYTEA  NOT NULL,
    send_hash  BYTEA  NOT NULL,
    next_seq   BIGINT NOT NULL DEFAULT 1,
    stored     BIGINT NOT NULL DEFAULT 0,
    touched_at BIGINT NOT NULL
);
CREATE INDEX queues_touched_at ON queues (touched_at);

CREATE TABLE blocks (
    queue     BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    stored_at BIGINT NOT NULL,
    data      BYTEA  NOT NULL,
    PRIMARY KEY (queue, seq)
);
-- Blocks are ciphertext: trying to compress them only costs CPU.
ALTER TABLE blocks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX blocks_stored_at ON blocks (stored_at);
