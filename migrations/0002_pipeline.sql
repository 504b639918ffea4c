-- A pipeline's identity; its definitions live in pipeline_version. Deleting
-- the pipeline deletes its history, so a re-created name starts at version 1.
create table pipeline (
    account_id      text not null references account on delete cascade,
    -- Byte order ("C") keeps pagination by name stable across locales.
    name            text collate "C" not null,
    current_version integer not null check (current_version >= 1),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    primary key (account_id, name)
);

-- Every version ever stored, exactly as GetPipeline(version=N) returns it.
-- The primary key is what makes two racing UpdatePipeline calls unable to
-- write the same version.
create table pipeline_version (
    account_id  text not null,
    name        text collate "C" not null,
    version     integer not null check (version >= 1),
    declaration jsonb not null,
    created_at  timestamptz not null default now(),
    primary key (account_id, name, version),
    foreign key (account_id, name) references pipeline on delete cascade
);
