CREATE INDEX staging_requests_status ON staging_requests (status);
