-- A model page shows every file that is not plainly clean (pending, flagged, held) without
-- reading every file of the commit: such blobs are few hub-wide, so the page starts from them.
CREATE INDEX blobs_not_clean ON blobs (sha256)
    WHERE scan_verdict IS NULL OR scan_verdict <> 'clean' OR held_reason IS NOT NULL;
