-- Bulk imports (`api import FILE`, `POST /api/admin/imports`): each line becomes a
-- registration through the pipeline; these tables hold the import's counts, the lines it
-- refused (line number and errors, never the line) and the registration of each line it
-- accepted, for the status endpoint.
CREATE TABLE imports (
    id           UUID PRIMARY KEY,
    created_by   UUID,
    source       TEXT NOT NULL CHECK (source IN ('api', 'cli')),
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    lines        BIGINT NOT NULL DEFAULT 0,
    accepted     BIGINT NOT NULL DEFAULT 0,
    rejected     BIGINT NOT NULL DEFAULT 0,
    error        TEXT
);

CREATE TABLE import_rejections (
    import_id  UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line       BIGINT NOT NULL,
    errors     JSONB NOT NULL,
    PRIMARY KEY (import_id, line)
);

CREATE TABLE import_registrations (
    import_id        UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line             BIGINT NOT NULL,
    registration_id  UUID NOT NULL,
    email            TEXT NOT NULL,
    PRIMARY KEY (import_id, line)
);
CREATE INDEX import_registrations_registration_idx ON import_registrations (registration_id);
