-- The web search's filters on a head's facts (verification status, licence decision and
-- category, scan status) start from the few repositories that hold a rare value: these indexes
-- find them (scan statuses other than clean come from `blobs_not_clean`, migration 0022).
CREATE INDEX model_verifications_status ON model_verifications (status, repository_id);
CREATE INDEX license_evaluations_terms ON license_evaluations USING GIN ((report -> 'terms') jsonb_path_ops);
