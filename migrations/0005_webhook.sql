-- Webhooks (PutWebhook and friends): a named trigger per account whose URL
-- ends in an unguessable id. The receiving endpoint looks a webhook up by
-- that id alone, before it knows the account, so the id is unique across
-- all accounts; every management query still goes by (account_id, name).
--
-- No foreign key to the target pipeline: AWS keeps a webhook whose pipeline
-- was deleted (it then fails to trigger and says so in errorCode /
-- errorMessage), and a cascade would leave the webhook's tags behind.
create table webhook (
    account_id      text not null references account on delete cascade,
    -- Byte order ("C") keeps ListWebhooks pagination stable across locales.
    name            text collate "C" not null,
    -- The last path segment of the URL: random, kept by updates, new when a
    -- deleted name is re-created (so an old URL never revives).
    url_id          text not null unique check (url_id ~ '^[A-Za-z0-9_-]{32,}$'),
    target_pipeline text not null,
    target_action   text not null,
    -- WebhookFilterRule list as given: [{"jsonPath", "matchEquals"?}], 1..5.
    filters         jsonb not null check (jsonb_typeof(filters) = 'array'),
    authentication  text not null check (authentication in ('GITHUB_HMAC', 'IP', 'UNAUTHENTICATED')),
    allowed_ip_range text,
    -- GitHub's HMAC key must be read back to verify signatures, so it is
    -- sealed (AES-256-GCM under the master key, AAD = account and url_id),
    -- never hashed and never returned.
    secret_sealed   bytea,
    -- The settings each mode needs, and nothing else (as PutWebhook checks).
    check (case authentication
        when 'GITHUB_HMAC' then secret_sealed is not null and allowed_ip_range is null
        when 'IP' then allowed_ip_range is not null and secret_sealed is null
        else secret_sealed is null and allowed_ip_range is null end),
    -- Set by RegisterWebhookWithThirdParty, cleared by Deregister. No third
    -- party is contacted: this only records what the caller asked for.
    registered_at   timestamptz,
    -- Written by the receiving endpoint: last successful trigger, last error.
    last_triggered  timestamptz,
    error_code      text,
    error_message   text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    primary key (account_id, name)
);
