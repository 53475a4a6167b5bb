-- A block (4 KiB by default) is kept in its row instead of TOAST: one heap tuple and two
-- index entries per block instead of three TOAST chunks with their index entries as well,
-- about 10% less WAL, a delete that does not look the chunks up, reads that do not join the
-- TOAST table. Costs a page per stored block (8 KiB on disk while undelivered; blocks
-- normally live for moments). EXTERNAL storage stays: no compression attempts on ciphertext.
-- Rows written before this migration stay as they are.
ALTER TABLE blocks SET (toast_tuple_target = 8160);
