-- Action types an account defines: owner Custom (CreateCustomActionType) or
-- ThirdParty (registered through UpdateActionType, the integrator model).
-- Built-in types are a catalogue compiled into the server, not rows.
--
-- A deleted type keeps its row (deleted_at set): AWS refuses to re-create the
-- same category/provider/version with a different definition, and workers
-- polling a deleted type must get an error rather than silence.
create table action_type (
    account_id  text not null references account on delete cascade,
    owner       text not null check (owner in ('Custom', 'ThirdParty')),
    category    text not null,
    provider    text not null,
    version     text not null,
    -- The `ActionType` shape (id, settings, configuration properties,
    -- artifact details) as last written.
    definition  jsonb not null,
    -- The integrator-model `ActionTypeDeclaration` for ThirdParty types.
    declaration jsonb,
    deleted_at  timestamptz,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (account_id, owner, category, provider, version)
);
