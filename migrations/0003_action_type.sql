-- Custom action types (owner Custom) per account. Built-in types (owners AWS
-- and ThirdParty) are a catalogue compiled into the server, not rows.
--
-- A deleted type keeps its row (deleted_at set): AWS refuses to re-create the
-- same category/provider/version with a different definition, and workers
-- polling a deleted type must get an error rather than silence.
create table custom_action_type (
    account_id  text not null references account on delete cascade,
    category    text not null,
    provider    text not null,
    version     text not null,
    -- The ActionTypeDeclaration-shaped definition (settings, properties,
    -- artifact details, description, executor) as last written.
    definition  jsonb not null,
    deleted_at  timestamptz,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (account_id, category, provider, version)
);
