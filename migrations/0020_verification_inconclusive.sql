-- Sample inference can end `inconclusive`: the model loads, but no realistic input ran and no
-- test vectors shipped, or only a degenerate input ran. Not a failure of the model.
ALTER TABLE model_verifications DROP CONSTRAINT model_verifications_status_check;
ALTER TABLE model_verifications ADD CONSTRAINT model_verifications_status_check
    CHECK (status IN ('pending', 'running', 'passed', 'failed', 'error', 'inconclusive'));
