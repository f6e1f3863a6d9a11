-- Community scan rules, versioned: each change is a new version holding the whole set. The
-- effective scanner version is `<scanner>+rules.<version>`, so a new set rescans every blob.
CREATE TABLE rule_sets (
    version      SERIAL PRIMARY KEY,
    pickle_deny  TEXT[] NOT NULL,
    yara         TEXT NOT NULL DEFAULT '',
    note         TEXT NOT NULL DEFAULT '',
    created_by   BIGINT NOT NULL REFERENCES namespaces (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
