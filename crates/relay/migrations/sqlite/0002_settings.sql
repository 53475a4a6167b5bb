-- Settings every relay node of a deployment must share (the block size), written by the first
-- node to start; a node started with another value refuses to start.
CREATE TABLE relay_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
