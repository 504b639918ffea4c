-- Tenants. Every other table leads its keys with account_id, so a query that
-- forgets the tenant cannot use an index and stands out in review.
create table account (
    account_id text primary key check (account_id ~ '^[0-9]{12}$'),
    name       text not null check (length(name) between 1 and 256),
    created_at timestamptz not null default now()
);

-- SigV4 needs the raw secret to recompute signatures, so it is sealed with
-- AES-256-GCM under the master key (nonce || ciphertext), never hashed.
create table access_key (
    access_key_id    text primary key check (access_key_id ~ '^[A-Za-z0-9]{1,128}$'),
    account_id       text not null references account on delete cascade,
    secret_sealed    bytea not null,
    created_at       timestamptz not null default now()
);
create index access_key_account on access_key (account_id);
