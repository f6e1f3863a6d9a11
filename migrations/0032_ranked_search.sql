-- A relevance ranking that finds the newest matches of each tier (exact name, name, description,
-- card) at any size. Walking the newest repositories tests each one's words: kept on the row, that
-- test reads a stored tsvector instead of parsing the card again (a card can be tens of KiB).
ALTER TABLE repositories ADD COLUMN search_words tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', name || ' ' || description || ' ' || card)) STORED;
-- The same document as migration 0001's expression index, now read from the column.
CREATE INDEX repositories_search_words ON repositories USING gin (search_words);
DROP INDEX repositories_search_idx;
-- The description tier's matches when few descriptions hold the text (a word many cards hold).
CREATE INDEX repositories_description_trgm ON repositories USING gin (description gin_trgm_ops);
-- The exact-name tier: a name that is the text, in any namespace.
CREATE INDEX repositories_name_lower ON repositories (lower(name)) WHERE deleted_at IS NULL;
