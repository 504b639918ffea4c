-- Credentials of partner job workers (owner ThirdParty action types): a
-- worker proves with a clientToken that it may see and act on the account's
-- third-party jobs. The token is `<clientId>.<secret>`; only its argon2id
-- hash (PHC string) is stored, and it is shown once, by the admin command
-- that creates it.
create table third_party_client (
    client_id   uuid primary key,
    account_id  text not null references account on delete cascade,
    token_hash  text not null,
    created_at  timestamptz not null default now()
);
create index third_party_client_account on third_party_client (account_id, created_at desc);
