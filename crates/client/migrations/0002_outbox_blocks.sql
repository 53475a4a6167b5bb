-- An outbox item's blocks move out of its sealed header into a column of their own: they are
-- already sealed for the recipient (Olm and the route's block key), so the store keeps them as
-- they are. Items queued before this migration keep their blocks in the header (NULL here).
ALTER TABLE outbox ADD COLUMN blocks BLOB;
