-- A card's tags (its list items and `pipeline_tag:`), lowercased, kept beside the card so that
-- the search's tag filter reads an index instead of matching a regular expression against every
-- card. The same rule the filter applied to the card before: a line that is `- TAG` or
-- `pipeline_tag: TAG`, optionally quoted, TAG of letters, digits, `-`, `_` and `.`.
CREATE FUNCTION card_tags(card TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT lower(m[1])), '{}')
    FROM regexp_matches(
        card,
        '^\s*(?:-\s*|pipeline_tag:\s*)[''"]?([[:alnum:]_.-]+)[''"]?\s*$',
        'gn'
    ) AS m
$$;

ALTER TABLE repositories ADD COLUMN card_tags TEXT[] GENERATED ALWAYS AS (card_tags(card)) STORED;

CREATE INDEX repositories_card_tags ON repositories USING gin (card_tags);
